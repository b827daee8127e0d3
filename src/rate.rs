//! Measured rates: how many attempts per second a backend makes for an algorithm, on one or
//! more threads, and how long the verifier takes over one stamp. Used by the `bench` and
//! `calibrate` commands and the criterion benches.

use std::time::{Duration, Instant};

use crate::backend::{Backend, Search};
use crate::error::MintError;
use crate::mint::{MintRequest, Minter};
use crate::stamp::Algorithm;
use crate::verify::{FixedClock, Policy, Verifier, estimated_cost};

/// The memory-hard (slow-attempt) algorithms `pennyblack bench` measures when none is named, at
/// their default parameters, after [`Algorithm::ALL`]. A new such algorithm is one entry here.
pub const MEMORY_HARD_DEFAULTS: [Algorithm; 1] = [Algorithm::ARGON2ID];

/// Every algorithm `pennyblack bench` measures when none is named: the hashes of
/// [`Algorithm::ALL`], then [`MEMORY_HARD_DEFAULTS`].
pub fn default_algorithms() -> Vec<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .chain(MEMORY_HARD_DEFAULTS)
        .collect()
}

/// Attempts one measuring thread makes between looks at the clock: 64K for the hashes, one for
/// a memory-hard algorithm (an attempt takes from microseconds to a good part of a second).
fn attempts_per_chunk(alg: Algorithm) -> u64 {
    if alg.is_memory_hard() { 1 } else { 1 << 16 }
}

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
    /// Bytes each thread held for its attempts: the memory of one evaluation for a memory-hard
    /// algorithm (one reused buffer per thread), 0 for the hashes (a few hundred bytes of
    /// state). See [`MintRequest::memory_per_thread`].
    pub memory_per_thread: u64,
}

impl Rate {
    /// Attempts per second per thread.
    pub fn per_thread(&self) -> f64 {
        self.per_second / self.threads.max(1) as f64
    }
}

/// Hashes a realistic stamp prefix with `backend` on `threads` threads for about `duration`
/// (each thread on its own counter range, in chunks of 64K attempts, or of one attempt for a
/// memory-hard algorithm after one untimed attempt that allocates the thread's buffer; every
/// thread makes at least one chunk) and reports the rate;
/// [`MintError::BackendUnavailable`] when this CPU lacks the backend for `alg`. A memory-hard
/// algorithm runs on as many of `threads` as the minter would give it
/// ([`Minter::threads_for`], its default memory limit), [`MintError::TooMuchMemory`] when one
/// attempt alone is over that limit.
pub fn measure(
    alg: Algorithm,
    backend: Backend,
    threads: usize,
    duration: Duration,
) -> Result<Rate, MintError> {
    backend.require(alg)?;
    let req = MintRequest::new("bob@example.org").alg(alg);
    let threads = Minter::new().threads(threads.max(1)).threads_for(&req)?;
    let chunk = attempts_per_chunk(alg);
    let prefix = sample_prefix(alg);
    // 64 bits: practically never a hit, so only the scan is measured.
    let search = Search::new(alg, &prefix, 64);
    // A memory-hard attempt's first evaluation on a thread allocates its block buffer (a fresh
    // 64 MiB costs about as much as an attempt): each thread makes one untimed attempt first,
    // as the minter's long-lived threads have their buffer already.
    let warm = alg.is_memory_hard();
    let ready = std::sync::Barrier::new(threads + 1);
    let (started, attempts) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (search, ready) = (&search, &ready);
                s.spawn(move || {
                    let mut hits = Vec::new();
                    let mut n = (t as u64) << 40;
                    if warm {
                        let _ = search.run(backend, n, 1, &mut hits);
                        n += 1;
                    }
                    ready.wait();
                    let started = Instant::now();
                    let mut done = 0u64;
                    loop {
                        // Supported: required above.
                        let _ = search.run(backend, n, chunk, &mut hits);
                        n += chunk;
                        done += chunk;
                        if started.elapsed() >= duration {
                            break done;
                        }
                    }
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        let done: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        (started, done)
    });
    let seconds = started.elapsed().as_secs_f64();
    Ok(Rate {
        alg,
        backend,
        threads,
        attempts,
        seconds,
        per_second: attempts as f64 / seconds,
        memory_per_thread: req.memory_per_thread(),
    })
}

