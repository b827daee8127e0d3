//! Measured hash rates: how many attempts per second a backend makes for an algorithm, on one or
//! more threads. Used by the `bench` and `calibrate` commands.

use std::time::{Duration, Instant};

use crate::backend::{Backend, Search};
use crate::error::MintError;
use crate::stamp::Algorithm;

/// A measured rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    /// The algorithm.
    pub alg: Algorithm,
    /// The backend.
    pub backend: Backend,
    /// Threads used.
    pub threads: usize,
    /// Attempts made.
    pub attempts: u64,
    /// Wall time taken, seconds.
    pub seconds: f64,
    /// Attempts per second, all threads together.
    pub per_second: f64,
}

/// Hashes a realistic stamp prefix with `backend` on `threads` threads for about `duration`
/// (each thread on its own counter range, chunks of 64K attempts) and reports the rate;
/// [`MintError::BackendUnavailable`] when this CPU lacks the backend for `alg`.
pub fn measure(
    alg: Algorithm,
    backend: Backend,
    threads: usize,
    duration: Duration,
) -> Result<Rate, MintError> {
    backend.require(alg)?;
    const CHUNK: u64 = 1 << 16;
    let threads = threads.max(1);
    let prefix = sample_prefix(alg);
    // 64 bits: practically never a hit, so only the scan is measured.
    let search = Search::new(alg, &prefix, 64);
    let started = Instant::now();
    let attempts: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let search = &search;
                s.spawn(move || {
                    let mut hits = Vec::new();
                    let mut n = (t as u64) << 40;
                    let mut done = 0u64;
                    while started.elapsed() < duration {
                        // Supported: required above.
                        let _ = search.run(backend, n, CHUNK, &mut hits);
                        n += CHUNK;
                        done += CHUNK;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let seconds = started.elapsed().as_secs_f64();
    Ok(Rate {
        alg,
        backend,
        threads,
        attempts,
        seconds,
        per_second: attempts as f64 / seconds,
    })
}

/// A stamp prefix laid out exactly as the minter lays out a stamp for `bob@example.org` (random
/// field padded so the counter lands where the kernels want it), for measurements.
pub fn sample_prefix(alg: Algorithm) -> Vec<u8> {
    let head = match alg {
        Algorithm::Sha1 => "1:20:261127:bob@example.org::".to_owned(),
        _ => format!("2:{alg}:16:16:261127:bob@example.org::"),
    };
    let rand = crate::mint::random_field(alg, head.len() + 1).unwrap_or_else(|_| {
        // Without an RNG the content does not matter for a measurement, only the length.
        "A".repeat(crate::mint::random_field_len(alg, head.len() + 1))
    });
    format!("{head}{rand}:").into_bytes()
}

/// The core clock in GHz, measured: the time of a chain of dependent register adds (one cycle
/// each on every x86 core), best of 25 runs of about 3 ms so that a run disturbed by other load
/// does not count. Elsewhere the `cpu MHz` of `/proc/cpuinfo`, which may be a nominal figure.
/// Used to turn [`Backend::bound_per_ghz`] into candidates per second.
pub fn clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        const ADDS: u64 = 64 * 200_000;
        let mut best = f64::INFINITY;
        for _ in 0..25 {
            let started = Instant::now();
            let mut x = 0u64;
            for _ in 0..200_000 {
                // SAFETY: register-only arithmetic, no memory, stack or flags the compiler uses.
                unsafe {
                    std::arch::asm!(
                        ".rept 64", "add {x}, {one}", ".endr",
                        x = inout(reg) x, one = in(reg) 1u64,
                        options(nomem, nostack, pure)
                    );
                }
            }
            std::hint::black_box(x);
            best = best.min(started.elapsed().as_secs_f64());
        }
        Some(ADDS as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        text.lines()
            .find(|l| l.starts_with("cpu MHz"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|mhz| mhz / 1000.0)
    }
}
