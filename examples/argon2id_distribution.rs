//! Does the mint-time model (`pennyblack::calibrate`) hold for Argon2id stamps? Two checks,
//! quoted in docs/PERFORMANCE.md ("Memory-hard stamps"):
//!
//! 1. Attempts, free of timing noise: stamps minted on one thread (so the counters are tried
//!    in order from 0 and the largest counter kept is the last attempt) at the cheapest
//!    parameters (8 KiB: the hit probability of an attempt does not depend on its cost), their
//!    attempt counts against the negative binomial's mean and quantiles and the gamma's.
//! 2. Time: the rate measured as `calibrate` measures it, the bits it would choose for a
//!    target, then that many stamps minted with every thread and timed, against `predict_for`.
//!
//! `cargo run --release --example argon2id_distribution -- [MEMORY_KIB [TARGET_MS [STAMPS]]]`
//! (default 1024 KiB, 250 ms, 100 stamps).

use std::time::{Duration, Instant};

use pennyblack::calibrate::{
    attempts_quantile, attempts_quantile_exact, choose_bits_for, predict_for,
};
use pennyblack::{Algorithm, Argon2Params, Backend, MintRequest, Minter};

const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn counter_value(c: &str) -> u64 {
    c.bytes().fold(0, |n, b| {
        n * 64
            + DIGITS
                .iter()
                .position(|&d| d == b)
                .expect("a counter digit") as u64
    })
}

/// The `q` quantile of sorted samples (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn attempts(parts: u32, bits_per_part: u32, stamps: usize) {
    let alg = Algorithm::Argon2id(Argon2Params::new(8, 1, 1).expect("valid parameters"));
    let minter = Minter::new().threads(1);
    let bits = bits_per_part + parts.ilog2();
    let mut n: Vec<f64> = (0..stamps)
        .map(|i| {
            let req = MintRequest::new(format!("u{i}@example.org"))
                .alg(alg)
                .parts(parts)
                .bits(bits);
            let stamp = minter.mint(&req).expect("minted");
            let last = stamp
                .counters()
                .map(counter_value)
                .max()
                .expect("a counter");
            (last + 1) as f64
        })
        .collect();
    n.sort_by(f64::total_cmp);
    let mean = n.iter().sum::<f64>() / n.len() as f64;
    let m = 2f64.powi(bits_per_part as i32);
    println!(
        "{parts} parts of {bits_per_part} bits, {stamps} stamps: mean {mean:.1} (model {:.1})",
        f64::from(parts) * m
    );
    for q in [0.5, 0.9, 0.99] {
        println!(
            "  p{:<2} measured {:>7.0}  negative binomial {:>7.0}  gamma {:>7.1}",
            (q * 100.0) as u32,
            quantile(&n, q),
            attempts_quantile_exact(parts, bits_per_part, q),
            attempts_quantile(parts, q) * m
        );
    }
}

fn times(memory_kib: u32, target: Duration, stamps: usize) {
    let alg = Algorithm::Argon2id(Argon2Params::new(memory_kib, 1, 1).expect("valid parameters"));
    let minter = Minter::new();
    let threads = minter
        .threads_for(&MintRequest::new("x@example.org").alg(alg))
        .expect("within the memory limit");
    // As `calibrate` measures: the median of 5 samples, one second in all.
    let mut rates: Vec<f64> = (0..5)
        .map(|_| {
            pennyblack::rate::measure(alg, Backend::Portable, threads, Duration::from_millis(200))
                .expect("measured")
                .per_second
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let rate = rates[2];
    let parts = alg.default_parts();
    let bits = choose_bits_for(alg, rate, target, parts);
    let p = predict_for(alg, rate, bits, parts);
    let mut t: Vec<f64> = (0..stamps)
        .map(|i| {
            let req = MintRequest::new(format!("u{i}@example.org"))
                .alg(alg)
                .parts(parts)
                .bits(bits);
            let started = Instant::now();
            minter.mint(&req).expect("minted");
            started.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let mean = t.iter().sum::<f64>() / t.len() as f64;
    println!(
        "{alg}, {threads} threads, {rate:.1} attempts/s: --bits {bits} --parts {parts} ({} bits a part), {stamps} stamps",
        p.bits_per_part
    );
    println!("  mean measured {mean:.3}s  predicted {:.3}s", p.mean_s);
    for (q, pred) in [(0.5, p.p50_s), (0.9, p.p90_s), (0.99, p.p99_s)] {
        println!(
            "  p{:<2} measured {:.3}s  predicted {pred:.3}s",
            (q * 100.0) as u32,
            quantile(&t, q)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let memory_kib = arg(0, 1024) as u32;
    let target = Duration::from_millis(arg(1, 250));
    let stamps = arg(2, 100) as usize;
    println!("attempts until the last part (one thread, 8 KiB):");
    attempts(1, 4, 4000);
    attempts(4, 3, 4000);
    attempts(4, 6, 1000);
    println!("mint times:");
    times(memory_kib, target, stamps);
}
