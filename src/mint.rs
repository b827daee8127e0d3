//! Minting: a [`MintRequest`] says what stamp to make, a [`Minter`] says how (threads, backend,
//! deadline, cancellation, progress).
//!
//! All threads search one prefix together, taking disjoint chunks of the counter space from a
//! shared atomic cursor; the first `parts` distinct solutions win and a stop flag, checked once
//! per chunk, ends the others. Every solution is re-checked with the plain hash crates before it
//! is accepted, so a faulty backend can cost time but never produce a bad stamp.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::backend::{Backend, COUNTER_SPACE, COUNTER_WIDTH, Job, counter_chars, counter_padding};
use crate::error::MintError;
use crate::stamp::{Algorithm, Fields, MAX_PARTS, Stamp, StampDate, Version, build_prefix};
use crate::verify::work;

/// Length of the random field before alignment padding: 16 base64 characters = 96 bits.
const RAND_CHARS: usize = 16;

/// What stamp to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The resource, usually the recipient's address. No `:`, white space or non-ASCII.
    pub resource: String,
    /// The algorithm: SHA-1 mints hashcash version 1 stamps, the others (SHA-256, BLAKE3,
    /// Argon2id, Equi-X) version 2.
    pub alg: Algorithm,
    /// The total work wanted, in bits. A stamp of K parts gets `ceil(bits - log2 K)` bits per part,
    /// so that its value `per-part bits + log2 K` is at least `bits`.
    pub bits: u32,
    /// Number of parts (1 for SHA-1; 1 to 64 otherwise).
    pub parts: u32,
    /// The extension field, `name1=v1,v2;name2`, or empty.
    pub ext: String,
    /// The date to write; `None` means now.
    pub date: Option<StampDate>,
    /// Digits of the date when it is taken from the clock: 6 (`YYMMDD`, default), 10 or 12.
    pub date_width: usize,
    /// Write the resource (an address) in hidden form, a digest keyed by the stamp's random
    /// field ([`crate::bind::hidden_resource`]), for a recipient who must not be named in the
    /// header (Bcc). The receiver matches it against its own envelope recipients.
    pub hidden: bool,
}

impl MintRequest {
    /// A request with the defaults: SHA-256, 20 bits in 16 parts, today's date, no extension.
    pub fn new(resource: impl Into<String>) -> Self {
        MintRequest {
            resource: resource.into(),
            alg: Algorithm::Sha256,
            bits: 20,
            parts: Algorithm::Sha256.default_parts(),
            ext: String::new(),
            date: None,
            date_width: 6,
            hidden: false,
        }
    }

    /// A hashcash-compatible request: SHA-1, version 1, one part of `bits`.
    pub fn hashcash(resource: impl Into<String>, bits: u32) -> Self {
        MintRequest {
            alg: Algorithm::Sha1,
            bits,
            parts: 1,
            ..MintRequest::new(resource)
        }
    }

