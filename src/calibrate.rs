//! The mint-time model: how long a stamp takes at a given hash rate, and which cost hits a target.
//!
//! One part of `b` bits needs a geometric number of attempts with mean `2^b`, which for the sizes
//! that matter is an exponential distribution: its quantile `q` is `-ln(1 - q)` times the mean,
//! so the 99th percentile is 4.6 times the mean. `K` parts of `b` bits searched together need the
//! attempts until the K-th hit: a sum of K such variables, a gamma (Erlang) distribution of shape
//! `K` and scale `2^b`, whose spread relative to its mean shrinks as `1/sqrt(K)`.
//!
//! Exactly, the attempts until the K-th hit are negative binomial (each attempt a hit with
//! probability `2^-b`, independently: a hash's output and an Argon2id evaluation's alike, the
//! counter being part of the input). The gamma is within 0.5% of its quantiles from `b = 6` on,
//! but a memory-hard stamp's parts may need few attempts (a 64 MiB Argon2id attempt takes tens of
//! milliseconds, so a 2-second stamp is a few dozen attempts): there the gamma overstates the
//! tail (by 4% at the 99th percentile for 4 parts of 3 bits, by 150% for 4 parts of 0 bits, which
//! take exactly 4 attempts), so [`predict`] uses the exact distribution below 12 bits a part.
//! [`predict_for`] adds what the minter does beyond its search: it evaluates every hit again
//! before keeping it, one more whole evaluation a part for a memory-hard function.

use std::time::Duration;

use crate::mint::per_part_bits;
use crate::stamp::Algorithm;

/// Predicted mint times for one stamp shape at one hash rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Total work asked for, in bits.
    pub bits: u32,
    /// Number of parts.
    pub parts: u32,
    /// Bits each part must reach: `ceil(bits - log2 parts)`.
    pub bits_per_part: u32,
    /// What the stamp is worth: `bits_per_part + log2 parts`.
    pub value_bits: f64,
    /// Expected number of attempts of the search (hashes, or evaluations of a memory-hard
    /// function).
    pub expected_attempts: f64,
    /// Attempts the minter makes beyond the search, in the mean and every percentile below: the
    /// hits it evaluates again before keeping them (see [`overhead_attempts`]).
    pub overhead_attempts: f64,
    /// Mean mint time, seconds.
    pub mean_s: f64,
    /// Median mint time, seconds.
    pub p50_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
    /// 99th percentile, seconds.
    pub p99_s: f64,
}

/// The `q` quantile of the number of attempts for `parts` parts of `bits_per_part` bits, as a
/// multiple of one part's mean `2^bits_per_part`.
pub fn attempts_quantile(parts: u32, q: f64) -> f64 {
    if parts <= 1 {
        -(1.0 - q).ln()
    } else {
        puruspe::invgammp(q, f64::from(parts))
    }
}

/// Per-part bits from which [`predict`] takes the gamma's quantiles instead of the exact
/// negative binomial's (at 12 bits they differ by less than 0.01%).
const EXACT_BELOW_BITS: u32 = 12;

/// The `q` quantile of the number of attempts for `parts` parts of `bits_per_part` bits, exactly:
/// the least `n` with `P(N <= n) >= q`, where `N`, the attempts until the `parts`-th hit, is
/// negative binomial: `P(N <= n) = P(Binomial(n, 2^-b) >= parts) = I_p(parts, n - parts + 1)`.
pub fn attempts_quantile_exact(parts: u32, bits_per_part: u32, q: f64) -> f64 {
    quantile_exact(parts, 2f64.powi(-(bits_per_part.min(1000) as i32)), q)
}

/// The probability that one attempt of `alg` pays a part of `bits_per_part` bits: `2^-b` for a
/// hash and for Argon2id (one evaluation, one output); for Equi-X an attempt is one solve of one
/// nonce, which finds zero or more solutions (about 2 in the mean), any of which may meet the
/// bits, and which pays at most one part (nonces are distinct): `1 /
/// equix::expected_nonces(b)`. At 0 bits that is the chance a solve finds any solution at all.
pub fn hit_probability(alg: Algorithm, bits_per_part: u32) -> f64 {
    match alg {
        Algorithm::Equix => 1.0 / crate::equix::expected_nonces(bits_per_part),
        _ => 2f64.powi(-(bits_per_part.min(1000) as i32)),
    }
}

