//! `pennyblack bench`: hash rates per algorithm and backend, with reference figures from OpenSSL
//! and the classic hashcash measured in the same run.

use std::io::IsTerminal;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use pennyblack::rate::{Rate, clock_ghz, measure};
use pennyblack::{Algorithm, Backend, FixedClock, MintRequest, Minter, Policy, Verifier};

use crate::Exit;
use crate::args::BenchArgs;

/// Reference rates, attempts (compressions) per second on one core.
#[derive(Debug, Default, serde::Serialize)]
struct Reference {
    openssl_sha1: Option<f64>,
    openssl_sha256: Option<f64>,
    hashcash_sha1: Option<f64>,
}

pub fn run(a: BenchArgs) -> Result<Exit> {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0) {
        bail!(
            "--seconds must be more than 0 and at most 600, got {}",
            a.seconds
        );
    }
    let dur = Duration::from_secs_f64(a.seconds);
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let algs: Vec<Algorithm> = if a.alg.is_empty() {
        Algorithm::ALL.to_vec()
    } else {
        a.alg.iter().map(|x| x.alg()).collect()
    };
    let wanted: Vec<Backend> = a.backend.iter().filter_map(|b| b.backend()).collect();
    let progress = !a.json && std::io::stderr().is_terminal();
    let note = |msg: &str| {
        if progress {
            eprint!("\r\x1b[2K{msg}");
        }
    };

    let mut plan: Vec<(Algorithm, Backend)> = Vec::new();
    for &alg in &algs {
        for b in Backend::available(alg) {
            if wanted.is_empty() || wanted.contains(&b) {
                plan.push((alg, b));
            }
        }
    }
    if plan.is_empty() {
        bail!(
            "none of the requested backends is available for the requested algorithms on this CPU"
        );
    }
    let steps =
        plan.len() + algs.len() * usize::from(threads > 1) + 2 + 2 * usize::from(!a.no_reference);
    let mut step = 0;
    let mut next = |what: &str| {
        step += 1;
        note(&format!(
            "[{step}/{steps}] measuring {what} for {:.1}s...",
            a.seconds
        ));
    };

    let ghz_before = clock_ghz();
    let mut rows: Vec<Rate> = Vec::new();
    for &(alg, b) in &plan {
        next(&format!("{alg} on {b}, 1 thread"));
        rows.extend(measure(alg, b, 1, dur));
    }
    if threads > 1 {
        for &alg in &algs {
            let best = rows
                .iter()
                .filter(|r| r.alg == alg && r.threads == 1)
                .max_by(|x, y| x.per_second.total_cmp(&y.per_second))
                .map(|r| r.backend);
            if let Some(b) = best {
                next(&format!("{alg} on {b}, {threads} threads"));
                rows.extend(measure(alg, b, threads, dur));
            }
        }
    }
    next("the core clock");
    // The clock moves with the machine's load (turbo): measured before and after the kernels,
    // the higher figure is the one the bound is taken at.
    let ghz = match (ghz_before, clock_ghz()) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    next("verification of version 1 stamps");
    let verify_rate = verify_rate(dur)?;
    let mut reference = Reference::default();
    if !a.no_reference {
        next("OpenSSL SHA-1 and SHA-256");
        (reference.openssl_sha1, reference.openssl_sha256) = openssl(a.seconds);
        next("hashcash -s");
        reference.hashcash_sha1 = hashcash();
    }
    note("");

    // The kernel's bound (instructions per candidate over this CPU's throughput, per GHz) at
    // the measured clock, times the threads (each on its own core).
    let bound = |r: &Rate| Some(r.backend.bound_per_ghz(r.alg)? * 1e6 * ghz? * r.threads as f64);
    if a.json {
        let rates: Vec<_> = rows
            .iter()
            .map(|r| {
                let b = bound(r);
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("bound_per_second".into(), serde_json::json!(b));
                    o.insert(
                        "of_bound".into(),
                        serde_json::json!(b.map(|b| r.per_second / b)),
                    );
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "rates": rates,
                "clock_ghz": ghz,
                "verify_v1_per_second": verify_rate,
                "reference": reference,
            })
        );
        return Ok(Exit::Ok);
    }
    println!(
        "{:<8} {:<9} {:>7} {:>12} {:>9} {:>10} {:>12}",
        "alg", "backend", "threads", "M hashes/s", "of bound", "x OpenSSL", "x hashcash"
    );
    for r in &rows {
        let openssl = match r.alg {
            Algorithm::Sha1 => reference.openssl_sha1,
            _ => reference.openssl_sha256,
        };
        let ratio =
            |base: Option<f64>| base.map_or("-".to_owned(), |b| format!("{:.2}", r.per_second / b));
        let hc = if r.alg == Algorithm::Sha1 {
            ratio(reference.hashcash_sha1)
        } else {
            "-".into()
        };
        let of_bound = bound(r).map_or("-".to_owned(), |b| format!("{:.2}", r.per_second / b));
        println!(
            "{:<8} {:<9} {:>7} {:>12.1} {:>9} {:>10} {:>12}",
            r.alg.name(),
            r.backend.name(),
            r.threads,
            r.per_second / 1e6,
            of_bound,
            ratio(openssl),
            hc
        );
    }
    println!();
    match ghz {
        Some(g) => println!(
            "of bound: the rate over the kernel's instruction bound (Backend::bound_per_ghz) at \
             the measured clock, {g:.2} GHz"
        ),
        None => println!("of bound: not known (the clock could not be measured)"),
    }
    println!(
        "verify (parse + hash, no store), v1 stamps, 1 thread: {:.2} M stamps/s",
        verify_rate / 1e6
    );
    let show = |name: &str, v: Option<f64>| match v {
        Some(v) => println!("{name:<38} {:>8.1} M/s", v / 1e6),
        None => println!("{name:<38} {:>8}", "not measured"),
    };
    if !a.no_reference {
        println!("reference, one core:");
        show(
            "  OpenSSL SHA-1 (16 KiB blocks / 64)",
            reference.openssl_sha1,
        );
        show(
            "  OpenSSL SHA-256 (16 KiB blocks / 64)",
            reference.openssl_sha256,
        );
        show(
            "  hashcash 1.22 -s (SHA-1 minting)",
            reference.hashcash_sha1,
        );
    }
    Ok(Exit::Ok)
}