    /// Sets the algorithm.
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }
    /// Sets the total bits of work.
    pub fn bits(mut self, bits: u32) -> Self {
        self.bits = bits;
        self
    }
    /// Sets the number of parts.
    pub fn parts(mut self, parts: u32) -> Self {
        self.parts = parts;
        self
    }
    /// Sets the extension field.
    pub fn ext(mut self, ext: impl Into<String>) -> Self {
        self.ext = ext.into();
        self
    }
    /// Writes the resource in hidden form (see [`MintRequest::hidden`]).
    pub fn hidden(mut self, yes: bool) -> Self {
        self.hidden = yes;
        self
    }
    /// Sets the date instead of taking it from the clock.
    pub fn date(mut self, date: StampDate) -> Self {
        self.date = Some(date);
        self
    }

    /// The length in bytes of the stamp text this request mints (the random field's padding and
    /// the counters' width are fixed, so it is known before any work).
    pub fn stamp_len(&self) -> usize {
        let date = self
            .date
            .or_else(|| StampDate::from_unix(0, self.date_width).ok());
        let Some(date) = date else { return usize::MAX };
        let placeholder = "-".repeat(crate::bind::HIDDEN_LEN);
        let fields = Fields {
            version: self.alg.version(),
            alg: self.alg,
            bits: match self.alg.version() {
                Version::V2 => self.bits_per_part(),
                _ => self.bits,
            },
            parts: self.parts,
            date: &date,
            resource: if self.hidden {
                &placeholder
            } else {
                &self.resource
            },
            ext: &self.ext,
            rand: "",
        };
        let without_rand = build_prefix(&fields).len();
        let parts = self.parts.max(1) as usize;
        without_rand
            + random_field_len(self.alg, without_rand)
            + parts * (counter_chars(self.alg) + 1)
            - 1
    }

    /// The bits each part must reach: `ceil(bits - log2(parts))`, at least 0.
    pub fn bits_per_part(&self) -> u32 {
        per_part_bits(self.bits, self.parts)
    }

    /// Bytes one minting thread holds for this request's attempts: an Argon2id attempt's memory
    /// (the thread's one block buffer, reused), Equi-X's solver memory (1,895,424 bytes, one per
    /// thread, reused), 0 for the hashes (a few hundred bytes of state).
    pub fn memory_per_thread(&self) -> u64 {
        match self.alg {
            Algorithm::Argon2id(p) => p.memory_bytes(),
            Algorithm::Equix => crate::equix::SOLVER_MEMORY_BYTES,
            _ => 0,
        }
    }

    /// The expected number of attempts to mint this stamp: parts x 2^(bits of a part) hashes
    /// or Argon2id evaluations; for Equi-X, solves (parts x [`crate::equix::expected_nonces`]:
    /// a solve gives about two solutions to try).
    pub fn expected_work(&self) -> f64 {
        match self.alg.version() {
            Version::V2 => expected_attempts(self.alg, self.bits_per_part(), self.parts),
            _ => 2f64.powi(self.bits as i32),
        }
    }

    /// Refuses requests that would make a stamp we do not want to exist (see [`MintError`]).
    pub fn validate(&self) -> Result<(), MintError> {
        if self.resource.is_empty() {
            return Err(MintError::EmptyResource);
        }
        // Hidden or not, the address must be one a stamp could name in clear.
        if self
            .resource
            .bytes()
            .any(|b| b == b':' || !b.is_ascii_graphic())
        {
            return Err(MintError::BadResource(self.resource.clone()));
        }
        if !ext_is_valid(&self.ext) {
            return Err(MintError::BadExtension(self.ext.clone()));
        }
        let alg = self.alg;
        // The fields are public: parameters built by hand are checked as the parser checks them.
        if let Some(p) = alg.argon2() {
            crate::stamp::Argon2Params::new(p.memory_kib, p.passes, p.lanes)
                .map_err(|e| MintError::BadParameters(alg, e))?;
        }
        if let Some(feature) = alg.feature().filter(|_| !alg.is_available()) {
            return Err(MintError::Unsupported {
                alg: alg.name(),
                feature,
            });
        }
        if !(1..=alg.max_parts()).contains(&self.parts) {
            return Err(MintError::BadParts {
                parts: self.parts,
                max: alg.max_parts(),
                alg: alg.name(),
            });
        }
        if self.bits > alg.output_bits() {
            return Err(MintError::BadBits {
                bits: self.bits,
                max: alg.output_bits(),
                alg: alg.name(),
            });
        }
        if !matches!(self.date_width, 6 | 10 | 12) {
            return Err(MintError::BadDate(format!(
                "date width {} is not 6, 10 or 12",
                self.date_width
            )));
        }
        Ok(())
    }
}

/// The expected attempts for `parts` parts of `bits` each: hashes or evaluations, or for Equi-X
/// solves.
fn expected_attempts(alg: Algorithm, bits: u32, parts: u32) -> f64 {
    let per_part = match alg {
        Algorithm::Equix => crate::equix::expected_nonces(bits),
        _ => 2f64.powi(bits as i32),
    };
    f64::from(parts.max(1)) * per_part
}

