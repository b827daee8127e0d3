//! Constant-time evidence for verification (the dudect method: Welch's t-test on the timings of
//! two classes, computed here): the time to verify a stamp must not depend on whether its hashes
//! meet the target, how many leading zero bits they have, or where they differ from it; only on
//! the stamp's length and number of parts.
//!
//! Each test times `Verifier::check` on two classes of stamps of exactly the same shape (same
//! algorithm, parts, bits, date, resource and length), drawn at random, 100,000 samples. From
//! each minted stamp, the last counter is replaced by the same search three times over: one whose
//! hash meets the claim (valid), one with exactly one zero bit too few (near miss), one whose hash
//! starts with a one bit (far miss). `*_valid_vs_invalid` compares valid with near misses,
//! `*_near_vs_far` the two misses. Every sample is copied into the same cache-line-aligned buffer
//! just before it is timed, so where a text is stored is no difference between the classes.
//! As dudect does, the t statistic is computed on all samples and on the samples below each of a
//! few percentiles (cropping the slow tail that interrupts and the neighbour's load add), and
//! the largest |t| is reported. dudect's rule: |t| above 5 is evidence of a timing difference;
//! below, none was found in that many samples.
//!
//! Run: `cargo bench --bench ct` (every test), `cargo bench --bench ct -- sha1` (a filter).

use std::time::Instant;

use pennyblack::{Algorithm, FixedClock, MintRequest, Minter, Policy, Stamp, Verifier};
use rand::{RngExt, SeedableRng};

const POOL: usize = 128;
const SAMPLES: usize = 100_000;
const NOW: i64 = 1_795_780_800; // 2026-11-27T12:00:00Z
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Leading zero bits of the digest of `msg` (the concatenation of `parts`).
fn zeros(alg: Algorithm, parts: &[&[u8]]) -> u32 {
    use sha2::Digest as _;
    let d: Vec<u8> = match alg {
        Algorithm::Sha1 => {
            let mut h = sha1::Sha1::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().to_vec()
        }
        Algorithm::Sha256 => {
            let mut h = sha2::Sha256::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().to_vec()
        }
        _ => {
            let mut h = blake3::Hasher::new();
            parts.iter().for_each(|p| {
                h.update(p);
            });
            h.finalize().as_bytes().to_vec()
        }
    };
    let mut n = 0;
    for b in d {
        n += b.leading_zeros();
        if b != 0 {
            break;
        }
    }
    n
}

/// The text of `stamp` with its last counter replaced by one (same width, still the largest,
/// its last four characters found by the same search whatever the class) whose hash has a
/// number of leading zero bits that `want` accepts.
fn with_last_counter(stamp: &Stamp, want: impl Fn(u32) -> bool) -> String {
    let text = stamp.as_str();
    let counters: Vec<&str> = stamp.counters().collect();
    let last = *counters.last().unwrap();
    let (keep, _) = last.split_at(last.len() - 4);
    let head = &text[..text.len() - last.len()];
    for x in 0..64 * 64 * 64 * 64usize {
        let c = format!(
            "{keep}{}{}{}{}",
            ALPHABET[x / 262_144] as char,
            ALPHABET[x / 4096 % 64] as char,
            ALPHABET[x / 64 % 64] as char,
            ALPHABET[x % 64] as char
        );
        if counters.len() > 1 && c.as_str() <= counters[counters.len() - 2] {
            continue;
        }
        let hashed: Vec<&[u8]> = match stamp.version() {
            pennyblack::Version::V2 => vec![stamp.prefix().as_bytes(), c.as_bytes()],
            _ => vec![head.as_bytes(), c.as_bytes()],
        };
        if want(zeros(stamp.algorithm(), &hashed)) {
            return format!("{head}{c}");
        }
    }
    panic!("no counter of the wanted class for {text}");
}

struct Pools {
    verifier: Verifier,
    /// Valid stamps.
    valid: Vec<String>,
    /// The same stamps, last part one bit short: its hash has bits - 1 zero bits.
    near: Vec<String>,
    /// The same stamps, last part far off: its hash starts with a one bit.
    far: Vec<String>,
}

