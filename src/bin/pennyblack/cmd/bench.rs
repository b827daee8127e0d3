//! `pennyblack bench`: attempt rates per algorithm and backend (hashes and memory-hard
//! functions), the time to verify one stamp against the receiver's cost model, with reference
//! figures from OpenSSL and the classic hashcash measured in the same run.

use std::io::IsTerminal;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use pennyblack::rate::{self, Rate, VerifyCost, clock_ghz, measure, measure_verify};
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

/// How long a memory-hard row is measured in the default run (no `--alg`), at most: its
/// attempts are few and steady, and the default run stays about as long as it was without it.
const SHORT: Duration = Duration::from_millis(500);

/// How many SHA-256 attempts take as long as one attempt of a memory-hard algorithm, one thread
/// each, in this run.
#[derive(Debug, serde::Serialize)]
struct AttemptCost {
    alg: Algorithm,
    sha256_backend: Backend,
    sha256_attempts: f64,
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
    if let Some(p) = a.parts
        && !(1..=pennyblack::stamp::MAX_PARTS).contains(&p)
    {
        bail!(
            "--parts must be from 1 to {}, got {p}",
            pennyblack::stamp::MAX_PARTS
        );
    }
    let named = !a.alg.is_empty();
    let algs: Vec<Algorithm> = if named {
        a.alg.iter().map(|x| x.alg()).collect()
    } else {
        rate::default_algorithms()
    };
    // --memory, --passes and --lanes set the parameters of the Argon2id rows.
    let algs: Vec<Algorithm> = algs
        .into_iter()
        .map(|alg| match alg.argon2() {
            Some(_) => a.argon2.apply(alg),
            None => Ok(alg),
        })
        .collect::<Result<_>>()?;
    if a.argon2.given() && !algs.iter().any(|x| x.argon2().is_some()) {
        bail!("--memory, --passes and --lanes apply to --alg argon2id only");
    }
    // Memory-hard rows of the default run are short; named ones get --seconds.
    let row_dur = |alg: Algorithm| {
        if alg.is_memory_hard() && !named {
            dur.min(SHORT)
        } else {
            dur
        }
    };
    // Each verification row: half a (memory-hard) row's time.
    let verify_dur = if named { dur } else { dur.min(SHORT) } / 2;
    let wanted: Vec<Backend> = a.backend.iter().filter_map(|b| b.backend()).collect();
    let progress = !a.json && std::io::stderr().is_terminal();
    let note = |msg: &str| {
        if progress {
            eprint!("\r\x1b[2K{msg}");
        }
    };

    // An algorithm this build cannot mint at all (equix without its feature) says why.
    for &alg in &algs {
        Backend::Portable.require(alg)?;
    }
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
    // Verification: one part, the stamp of the algorithm's default parts (or --parts), and for
    // a memory-hard algorithm that stamp again with the parallel verifier.
    let mut verify_plan: Vec<(Algorithm, u32, usize)> = Vec::new();
    for &alg in &algs {
        let parts = a
            .parts
            .map_or(alg.default_parts(), |p| p.min(alg.max_parts()));
        verify_plan.push((alg, 1, 1));
        if parts > 1 {
            verify_plan.push((alg, parts, 1));
            if alg.is_memory_hard() && threads > 1 {
                verify_plan.push((alg, parts, threads));
            }
        }
    }
    let steps = plan.len()
        + algs.len() * usize::from(threads > 1)
        + verify_plan.len()
        + 2
        + 2 * usize::from(!a.no_reference);
    let mut step = 0;
    let mut next = |what: &str, d: Duration| {
        step += 1;
        note(&format!(
            "[{step}/{steps}] measuring {what} for {:.2}s...",
            d.as_secs_f64()
        ));
    };

    let ghz_before = clock_ghz();
    let mut rows: Vec<Rate> = Vec::new();
    for &(alg, b) in &plan {
        next(&format!("{alg} on {b}, 1 thread"), row_dur(alg));
        rows.push(measure(alg, b, 1, row_dur(alg))?);
    }
    if threads > 1 {
        for &alg in &algs {
            let best = rows
                .iter()
                .filter(|r| r.alg == alg && r.threads == 1)
                .max_by(|x, y| x.per_second.total_cmp(&y.per_second))
                .map(|r| r.backend);
            if let Some(b) = best {
                next(&format!("{alg} on {b}, {threads} threads"), row_dur(alg));
                rows.push(measure(alg, b, threads, row_dur(alg))?);
            }
        }
    }
    let mut verify: Vec<VerifyCost> = Vec::new();
    for &(alg, parts, t) in &verify_plan {
        next(
            &format!("verification of {alg}, {parts} parts, {t} threads"),
            verify_dur,
        );
        verify.push(measure_verify(alg, parts, t, verify_dur)?);
    }
    next("the core clock", Duration::ZERO);
    // The clock moves with the machine's load (turbo): measured before and after the kernels,
    // the higher figure is the one the bound is taken at.
    let ghz = match (ghz_before, clock_ghz()) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    next("verification of version 1 stamps", dur);
    let verify_rate = verify_rate(dur)?;
    let mut reference = Reference::default();
    if !a.no_reference {
        next("OpenSSL SHA-1 and SHA-256", dur);
        (reference.openssl_sha1, reference.openssl_sha256) = openssl(a.seconds);
        next("hashcash -s", Duration::ZERO);
        reference.hashcash_sha1 = hashcash();
    }
    note("");