/// The negative binomial's `q` quantile: attempts until the `parts`-th hit, each a hit with
/// probability `p`.
fn quantile_exact(parts: u32, p: f64, q: f64) -> f64 {
    let k = f64::from(parts.max(1));
    let cdf = |n: f64| {
        if n < k {
            0.0
        } else if p >= 1.0 {
            1.0
        } else {
            puruspe::betai(k, n - k + 1.0, p)
        }
    };
    // Twice the gamma's quantile and some is above the exact one: bisect below it.
    let mut hi = (attempts_quantile(parts, q) / p * 2.0 + k + 64.0).ceil();
    while cdf(hi) < q {
        hi *= 2.0;
    }
    let mut lo = k - 1.0; // cdf(lo) < q
    while hi - lo > 1.0 {
        let mid = ((lo + hi) / 2.0).floor();
        if cdf(mid) >= q {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Attempts the minter makes for a stamp of `alg` in `parts` parts beyond its search: it
/// evaluates every hit again with the verifier's code before keeping it (so a faulty kernel can
/// cost time but never make a bad stamp). For a hash that is a few hashes against millions; for
/// a memory-hard function each is a whole evaluation, `parts` of them.
///
/// For Equi-X the re-check is a verification (HashX's interpreter, about 50 us) against a solve
/// of about 6.7 ms: counted as 1% of an attempt a part.
pub fn overhead_attempts(alg: Algorithm, parts: u32) -> f64 {
    match alg {
        Algorithm::Equix => 0.01 * f64::from(parts.max(1)),
        Algorithm::Argon2id(_) => f64::from(parts.max(1)),
        _ => 0.0,
    }
}

/// The density of the mint time, in seconds, for `parts` parts of mean time `part_mean_s` each.
pub fn time_density(parts: u32, part_mean_s: f64, t: f64) -> f64 {
    if t < 0.0 {
        return 0.0;
    }
    let k = f64::from(parts.max(1));
    let x = t / part_mean_s;
    // Erlang density: x^(k-1) e^-x / (k-1)!, scaled to seconds; computed in logs.
    let ln = (k - 1.0) * x.max(f64::MIN_POSITIVE).ln() - x - puruspe::ln_gamma(k);
    ln.exp() / part_mean_s
}

/// Predicted mint times for `bits` of total work in `parts` parts at `rate` attempts per second,
/// the search alone (no [`overhead_attempts`]): the gamma's quantiles from 12 bits a part, the
/// exact negative binomial's below.
pub fn predict(rate: f64, bits: u32, parts: u32) -> Prediction {
    predict_with(Algorithm::Sha256, rate, bits, parts, 0.0)
}

/// [`predict`] for a stamp of `alg`, with the minter's [`overhead_attempts`] for it.
pub fn predict_for(alg: Algorithm, rate: f64, bits: u32, parts: u32) -> Prediction {
    predict_with(alg, rate, bits, parts, overhead_attempts(alg, parts))
}

fn predict_with(alg: Algorithm, rate: f64, bits: u32, parts: u32, overhead: f64) -> Prediction {
    let parts = parts.max(1);
    let bpp = per_part_bits(bits, parts);
    let p = hit_probability(alg, bpp);
    let part_mean = 1.0 / p;
    let expected = f64::from(parts) * part_mean;
    let secs = |a: f64| (a + overhead) / rate;
    let quantile = |q: f64| {
        if bpp < EXACT_BELOW_BITS {
            quantile_exact(parts, p, q)
        } else {
            part_mean * attempts_quantile(parts, q)
        }
    };
    Prediction {
        bits,
        parts,
        bits_per_part: bpp,
        value_bits: f64::from(bpp) + f64::from(parts).log2(),
        expected_attempts: expected,
        overhead_attempts: overhead,
        mean_s: secs(expected),
        p50_s: secs(quantile(0.5)),
        p90_s: secs(quantile(0.9)),
        p99_s: secs(quantile(0.99)),
    }
}

/// The most total bits whose mean mint time at `rate` stays within `target` (0 if none does).
pub fn choose_bits(rate: f64, target: Duration, parts: u32, max_bits: u32) -> u32 {
    (0..=max_bits)
        .take_while(|&b| predict(rate, b, parts).mean_s <= target.as_secs_f64())
        .last()
        .unwrap_or(0)
}

/// [`choose_bits`] for a stamp of `alg`: its [`overhead_attempts`] counted, up to its output
/// bits.
pub fn choose_bits_for(alg: Algorithm, rate: f64, target: Duration, parts: u32) -> u32 {
    (0..=alg.output_bits())
        .take_while(|&b| predict_for(alg, rate, b, parts).mean_s <= target.as_secs_f64())
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_the_known_ratios() {
        // one part: p99 = ln(100) x mean
        assert!((attempts_quantile(1, 0.99) - 4.605).abs() < 0.01);
        // 16 parts: p99 / mean is about 1.7
        let r = attempts_quantile(16, 0.99) / 16.0;
        assert!((1.6..1.75).contains(&r), "{r}");
        let p = predict(1e6, 20, 16);
        assert_eq!((p.bits_per_part, p.value_bits), (16, 20.0));
        assert!((p.mean_s - 1.048_576).abs() < 1e-9);
        assert!(p.p50_s < p.mean_s && p.p99_s > p.p90_s);
    }

    /// The exact quantiles against values computed apart (Python, summing the binomial terms),
    /// and against the gamma where the two meet.
    #[test]
    fn exact_quantiles_of_few_attempts() {
        // 0 bits: every attempt is a hit, K parts take exactly K attempts.
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(attempts_quantile_exact(4, 0, q), 4.0);
        }
        // 4 parts of 3 bits: p50 30, p90 52, p99 77 attempts (the gamma: 29.4, 53.4, 80.4).
        assert_eq!(attempts_quantile_exact(4, 3, 0.5), 30.0);
        assert_eq!(attempts_quantile_exact(4, 3, 0.9), 52.0);
        assert_eq!(attempts_quantile_exact(4, 3, 0.99), 77.0);
        // 1 part of 4 bits: p99 72 (geometric: ceil(ln 0.01 / ln(15/16)) = 72).
        assert_eq!(attempts_quantile_exact(1, 4, 0.99), 72.0);
        // 4 parts of 10 bits: p50 3760, p99 10283 (the gamma 3760.2, 10286.2).
        assert_eq!(attempts_quantile_exact(4, 10, 0.5), 3760.0);
        assert_eq!(attempts_quantile_exact(4, 10, 0.99), 10283.0);
        for (parts, b) in [(1, 11), (16, 11), (64, 11)] {
            for q in [0.5, 0.9, 0.99] {
                let exact = attempts_quantile_exact(parts, b, q);
                let gamma = attempts_quantile(parts, q) * 2f64.powi(b as i32);
                assert!((exact / gamma - 1.0).abs() < 1e-3, "{parts} {b} {q}");
            }
        }
    }

    /// The model's premise for a memory-hard function: each Argon2id attempt is a hit with
    /// probability 2^-b, independently, so the gaps between hits are geometric. Deterministic
    /// (a fixed prefix, counters 0 to 8191 at 8 KiB): 8192 attempts at 3 bits expect 1024 hits
    /// (standard deviation 30), and a gap longer than 8 attempts has probability
    /// (7/8)^8 = 0.344. This prefix gives 1097 hits (2.4 standard deviations over), 31.7% of the
    /// gaps longer than 8, a mean gap of 7.46.
    #[test]
    fn argon2id_hits_are_bernoulli() {
        let alg = Algorithm::Argon2id(crate::stamp::Argon2Params::new(8, 1, 1).unwrap());
        let prefix = b"2:argon2id-m8-t1-p1:3:1:261127:bob@example.org::AAAAAAAAAAAAAAAA:";
        let search = crate::backend::Search::new(alg, prefix, 3);
        let mut hits = Vec::new();
        search
            .run(crate::Backend::Portable, 0, 8192, &mut hits)
            .unwrap();
        assert!(
            (1024 - 150..1024 + 150).contains(&hits.len()),
            "{}",
            hits.len()
        );
        let gaps: Vec<u64> = hits.windows(2).map(|w| w[1] - w[0]).collect();
        let long = gaps.iter().filter(|&&g| g > 8).count() as f64 / gaps.len() as f64;
        assert!((0.29..0.40).contains(&long), "{long}");
        let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
        assert!((7.0..9.0).contains(&mean), "{mean}");
    }

    #[test]
    fn memory_hard_predictions_count_the_rechecks() {
        let hash = predict_for(Algorithm::Sha256, 1000.0, 14, 4);
        let argon = predict_for(Algorithm::ARGON2ID, 1000.0, 14, 4);
        assert_eq!(hash, predict(1000.0, 14, 4));
        assert_eq!(argon.overhead_attempts, 4.0);
        assert!((argon.mean_s - (4.0 * 4096.0 + 4.0) / 1000.0).abs() < 1e-12);
        // 2^12 x 4 + 4 attempts at 1000/s: 16.4 s; 13 bits would be 8.2 s.
        let target = Duration::from_secs(10);
        assert_eq!(choose_bits_for(Algorithm::ARGON2ID, 1000.0, target, 4), 13);
        assert_eq!(
            choose_bits_for(Algorithm::ARGON2ID, 1000.0, Duration::ZERO, 4),
            0
        );
    }

    /// An Equi-X attempt is one solve, which pays a part with probability
    /// 1 / expected_nonces(b): more than 2^-b (a solve has about two solutions), less than 1 at
    /// 0 bits (some solves have none). The prediction's mean is that many solves a part.
    #[test]
    fn equix_predictions_count_solves_not_hashes() {
        let p0 = hit_probability(Algorithm::Equix, 0);
        assert!((0.8..0.95).contains(&p0), "{p0}");
        let p8 = hit_probability(Algorithm::Equix, 8);
        // 1 - E[(1 - 2^-8)^S], S the solutions of a solve (mean about 1.98).
        assert!((1.9 / 256.0..2.0 / 256.0).contains(&p8), "{p8}");
        let e = predict_for(Algorithm::Equix, 100.0, 10, 4);
        assert_eq!(e.bits_per_part, 8);
        let solves = 4.0 * crate::equix::expected_nonces(8);
        assert!((e.expected_attempts - solves).abs() < 1e-9);
        assert!((e.mean_s - (solves + 0.04) / 100.0).abs() < 1e-9);
        // Half the hash's attempts, near enough, and the quantiles in order.
        let h = predict(100.0, 10, 4);
        let r = h.expected_attempts / e.expected_attempts;
        assert!((1.9..2.0).contains(&r), "{r}");
        assert!(e.p50_s < e.mean_s && e.mean_s < e.p90_s && e.p90_s < e.p99_s);
        // 0 bits: 4 parts need at least 4 solves, and some solves find nothing.
        let z = predict_for(Algorithm::Equix, 1.0, 0, 4);
        assert!(z.expected_attempts > 4.0 && z.p50_s >= 4.0, "{z:?}");
        // At 148 solves/s, 4 parts of 6 bits take 0.87 s in the mean, of 7 bits 1.75 s: 8 bits.
        let target = Duration::from_secs(1);
        let chosen = choose_bits_for(Algorithm::Equix, 148.0, target, 4);
        assert!(predict_for(Algorithm::Equix, 148.0, chosen, 4).mean_s <= 1.0);
        assert!(predict_for(Algorithm::Equix, 148.0, chosen + 1, 4).mean_s > 1.0);
        assert_eq!(chosen, 6 + 2);
    }

    #[test]
    fn choose_bits_stays_within_target() {
        let rate = 1e6; // 2^20 hashes take ~1.05 s
        assert_eq!(choose_bits(rate, Duration::from_secs(1), 1, 160), 19);
        assert_eq!(choose_bits(rate, Duration::from_secs(2), 1, 160), 20);
        assert_eq!(choose_bits(rate, Duration::from_secs(2), 16, 256), 20);
        assert_eq!(choose_bits(rate, Duration::from_nanos(1), 1, 160), 0);
    }

    #[test]
    fn density_integrates_to_one() {
        for parts in [1, 4, 16] {
            let dt = 0.001;
            let total: f64 = (0..20_000)
                .map(|i| time_density(parts, 0.1, i as f64 * dt) * dt)
                .sum();
            assert!((total - 1.0).abs() < 0.02, "{parts}: {total}");
        }
    }
}