/// `ceil(bits - log2(parts))`: the per-part bits that give a total of `bits`; at least 1 when
/// `bits` is (a part of 0 bits needs no search, so a stamp of them is worth nothing).
pub fn per_part_bits(bits: u32, parts: u32) -> u32 {
    let exact = f64::from(bits) - f64::from(parts.max(1)).log2();
    // Guard against 20 - log2(16) coming out as 16.000000001.
    let floor = u32::from(bits > 0);
    ((exact - 1e-9).ceil().max(0.0) as u32).max(floor)
}

/// `name1=v1,v2;name2`: names and values of printable ASCII other than `:;,=` and white space.
fn ext_is_valid(ext: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_graphic() && !b":;,=".contains(&b))
    };
    ext.is_empty()
        || ext.split(';').all(|field| match field.split_once('=') {
            None => token(field),
            Some((name, values)) => token(name) && values.split(',').all(token),
        })
}

/// What a progress callback is told, a few times a second while a mint runs.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Attempts so far: hashes, Argon2id evaluations, or Equi-X solves (nonces).
    pub attempts: u64,
    /// The expected number of attempts for the whole stamp ([`MintRequest::expected_work`]).
    pub expected: f64,
    /// Parts found so far.
    pub found: u32,
    /// Parts wanted.
    pub parts: u32,
    /// Time since the mint started.
    pub elapsed: Duration,
}

type ProgressFn = dyn Fn(&Progress) + Send + Sync;

/// Mints stamps on a pool of worker threads.
pub struct Minter {
    threads: usize,
    backend: Option<Backend>,
    deadline: Option<Duration>,
    cancel: Arc<AtomicBool>,
    progress: Option<(Duration, Arc<ProgressFn>)>,
    pool: OnceLock<Result<rayon::ThreadPool, String>>,
    max_memory: u64,
}

/// Default [`Minter::max_memory`]: 1 GiB for all threads together.
pub const DEFAULT_MAX_MEMORY: u64 = 1 << 30;

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("threads", &self.threads)
            .field("backend", &self.backend)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Default for Minter {
    fn default() -> Self {
        Minter::new()
    }
}

impl Minter {
    /// A minter using every core and the fastest backend for each algorithm.
    pub fn new() -> Self {
        Minter {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: None,
            deadline: None,
            cancel: Arc::new(AtomicBool::new(false)),
            progress: None,
            pool: OnceLock::new(),
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }

    /// Bounds the memory of a memory-hard mint, all threads together (default 1 GiB): a stamp
    /// whose attempt needs `m` bytes runs on at most `limit / m` of the threads, and one whose
    /// attempt alone needs more than `limit` is refused ([`MintError::TooMuchMemory`]).
    pub fn max_memory(mut self, limit: u64) -> Self {
        self.max_memory = limit;
        self
    }

    /// The threads that mint `req`: all of them, or fewer when a memory-hard attempt's memory
    /// times the threads would pass [`max_memory`](Self::max_memory).
    pub fn threads_for(&self, req: &MintRequest) -> Result<usize, MintError> {
        let m = req.memory_per_thread();
        if m == 0 {
            return Ok(self.threads);
        }
        if m > self.max_memory {
            return Err(MintError::TooMuchMemory {
                alg: req.alg,
                needed: m,
                limit: self.max_memory,
            });
        }
        Ok(self.threads.min((self.max_memory / m) as usize).max(1))
    }

    /// Uses `n` worker threads (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self.pool = OnceLock::new();
        self
    }