    // One memory-hard attempt in SHA-256 attempts: both on one thread, the fastest SHA-256
    // backend of this run.
    let sha256 = rows
        .iter()
        .filter(|r| r.alg == Algorithm::Sha256 && r.threads == 1)
        .max_by(|x, y| x.per_second.total_cmp(&y.per_second));
    let attempt_cost: Vec<AttemptCost> = rows
        .iter()
        .filter(|r| r.alg.is_memory_hard() && r.threads == 1)
        .filter_map(|r| {
            let s = sha256?;
            Some(AttemptCost {
                alg: r.alg,
                sha256_backend: s.backend,
                sha256_attempts: s.per_second / r.per_second,
            })
        })
        .collect();

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
                "verify": verify,
                "attempt_cost": attempt_cost,
                "reference": reference,
            })
        );
        return Ok(Exit::Ok);
    }
    let (slow, fast): (Vec<&Rate>, Vec<&Rate>) = rows.iter().partition(|r| r.alg.is_memory_hard());
    if !fast.is_empty() {
        println!(
            "{:<8} {:<9} {:>7} {:>12} {:>9} {:>10} {:>12}",
            "alg", "backend", "threads", "M hashes/s", "of bound", "x OpenSSL", "x hashcash"
        );
    }
    for r in &fast {
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
    if !slow.is_empty() {
        if !fast.is_empty() {
            println!();
        }
        let w = slow
            .iter()
            .map(|r| r.alg.to_string().len())
            .max()
            .unwrap_or(0)
            .max(11);
        println!(
            "{:<w$} {:<9} {:>7} {:>12} {:>12} {:>11} {:>14}",
            "memory-hard",
            "backend",
            "threads",
            "attempts/s",
            "per thread",
            "x 1 thread",
            "memory/thread"
        );
        for r in &slow {
            let one = slow
                .iter()
                .find(|o| o.alg == r.alg && o.backend == r.backend && o.threads == 1);
            let scaling = match one {
                Some(o) if r.threads > 1 => format!("{:.2}", r.per_second / o.per_second),
                _ => "-".into(),
            };
            println!(
                "{:<w$} {:<9} {:>7} {:>12.1} {:>12.1} {:>11} {:>14}",
                r.alg.to_string(),
                r.backend.name(),
                r.threads,
                r.per_second,
                r.per_thread(),
                scaling,
                size(r.memory_per_thread)
            );
        }
        for c in &attempt_cost {
            println!(
                "one {} attempt takes as long as {:.0} SHA-256 attempts ({}, one thread each, this run)",
                c.alg, c.sha256_attempts, c.sha256_backend
            );
        }
    }
    println!();
    if !fast.is_empty() {
        match ghz {
            Some(g) => println!(
                "of bound: the rate over the kernel's instruction bound (Backend::bound_per_ghz) at \
                 the measured clock, {g:.2} GHz"
            ),
            None => println!("of bound: not known (the clock could not be measured)"),
        }
    }
    let w = verify
        .iter()
        .map(|v| v.alg.to_string().len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "\nverify one stamp (parse, policy, work; no store), against the cost model the receiver budgets with:"
    );
    println!(
        "{:<w$} {:>5} {:>7} {:>10} {:>10} {:>10} {:>9}",
        "alg", "parts", "threads", "per stamp", "per part", "model", "model/run"
    );
    for v in &verify {
        println!(
            "{:<w$} {:>5} {:>7} {:>10} {:>10} {:>10} {:>9.2}{}",
            v.alg.to_string(),
            v.parts,
            v.threads,
            time(v.per_stamp_s),
            time(v.per_part_s),
            time(v.estimated_s),
            v.estimated_s / v.per_stamp_s,
            if v.threads == 1 && v.estimated_s < v.per_stamp_s {
                "  under the measured time"
            } else {
                ""
            }
        );
    }
    println!(
        "model: pennyblack::verify::estimated_cost, an estimate for one core made before any work"
    );
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

/// Seconds as us, ms or s, three or four significant digits.
fn time(s: f64) -> String {
    if s < 1e-5 {
        format!("{:.2}us", s * 1e6)
    } else if s < 1e-3 {
        format!("{:.1}us", s * 1e6)
    } else if s < 1e-2 {
        format!("{:.2}ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{s:.2}s")
    }
}

/// Bytes in the largest binary unit that divides them (0 for none).
fn size(bytes: u64) -> String {
    match bytes {
        0 => "0".into(),
        b if b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
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