/// Version 1 stamps verified per second on one thread (parse, date, resource, hash; no store).
fn verify_rate(dur: Duration) -> Result<f64> {
    let minter = Minter::new();
    let stamps: Vec<String> = (0..64)
        .map(|i| {
            minter
                .mint(&MintRequest::hashcash(format!("user{i}@example.org"), 8))
                .map(|s| s.to_string())
        })
        .collect::<Result<_, _>>()?;
    let now = pennyblack::unix_now();
    let verifier = Verifier::new(Policy::new(8, ["*@example.org"])).with_clock(FixedClock(now));
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < dur {
        for s in &stamps {
            if !verifier.check(s)?.is_valid() {
                bail!("a freshly minted stamp did not verify: {s}");
            }
        }
        done += stamps.len() as u64;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// `openssl speed` on 16 KiB buffers: bytes per second / 64 = compressions per second.
fn openssl(seconds: f64) -> (Option<f64>, Option<f64>) {
    let secs = (seconds.ceil() as u64).max(1).to_string();
    let out = Command::new("openssl")
        .args([
            "speed", "-seconds", &secs, "-bytes", "16384", "sha1", "sha256",
        ])
        .output();
    let Ok(out) = out else { return (None, None) };
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = |name: &str| {
        text.lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .collect::<Vec<_>>()
                    .get(..2)
                    .map(|v| (v[0].to_owned(), v[1].to_owned()))
            })
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.trim_end_matches('k').parse::<f64>().ok())
            .map(|k| k * 1000.0 / 64.0)
    };
    (rate("sha1"), rate("sha256"))
}

/// `hashcash -s`: its own single-core SHA-1 minting speed. Its test lasts milliseconds, so it is
/// run 20 times and the best figure kept (the one least disturbed by other load).
fn hashcash() -> Option<f64> {
    (0..20)
        .filter_map(|_| {
            let out = Command::new("hashcash").args(["-s", "-q"]).output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace()
                .filter_map(|w| w.parse::<f64>().ok())
                .next_back()
        })
        .reduce(f64::max)
}
