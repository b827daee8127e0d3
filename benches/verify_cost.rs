//! What a receiver pays to check one stamp, through `Verifier::check` (parse, policy, work; no
//! spent store): per stamp and per part for each algorithm, single-threaded and with the
//! parallel verifier for the memory-hard ones; and what refusing a hostile stamp costs (refused before any
//! work: microseconds, whatever the stamp claims). docs/PERFORMANCE.md, "Verification cost",
//! quotes these beside the cost model (`pennyblack::verify::estimated_cost`).
//!
//! Run: `cargo bench --bench verify_cost` (about a minute; `--features equix` adds Equi-X), or a
//! filter:
//! `cargo bench --bench verify_cost -- refuse`. Criterion's time is per stamp; with the
//! throughput in parts, its `elem/s` is parts per second (per part = time / parts).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pennyblack::{
    Algorithm, Argon2Params, FixedClock, MintRequest, Minter, Policy, Verifier, VerifyError,
};

const NOW: i64 = 1_795_780_800; // 2026-11-27T12:00:00Z
const DATE: &str = "261127";
const RESOURCE: &str = "bob@example.org";

const fn argon2id(memory_kib: u32) -> Algorithm {
    Algorithm::Argon2id(Argon2Params {
        memory_kib,
        passes: 1,
        lanes: 1,
    })
}

/// The stamps timed: (name, algorithm, parts). One row per case.
const CASES: &[(&str, Algorithm, u32)] = &[
    ("sha1-v1", Algorithm::Sha1, 1),
    ("sha256", Algorithm::Sha256, 1),
    ("sha256", Algorithm::Sha256, 16),
    ("blake3", Algorithm::Blake3, 1),
    ("blake3", Algorithm::Blake3, 16),
    ("argon2id-64KiB", argon2id(64), 1),
    ("argon2id-64KiB", argon2id(64), 4),
    ("argon2id-1MiB", argon2id(1024), 1),
    ("argon2id-1MiB", argon2id(1024), 4),
    ("argon2id-8MiB", argon2id(8 << 10), 1),
    ("argon2id-8MiB", argon2id(8 << 10), 4),
];

/// [`CASES`], and Equi-X in a build with the `equix` feature (one part and four).
fn cases() -> Vec<(&'static str, Algorithm, u32)> {
    let mut cases = CASES.to_vec();
    if cfg!(feature = "equix") {
        cases.extend([
            ("equix", Algorithm::Equix, 1),
            ("equix", Algorithm::Equix, 4),
        ]);
    }
    cases
}

/// A receiver that accepts every case: each family at 0 bits, Argon2id from 8 KiB (the default
/// policy's 1 MiB minimum would refuse the 64 KiB stamps unchecked), the default 16 MiB maximum
/// and 100 ms budget.
fn accepting() -> Policy {
    let mut p = Policy::new(0, [RESOURCE]);
    for (_, alg, _) in cases() {
        p = p.with_min_value(alg, 0);
    }
    Policy {
        min_memory_kib: 8,
        ..p
    }
}

/// Per stamp, on the calling thread's rayon pool: one thread (`1thread`) and every core
/// (`parallel`, the verifier as it runs; only memory-hard parts are evaluated in parallel).
fn verify(c: &mut Criterion) {
    let verifier = Verifier::new(accepting()).with_clock(FixedClock(NOW));
    let minter = Minter::new();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (name, alg, parts) in cases() {
        let req = MintRequest::new(RESOURCE)
            .alg(alg)
            .parts(parts)
            .bits(0)
            .date(pennyblack::StampDate::parse(DATE).unwrap());
        let stamp = minter.mint(&req).unwrap().to_string();
        assert!(verifier.check(&stamp).unwrap().is_valid(), "{stamp}");
        let mut g = c.benchmark_group(format!("verify/{name}x{parts}"));
        g.throughput(Throughput::Elements(u64::from(parts)));
        if alg.is_memory_hard() {
            // Milliseconds a stamp: few samples, short runs.
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
        }
        // The timing loop runs inside the one-thread pool, so the parts are evaluated in turn
        // and no hand-over between threads is timed.
        g.bench_function(BenchmarkId::from_parameter("1thread"), |b| {
            b.iter_custom(|iters| {
                one.install(|| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(verifier.check(black_box(&stamp)).unwrap());
                    }
                    started.elapsed()
                })
            })
        });
        if alg.is_memory_hard() && parts > 1 {
            g.bench_function(BenchmarkId::from_parameter("parallel"), |b| {
                b.iter(|| verifier.check(&stamp).unwrap())
            });
        }
        g.finish();
    }
}

/// `2:ALG:BITS:PARTS:DATE:RESOURCE::RAND:C1,...,CK`, well-formed, with no work in it.
fn hostile(alg: &str, parts: u32) -> String {
    let counters: Vec<String> = (0..parts).map(|i| format!("AAAAAA{:02}", i)).collect();
    format!(
        "2:{alg}:8:{parts}:{DATE}:{RESOURCE}::AAAAAAAAAAAAAAAA:{}",
        counters.join(",")
    )
}

/// Stamps refused before any work, under the default policy with an Argon2id minimum of 8 bits
/// (1 MiB to 16 MiB, 64 parts, 100 ms a recipient), and one of a family the policy does not name.
/// Each must be microseconds: the refusal is all that is timed.
fn refuse(c: &mut Criterion) {
    let accepts_argon2id = Policy::new(20, [RESOURCE]).with_min_value(Algorithm::ARGON2ID, 8);
    let hashes_only = Policy::new(20, [RESOURCE]);
    type Expect = fn(&VerifyError) -> bool;
    let cases: [(&str, String, &Policy, Expect); 4] = [
        (
            "4GiB-memory",
            hostile("argon2id-m4194304-t1-p1", 4),
            &accepts_argon2id,
            |e| matches!(e, VerifyError::OutOfPolicy { .. }),
        ),
        (
            "64-parts-of-16MiB",
            hostile("argon2id-m16384-t1-p1", 64),
            &accepts_argon2id,
            |e| matches!(e, VerifyError::OverBudget { .. }),
        ),
        (
            "over-budget-16-parts-of-8MiB",
            hostile("argon2id-m8192-t1-p1", 16),
            &accepts_argon2id,
            |e| matches!(e, VerifyError::OverBudget { .. }),
        ),
        (
            "not-accepted-family",
            hostile("argon2id-m1024-t1-p1", 4),
            &hashes_only,
            |e| matches!(e, VerifyError::NotAccepted { .. }),
        ),
    ];
    let mut g = c.benchmark_group("refuse");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, stamp, policy, expect) in cases {
        let verifier = Verifier::new(policy.clone()).with_clock(FixedClock(NOW));
        let verdict = verifier.check(&stamp).unwrap();
        match verdict.result() {
            Err(e) if expect(&e) => {}
            other => panic!("{name}: {other:?}"),
        }
        g.bench_function(name, |b| b.iter(|| verifier.check(&stamp).unwrap()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = verify, refuse
}
criterion_main!(benches);
