//! Hash rates: one group per algorithm x backend (attempts per second, one core), plus
//! verification throughput. Run with `cargo bench --bench mint`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pennyblack::{Algorithm, Backend, FixedClock, MintRequest, Minter, Policy, Search, Verifier};

const ATTEMPTS: u64 = 1 << 16;

fn kernels(c: &mut Criterion) {
    for alg in Algorithm::ALL {
        let prefix = &pennyblack::rate::sample_prefix(alg);
        let mut g = c.benchmark_group(format!("mint/{alg}"));
        g.throughput(Throughput::Elements(ATTEMPTS));
        for backend in Backend::available(alg) {
            // 64 bits: (practically) never a hit, so only the scan is measured.
            let search = Search::new(alg, prefix, 64);
            let mut hits = Vec::new();
            let mut start = 0u64;
            g.bench_function(BenchmarkId::from_parameter(backend), |b| {
                b.iter(|| {
                    search.run(backend, start, ATTEMPTS, &mut hits).unwrap();
                    start += ATTEMPTS;
                })
            });
        }
        g.finish();
    }
}

/// All cores against one: the best backend per algorithm, 2^18 attempts split over T threads.
fn threads(c: &mut Criterion) {
    const TOTAL: u64 = 1 << 18;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for alg in Algorithm::ALL {
        let backend = Backend::detect(alg);
        let search = Search::new(alg, &pennyblack::rate::sample_prefix(alg), 64);
        let mut g = c.benchmark_group(format!("threads/{alg}/{backend}"));
        g.throughput(Throughput::Elements(TOTAL));
        for t in 1..=cores {
            g.bench_function(BenchmarkId::from_parameter(t), |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        for i in 0..t as u64 {
                            let search = &search;
                            s.spawn(move || {
                                let mut hits = Vec::new();
                                let share = TOTAL / t as u64;
                                search.run(backend, i << 40, share, &mut hits).unwrap();
                            });
                        }
                    })
                })
            });
        }
        g.finish();
    }
}

fn verification(c: &mut Criterion) {
    let minter = Minter::new();
    let cases = [
        ("v1-sha1", MintRequest::hashcash("bob@example.org", 12)),
        ("v2-sha256x16", MintRequest::new("bob@example.org").bits(12)),
        (
            "v2-blake3x16",
            MintRequest::new("bob@example.org")
                .alg(Algorithm::Blake3)
                .bits(12),
        ),
    ];
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    for (name, req) in cases {
        let stamp = minter.mint(&req).unwrap().to_string();
        let verifier =
            Verifier::new(Policy::new(12, ["bob@example.org"])).with_clock(FixedClock(time_now()));
        g.bench_function(name, |b| b.iter(|| verifier.check(&stamp).unwrap()));
    }
    g.finish();
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

criterion_group!(benches, kernels, threads, verification);
criterion_main!(benches);