    /// Forces a backend instead of detecting the fastest one.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Gives up with [`MintError::DeadlineExceeded`] when one stamp takes longer than `d`.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// Calls `f` every `every` while a mint runs (the first call after `every` has passed).
    pub fn on_progress(
        mut self,
        every: Duration,
        f: impl Fn(&Progress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some((every, Arc::new(f)));
        self
    }

    /// A flag that, once set, makes running and future mints return [`MintError::Cancelled`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// The number of worker threads.
    pub fn thread_count(&self) -> usize {
        self.threads
    }

    fn pool(&self) -> Result<&rayon::ThreadPool, MintError> {
        self.pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("pennyblack-mint-{i}"))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| MintError::ThreadPool(e.clone()))
    }

    /// Mints one stamp, with every worker thread.
    pub fn mint(&self, req: &MintRequest) -> Result<Stamp, MintError> {
        let threads = self.threads_for(req)?;
        let prepared = self.prepare(req)?;
        let found = self.search(&prepared.job, prepared.backend, req.parts, threads)?;
        Ok(prepared.finish(found))
    }

    /// Mints a stamp for each request; the results in the order of the requests. Stamps of
    /// little work (expected under 2^20 hashes, a few milliseconds on one core) are minted one
    /// per worker thread, as many at once as there are threads, so that each costs its work and
    /// a few microseconds rather than a wake-up of every thread; larger ones are minted one
    /// after the other with every thread, as [`mint`](Self::mint) does. The deadline applies to
    /// each stamp; once cancelled, the stamps not yet minted are [`MintError::Cancelled`].
    pub fn mint_many(&self, reqs: &[MintRequest]) -> Vec<Result<Stamp, MintError>> {
        use rayon::prelude::*;
        let pool = match self.pool() {
            Ok(pool) => pool,
            Err(e) => return reqs.iter().map(|_| Err(e.clone())).collect(),
        };
        // Memory-hard attempts take milliseconds: those stamps always get every thread.
        let (small, large): (Vec<usize>, Vec<usize>) = (0..reqs.len())
            .partition(|&i| reqs[i].expected_work() <= SMALL_WORK && !reqs[i].alg.is_memory_hard());
        let mut results: Vec<Option<Result<Stamp, MintError>>> = vec![None; reqs.len()];
        let minted: Vec<(usize, Result<Stamp, MintError>)> = pool.install(|| {
            small
                .par_iter()
                .map(|&i| (i, self.mint_here(&reqs[i])))
                .collect()
        });
        for (i, r) in minted {
            results[i] = Some(r);
        }
        for i in large {
            results[i] = Some(self.mint(&reqs[i]));
        }
        results
            .into_iter()
            .map(|r| r.expect("every request was minted"))
            .collect()
    }

    /// Mints one stamp on the calling thread only.
    fn mint_here(&self, req: &MintRequest) -> Result<Stamp, MintError> {
        let prepared = self.prepare(req)?;
        let found = self.search_here(&prepared.job, prepared.backend, req.parts)?;
        Ok(prepared.finish(found))
    }

    /// Everything before the search: the request checked, the prefix laid out, the backend
    /// chosen, the search precomputed.
    fn prepare(&self, req: &MintRequest) -> Result<Prepared, MintError> {
        req.validate()?;
        let date = match &req.date {
            Some(d) => *d,
            None => {
                let now = crate::clock::unix_now();
                StampDate::from_unix(now, req.date_width).map_err(MintError::BadDate)?
            }
        };
        let bits = match req.alg.version() {
            Version::V2 => req.bits_per_part(),
            _ => req.bits,
        };
        // A hidden resource has a fixed length: the random field is laid out for it, then the
        // digest keyed by that field takes its place.
        let placeholder = "-".repeat(crate::bind::HIDDEN_LEN);
        let mut fields = Fields {
            version: req.alg.version(),
            alg: req.alg,
            bits,
            parts: req.parts,
            date: &date,
            resource: if req.hidden {
                &placeholder
            } else {
                &req.resource
            },
            ext: &req.ext,
            rand: "",
        };
        let rand = random_field(req.alg, build_prefix(&fields).len())?;
        let hidden = crate::bind::hidden_resource(&rand, &req.resource);
        if req.hidden {
            fields.resource = &hidden;
        }
        fields.rand = &rand;
        let prefix = build_prefix(&fields);
        let backend = match self.backend {
            Some(b) => {
                b.require(req.alg)?;
                b
            }
            None => Backend::detect(req.alg),
        };
        let job = Job::new(req.alg, prefix.as_bytes(), COUNTER_WIDTH, bits);
        Ok(Prepared {
            prefix,
            job,
            backend,
        })
    }

    /// Finds `parts` distinct counters for `job` on the calling thread, checking the cancel
    /// flag and the deadline between chunks.
    fn search_here(&self, job: &Job, backend: Backend, parts: u32) -> Result<Vec<u64>, MintError> {
        let started = Instant::now();
        let parts = parts as usize;
        let per_part = 2f64.powi(job.bits as i32);
        let (mut found, mut hits) = (Vec::with_capacity(parts), Vec::new());
        let mut start = 0u64;
        while found.len() < parts {
            // The expected work of the parts still missing, and a little more: a small stamp is
            // one chunk, a large one checks the flags every 64K hashes.
            let missing = (parts - found.len()) as f64;
            let chunk = if job.alg.is_memory_hard() {
                1
            } else {
                ((per_part * missing * 1.25) as u64 + 8).clamp(8, 1 << 16)
            };
            if self.cancel.load(Ordering::Relaxed) {
                return Err(MintError::Cancelled);
            }
            if let Some(d) = self.deadline.filter(|&d| started.elapsed() >= d) {
                return Err(MintError::DeadlineExceeded(d));
            }
            if start >= COUNTER_SPACE {
                return Err(MintError::Exhausted);
            }
            backend.search(job, start, chunk, &mut hits);
            // Re-check the hits that are kept with the plain crates, as the threaded search does.
            for n in hits.drain(..) {
                if found.len() < parts && work::meets(job.alg, &job.message(n), job.bits) {
                    found.push(n);
                }
            }
            start = start.saturating_add(chunk);
        }
        Ok(found)
    }

    /// Finds `parts` distinct counters for `job` with every worker thread.
    fn search(
        &self,
        job: &Job,
        backend: Backend,
        parts: u32,
        threads: usize,
    ) -> Result<Vec<u64>, MintError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(MintError::Cancelled);
        }
        let pool = self.pool()?;
        let expected = expected_attempts(job.alg, job.bits, parts);
        // Chunks of ~1/8 of a part's expected work per thread, between 256 and 64K attempts:
        // small stamps finish fast, big ones check the stop flag rarely.
        // A memory-hard attempt takes milliseconds: one per chunk, so the stop flag is seen
        // within one attempt.
        let chunk = if job.alg.is_memory_hard() {
            1
        } else {
            ((2f64.powi(job.bits as i32) / 8.0) as u64).clamp(256, 1 << 16)
        };
        let shared = Shared {
            cursor: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                found: Vec::new(),
                running: threads,
            }),
            wake: Condvar::new(),
        };
        let started = Instant::now();
        let mut outcome: Result<(), MintError> = Ok(());
        pool.in_place_scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|_| worker(&shared, job, backend, chunk, parts as usize));
            }
            let mut last_report = Duration::ZERO;
            let mut state = shared.lock();
            while state.running > 0 {
                let tick = Duration::from_millis(50);
                state = shared
                    .wake
                    .wait_timeout(state, tick)
                    .map_or_else(|e| e.into_inner().0, |(g, _)| g);
                let elapsed = started.elapsed();
                if self.cancel.load(Ordering::Relaxed) {
                    outcome = Err(MintError::Cancelled);
                } else if let Some(d) = self.deadline.filter(|&d| elapsed >= d) {
                    outcome = Err(MintError::DeadlineExceeded(d));
                }
                if outcome.is_err() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                if let Some((every, f)) = &self.progress
                    && state.running > 0
                    && elapsed >= last_report + *every
                {
                    last_report = elapsed;
                    f(&Progress {
                        attempts: shared.attempts.load(Ordering::Relaxed),
                        expected,
                        found: state.found.len() as u32,
                        parts,
                        elapsed,
                    });
                }
            }
        });
        outcome?;
        let mut found = shared.lock().found.clone();
        if found.len() < parts as usize {
            return Err(MintError::Exhausted);
        }
        found.truncate(parts as usize);
        Ok(found)
    }
}