/// Stamps of one shape (algorithm, parts, bits, date, resource and length).
fn pools(alg: Algorithm, bits: u32, parts: u32) -> Pools {
    let minter = Minter::new();
    let verifier =
        Verifier::new(Policy::new(bits, ["bob@example.org"])).with_clock(FixedClock(NOW));
    let date = pennyblack::StampDate::from_unix(NOW, 6).unwrap();
    let req = MintRequest::new("bob@example.org")
        .alg(alg)
        .bits(bits)
        .parts(parts)
        .date(date);
    let mut p = Pools {
        verifier,
        valid: Vec::new(),
        near: Vec::new(),
        far: Vec::new(),
    };
    while p.valid.len() < POOL {
        let stamp = minter.mint(&req).unwrap();
        let per_part = stamp.bits();
        // The minter's own last counter is replaced too, so that the three classes differ
        // only in their hashes, not in how their counters were made.
        let valid = with_last_counter(&stamp, |z| z >= per_part);
        let near = with_last_counter(&stamp, |z| z == per_part - 1);
        let far = with_last_counter(&stamp, |z| z == 0);
        for (text, ok) in [(&valid, true), (&near, false), (&far, false)] {
            assert_eq!(text.len(), stamp.as_str().len());
            assert_eq!(p.verifier.check(text).unwrap().is_valid(), ok, "{text}");
        }
        p.valid.push(valid);
        p.near.push(near);
        p.far.push(far);
    }
    p
}

/// The buffer every timed text is copied into just before it is timed: every sample of both
/// classes is read from the same (cache-line-aligned) address, so no address effect (a text
/// crossing a cache line, 4K aliasing with the stack, where the heap put a class) can differ
/// between the classes. With a fixed place per text, such effects are a constant per text and
/// add up to a bias that grows with the number of samples instead of averaging out.
#[repr(align(64))]
struct Slot([u8; 1024]);

/// Running mean and variance (Welch's online update).
#[derive(Default, Clone, Copy)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }
    fn var(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            self.m2 / (self.n - 1.0)
        }
    }
}

/// Welch's t of two classes' moments.
fn welch_t(a: &Moments, b: &Moments) -> f64 {
    let se = (a.var() / a.n + b.var() / b.n).sqrt();
    if se == 0.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

/// Times `check` on `left` against `right`, in random order; returns the largest |t| over the
/// uncropped samples and the samples under a few percentiles, with its sign.
fn compare(rng: &mut rand::rngs::StdRng, v: &Verifier, left: &[String], right: &[String]) -> f64 {
    let mut order = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let i = rng.random_range(0..POOL);
        if rng.random::<bool>() {
            order.push((0usize, left[i].as_bytes()));
        } else {
            order.push((1usize, right[i].as_bytes()));
        }
    }
    let mut slot = Box::new(Slot([0; 1024]));
    let mut times: Vec<(usize, f64)> = Vec::with_capacity(SAMPLES);
    for (class, text) in order {
        slot.0[..text.len()].copy_from_slice(text);
        let text = std::str::from_utf8(&slot.0[..text.len()]).unwrap();
        let t0 = Instant::now();
        let ok = v.check(text).unwrap().is_valid();
        let dt = t0.elapsed().as_nanos() as f64;
        std::hint::black_box(ok);
        times.push((class, dt));
    }
    let mut sorted: Vec<f64> = times.iter().map(|&(_, t)| t).collect();
    sorted.sort_by(f64::total_cmp);
    let cut = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    let mut best = 0.0f64;
    for limit in [f64::INFINITY, cut(0.9), cut(0.75), cut(0.5)] {
        let mut m = [Moments::default(); 2];
        for &(class, t) in &times {
            if t <= limit {
                m[class].push(t);
            }
        }
        let t = welch_t(&m[0], &m[1]);
        if t.abs() > best.abs() {
            best = t;
        }
    }
    best
}

type Test = (&'static str, Algorithm, u32, u32, bool);

/// (name, algorithm, bits, parts, valid-vs-near rather than near-vs-far)
const TESTS: [Test; 6] = [
    ("sha1_valid_vs_invalid", Algorithm::Sha1, 16, 1, true),
    ("sha1_near_vs_far", Algorithm::Sha1, 16, 1, false),
    ("sha256_valid_vs_invalid", Algorithm::Sha256, 20, 16, true),
    ("sha256_near_vs_far", Algorithm::Sha256, 20, 16, false),
    ("blake3_valid_vs_invalid", Algorithm::Blake3, 20, 16, true),
    ("blake3_near_vs_far", Algorithm::Blake3, 20, 16, false),
];

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for (name, alg, bits, parts, valid) in TESTS {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let p = pools(alg, bits, parts);
        let t = if valid {
            compare(&mut rng, &p.verifier, &p.valid, &p.near)
        } else {
            compare(&mut rng, &p.verifier, &p.near, &p.far)
        };
        let verdict = if t.abs() > 5.0 {
            "timing difference"
        } else {
            "no evidence of a difference"
        };
        println!(
            "{name:26} {SAMPLES} samples  max |t| = {:6.2} ({t:+.2})  {verdict}",
            t.abs()
        );
    }
}