/// The measured time the verifier takes over one stamp.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct VerifyCost {
    /// The algorithm, with its parameters.
    pub alg: Algorithm,
    /// Parts of the stamp.
    pub parts: u32,
    /// Threads the verifier could use for the stamp's parts (a memory-hard stamp's parts are
    /// evaluated in parallel; a hash stamp's on the calling thread).
    pub threads: usize,
    /// Checks made.
    pub checks: u64,
    /// Wall time taken, seconds.
    pub seconds: f64,
    /// Wall time per stamp, seconds: parsing, the policy's checks and the work, no spent store.
    pub per_stamp_s: f64,
    /// `per_stamp_s / parts`.
    pub per_part_s: f64,
    /// What the verifier's cost model ([`estimated_cost`]) budgets for this stamp, seconds: an
    /// estimate for one core, meant to be above `per_stamp_s` when `threads` is 1.
    pub estimated_s: f64,
}

/// Why a verification cost could not be measured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// The stamp to verify could not be minted.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The freshly minted stamp was refused: what is timed would not be a whole check.
    #[error("a freshly minted stamp did not verify ({reason}): {stamp}")]
    NotValid {
        /// The stamp.
        stamp: String,
        /// The verdict's reason.
        reason: String,
    },
}

/// Mints a stamp of `alg` in `parts` parts with no work (0 bits: each part is the first counter
/// tried) and times [`Verifier::check`] on it, repeated for about `duration` (at least once),
/// with `threads` threads for the verifier's parallel parts (a rayon pool of that size; 1
/// times the single-threaded verifier). The policy accepts the stamp's algorithm and
/// parameters whatever they are and has no work budget, so the whole check is timed; the time
/// does not depend on the bits (the verifier evaluates every part the same way).
pub fn measure_verify(
    alg: Algorithm,
    parts: u32,
    threads: usize,
    duration: Duration,
) -> Result<VerifyCost, MeasureError> {
    let threads = threads.max(1);
    let req = MintRequest::new("bob@example.org")
        .alg(alg)
        .parts(parts)
        .bits(0);
    let stamp = Minter::new().threads(1).mint(&req)?.to_string();
    let policy = Policy {
        min_memory_kib: 0,
        max_memory_kib: u32::MAX,
        max_work: Duration::MAX,
        ..Policy::new(0, ["bob@example.org"]).with_min_value(alg, 0)
    };
    let verifier = Verifier::new(policy).with_clock(FixedClock(crate::clock::unix_now()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("pennyblack-verify-{i}"))
        .build()
        .map_err(|e| MintError::ThreadPool(e.to_string()))?;
    let (checks, seconds) = pool.install(|| -> Result<(u64, f64), MeasureError> {
        // One check before the clock starts: the threads' block buffers are allocated by it.
        let verdict = verifier
            .check(&stamp)
            .expect("a verifier without a spent store cannot fail");
        if let Err(e) = verdict.result() {
            return Err(MeasureError::NotValid {
                stamp: stamp.clone(),
                reason: e.to_string(),
            });
        }
        let started = Instant::now();
        let mut checks = 0u64;
        loop {
            let v = verifier
                .check(std::hint::black_box(&stamp))
                .expect("a verifier without a spent store cannot fail");
            std::hint::black_box(v);
            checks += 1;
            if started.elapsed() >= duration {
                return Ok((checks, started.elapsed().as_secs_f64()));
            }
        }
    })?;
    let per_stamp_s = seconds / checks as f64;
    Ok(VerifyCost {
        alg,
        parts,
        threads,
        checks,
        seconds,
        per_stamp_s,
        per_part_s: per_stamp_s / f64::from(parts.max(1)),
        estimated_s: estimated_cost(alg, parts).as_secs_f64(),
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
