//! The mint-time model: how long a stamp takes at a given hash rate, and which cost hits a target.
//!
//! One part of `b` bits needs a geometric number of attempts with mean `2^b`, which for the sizes
//! that matter is an exponential distribution: its quantile `q` is `-ln(1 - q)` times the mean,
//! so the 99th percentile is 4.6 times the mean. `K` parts of `b` bits searched together need the
//! attempts until the K-th hit: a sum of K such variables, a gamma (Erlang) distribution of shape
//! `K` and scale `2^b`, whose spread relative to its mean shrinks as `1/sqrt(K)`.

use std::time::Duration;

use crate::mint::per_part_bits;

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
    /// Expected number of hashes.
    pub expected_attempts: f64,
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

/// Predicted mint times for `bits` of total work in `parts` parts at `rate` hashes per second.
pub fn predict(rate: f64, bits: u32, parts: u32) -> Prediction {
    let parts = parts.max(1);
    let bpp = per_part_bits(bits, parts);
    let part_mean = 2f64.powi(bpp as i32);
    let expected = f64::from(parts) * part_mean;
    let secs = |a: f64| a / rate;
    Prediction {
        bits,
        parts,
        bits_per_part: bpp,
        value_bits: f64::from(bpp) + f64::from(parts).log2(),
        expected_attempts: expected,
        mean_s: secs(expected),
        p50_s: secs(part_mean * attempts_quantile(parts, 0.5)),
        p90_s: secs(part_mean * attempts_quantile(parts, 0.9)),
        p99_s: secs(part_mean * attempts_quantile(parts, 0.99)),
    }
}

/// The most total bits whose mean mint time at `rate` stays within `target` (0 if none does).
pub fn choose_bits(rate: f64, target: Duration, parts: u32, max_bits: u32) -> u32 {
    (0..=max_bits)
        .take_while(|&b| predict(rate, b, parts).mean_s <= target.as_secs_f64())
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
