//! Memory-hard stamps: any bytes parse or fail without panicking; a parsed stamp formats back
//! to exactly its text and parses to the same stamp, and its algorithm field alone does too.
//! Inputs that start with `2:argon2id` are also verified under a strict, small policy (8 to 64
//! KiB, 5 ms of estimated work, a fixed clock) so that fuzzing never allocates much, and the
//! verdict's reason must agree with the stamp and the policy: a malformed verdict when the text
//! does not parse (or, once admitted, names a date that does not exist), a cost refusal exactly
//! when a parameter breaks a bound (naming it), an over-budget refusal only over 5 ms of
//! estimated work and a checked verdict only within it, and a value only for work that was
//! checked (bits + log2 parts).
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pennyblack::verify::estimated_cost;
use pennyblack::{Algorithm, FixedClock, Policy, Stamp, Verifier, VerifyError, Version};

/// 2026-11-28T00:00:00Z.
const NOW: i64 = 1_795_824_000;
const MIN_KIB: u32 = 8;
const MAX_KIB: u32 = 64;
const MAX_WORK: Duration = Duration::from_millis(5);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = text.parse::<Stamp>();
    if let Ok(stamp) = &parsed {
        assert_eq!(stamp.to_string(), text.trim_ascii());
        let again: Stamp = stamp.to_string().parse().expect("a formatted stamp parses");
        assert_eq!(&again, stamp);
        if stamp.version() == Version::V2 {
            let field = stamp.algorithm().to_string();
            assert_eq!(stamp.as_str().split(':').nth(1), Some(field.as_str()));
            assert_eq!(field.parse::<Algorithm>(), Ok(stamp.algorithm()));
        }
    }
    if !data.starts_with(b"2:argon2id") {
        return;
    }
    let policy = Policy {
        min_memory_kib: MIN_KIB,
        max_memory_kib: MAX_KIB,
        max_work: MAX_WORK,
        ..Policy::default()
    }
    .with_min_value(Algorithm::ARGON2ID, 0);
    let verdict = Verifier::new(policy)
        .with_clock(FixedClock(NOW))
        .check(&text)
        .expect("no store, so no store error");
    let result = verdict.result();
    let stamp = match parsed {
        Err(e) => {
            assert_eq!(result, Err(VerifyError::Malformed(e)));
            assert_eq!(verdict.value, 0.0);
            return;
        }
        Ok(stamp) => stamp,
    };
    let p = stamp
        .algorithm()
        .argon2()
        .expect("a stamp opening with 2:argon2id that parses is Argon2id");
    let m = u64::from(p.memory_kib);
    let memory_ok = (u64::from(MIN_KIB)..=u64::from(MAX_KIB)).contains(&m);
    let cost = estimated_cost(stamp.algorithm(), stamp.parts() as u32);
    match &result {
        // The calendar is checked against the clock (it decides a two-digit year's century):
        // a date that does not exist then is the one way a parsed stamp is malformed, and it is
        // found after the cost bounds.
        Err(VerifyError::Malformed(e)) => {
            assert_eq!(stamp.date().to_unix(NOW).map(|_| ()), Err(e.clone()));
            assert!(memory_ok, "{m} KiB was admitted");
        }
        Err(VerifyError::NotAccepted { alg }) => panic!("the policy names argon2id: {alg}"),
        Err(VerifyError::OutOfPolicy { what, value, .. }) => {
            assert_eq!(*what, "memory (KiB)", "parts are at most 64, the bound");
            assert_eq!(*value, m);
            assert!(!memory_ok, "{m} KiB is within {MIN_KIB}..={MAX_KIB}");
        }
        Err(VerifyError::OverBudget { cost_us, left_us }) => {
            assert!(memory_ok);
            assert!(cost > MAX_WORK, "{cost:?}");
            assert_eq!(*cost_us, cost.as_micros() as u64);
            assert_eq!(*left_us, MAX_WORK.as_micros() as u64);
        }
        // Checked: admitted and within the budget.
        Ok(()) | Err(VerifyError::InsufficientWork { .. }) => {
            assert!(
                memory_ok && cost <= MAX_WORK,
                "{m} KiB, {cost:?} was checked"
            );
        }
        // Refused on a visible field (date, binding) after the cost bounds, before the budget.
        _ => assert!(memory_ok, "{m} KiB was admitted"),
    }
    // Only work that was checked has a value, and then exactly bits + log2(parts).
    if verdict.value > 0.0 {
        assert!(memory_ok && cost <= MAX_WORK);
        let worth = f64::from(stamp.bits()) + (stamp.parts() as f64).log2();
        assert_eq!(verdict.value, worth);
    }
    if result.is_ok() {
        assert!(verdict.value > 0.0 || stamp.bits() == 0);
    }
});