/// Stamps expected to take at most this many hashes ([`MintRequest::expected_work`]) are minted
/// one per thread by [`Minter::mint_many`].
pub const SMALL_WORK: f64 = (1u64 << 20) as f64;

/// A stamp ready to be searched for.
struct Prepared {
    prefix: String,
    job: Job,
    backend: Backend,
}

impl Prepared {
    /// The stamp of the counters found, in canonical order (sorted as text).
    fn finish(self, found: Vec<u64>) -> Stamp {
        let prefix = self.prefix;
        let mut counters: Vec<String> = found
            .into_iter()
            .map(|n| {
                self.job
                    .counter(n)
                    .expect("a hit names a solution the search found")
            })
            .collect();
        counters.sort_unstable();
        let text = format!("{prefix}{}", counters.join(","));
        // Read back through the one parser: what we write is what we accept.
        text.parse()
            .unwrap_or_else(|e| panic!("minted a stamp the parser refuses ({e}): {text}"))
    }
}

struct State {
    found: Vec<u64>,
    running: usize,
}

struct Shared {
    cursor: AtomicU64,
    attempts: AtomicU64,
    stop: AtomicBool,
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn worker(shared: &Shared, job: &Job, backend: Backend, chunk: u64, parts: usize) {
    let mut hits = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let start = shared.cursor.fetch_add(chunk, Ordering::Relaxed);
        if start >= COUNTER_SPACE {
            break;
        }
        backend.search(job, start, chunk, &mut hits);
        shared.attempts.fetch_add(chunk, Ordering::Relaxed);
        if hits.is_empty() {
            continue;
        }
        // Re-check every hit with the plain crates: a backend can never smuggle in a bad part.
        hits.retain(|&n| {
            let ok = work::meets(job.alg, &job.message(n), job.bits);
            debug_assert!(ok, "{backend} reported a false hit");
            ok
        });
        let mut state = shared.lock();
        state.found.append(&mut hits);
        if state.found.len() >= parts {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    let mut state = shared.lock();
    state.running -= 1;
    drop(state);
    shared.wake.notify_all();
}

/// A random field of at least 16 base64 characters, padded so that the counter lands where the
/// kernels want it (their layout rule, [`counter_padding`]).
pub(crate) fn random_field(
    alg: Algorithm,
    prefix_len_without_rand: usize,
) -> Result<String, MintError> {
    let mut bytes = vec![0u8; random_field_len(alg, prefix_len_without_rand)];
    getrandom::fill(&mut bytes).map_err(|e| MintError::Random(e.to_string()))?;
    Ok(bytes
        .iter()
        .map(|b| crate::backend::COUNTER_DIGITS[(b & 63) as usize] as char)
        .collect())
}

/// The length `random_field` gives: at least 16, padded by the kernels' layout rule.
pub(crate) fn random_field_len(alg: Algorithm, prefix_len_without_rand: usize) -> usize {
    RAND_CHARS + counter_padding(alg, prefix_len_without_rand + RAND_CHARS)
}

const _: () = assert!(MAX_PARTS <= 64);

#[cfg(test)]
mod tests {
    use super::*;

    /// The length promised before minting is the length minted, for every version and layout.
    #[test]
    fn stamp_len_is_known_before_the_work() {
        let minter = Minter::new().threads(1);
        for req in [
            MintRequest::hashcash("bob@example.org", 4),
            MintRequest::new("bob@example.org").bits(6).parts(3),
            MintRequest::new("b@x")
                .alg(Algorithm::Blake3)
                .bits(6)
                .parts(5)
                .ext("a=1"),
            MintRequest::new("carol@example.net")
                .bits(4)
                .parts(2)
                .hidden(true),
            MintRequest::hashcash("carol@example.net", 4).hidden(true),
        ] {
            let stamp = minter.mint(&req).unwrap();
            assert_eq!(stamp.as_str().len(), req.stamp_len(), "{stamp}");
        }
    }

    #[test]
    fn per_part_bits_never_undershoots() {
        assert_eq!(per_part_bits(20, 16), 16);
        assert_eq!(per_part_bits(20, 1), 20);
        assert_eq!(per_part_bits(20, 10), 17);
        assert_eq!(per_part_bits(2, 16), 1);
        assert_eq!(per_part_bits(0, 16), 0);
        for bits in 0..=40 {
            for parts in 1..=64 {
                let v = f64::from(per_part_bits(bits, parts)) + f64::from(parts).log2();
                assert!(v + 1e-9 >= f64::from(bits), "{bits} {parts}");
            }
        }
    }

    #[test]
    fn extension_grammar() {
        for ok in ["", "a", "a=1", "a=1,2;b", "id=0b1c;opt", "x=y;z=w,v"] {
            assert!(ext_is_valid(ok), "{ok}");
        }
        for bad in ["a:b", "a=", ";", "a;;b", "a b", "=1", "a=1,,2", "a=b=c"] {
            assert!(!ext_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn counters_land_where_the_kernels_want_them() {
        for alg in Algorithm::ALL {
            for base in 0..200 {
                let r = random_field(alg, base).unwrap();
                let end = (base + r.len() + COUNTER_WIDTH) % 64;
                assert_eq!(end, if alg == Algorithm::Blake3 { 0 } else { 55 });
                assert!(r.len() >= RAND_CHARS && r.bytes().all(crate::stamp::is_alphabet));
            }
        }
    }

    /// A memory-hard mint holds one attempt's memory per thread and never more than the
    /// minter's limit: fewer threads when needed, a refusal when one attempt is over it.
    #[test]
    fn memory_hard_threads_stay_under_the_limit() {
        use crate::stamp::Argon2Params;
        let p = Argon2Params::new(64 * 1024, 1, 1).unwrap();
        let req = MintRequest::new("bob@example.org").alg(Algorithm::Argon2id(p));
        assert_eq!(req.memory_per_thread(), 64 << 20);
        let minter = Minter::new().threads(8);
        assert_eq!(minter.threads_for(&req).unwrap(), 8);
        let minter = minter.max_memory(200 << 20);
        assert_eq!(minter.threads_for(&req).unwrap(), 3);
        let minter = minter.max_memory(32 << 20);
        assert!(matches!(
            minter.threads_for(&req),
            Err(MintError::TooMuchMemory { needed, limit, .. }) if needed == 64 << 20 && limit == 32 << 20
        ));
        assert!(matches!(
            minter.mint(&req),
            Err(MintError::TooMuchMemory { .. })
        ));
        // Parameters built by hand are checked before any work.
        let bad = Argon2Params {
            memory_kib: 8,
            passes: 1,
            lanes: 2,
        };
        assert!(matches!(
            MintRequest::new("b@x")
                .alg(Algorithm::Argon2id(bad))
                .validate(),
            Err(MintError::BadParameters(..))
        ));
        // Hashes hold no attempt memory: every thread, whatever the limit.
        assert_eq!(
            minter
                .threads_for(&MintRequest::new("bob@example.org"))
                .unwrap(),
            8
        );
    }

    /// A memory-hard mint stops within an attempt or so of its deadline or cancellation, not
    /// after a chunk of hundreds of attempts (chunks are one attempt for these algorithms).
    #[test]
    fn memory_hard_mint_honours_deadline_and_cancel() {
        let p = crate::stamp::Argon2Params::new(256, 1, 1).unwrap();
        // 2^30 expected attempts: only the deadline or the flag can end it.
        let req = MintRequest::new("bob@example.org")
            .alg(Algorithm::Argon2id(p))
            .bits(30)
            .parts(1);
        let minter = Minter::new()
            .threads(2)
            .deadline(Duration::from_millis(200));
        assert!(matches!(
            minter.mint(&req),
            Err(MintError::DeadlineExceeded(_))
        ));
        let minter = Minter::new().threads(2);
        let flag = minter.cancel_flag();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        assert!(matches!(minter.mint(&req), Err(MintError::Cancelled)));
        stopper.join().unwrap();
    }

    /// Argon2id stamps come out of the minter valid, with the parameters asked for, and as long
    /// as `stamp_len` said.
    #[test]
    fn memory_hard_mint_round_trip() {
        let p = crate::stamp::Argon2Params::new(64, 2, 2).unwrap();
        let req = MintRequest::new("bob@example.org")
            .alg(Algorithm::Argon2id(p))
            .bits(7)
            .parts(4);
        let minter = Minter::new().threads(2);
        let stamp = minter.mint(&req).unwrap();
        assert!(
            stamp.as_str().starts_with("2:argon2id-m64-t2-p2:5:4:"),
            "{stamp}"
        );
        assert_eq!(stamp.algorithm(), Algorithm::Argon2id(p));
        assert_eq!(work::value(&stamp), 7.0);
        assert_eq!(stamp.as_str().len(), req.stamp_len());
    }
}
