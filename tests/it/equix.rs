//! Equi-X stamps (`--features equix`): minting and checking through the public API and the
//! command line, tampering, and the grammar's Equi-X rules. The Equi-X known answers (C tor's
//! vectors) are unit tests in src/equix.rs, where the solver and verifier wrappers are.

use std::time::Duration;

use pennyblack::equix::{decode_counter, encode_counter};
use pennyblack::{
    Algorithm, FixedClock, MintError, MintRequest, Minter, ParseError, Policy, Stamp, StampDate,
    Verdict, Verifier, VerifyError, verify::Unchecked,
};

const NOW: i64 = 1_795_780_800; // 2026-11-27T12:00:00Z

/// A stamp minted by this implementation (`MintRequest::new("bob@example.org").alg(Equix)
/// .bits(6).parts(4)` dated 261127): a regression vector for the construction (challenge
/// layout, counter encoding, digest), not an independent one. Its nonces are 2, 5, 9 and 24.
const MINTED: &str = "2:equix:4:4:261127:bob@example.org::oQrybfJppEL/YBZS:\
    AAAAAAAAAALeVUFwijinnxIXOR92hQH2,AAAAAAAAAAUdxIHJI4j81bZBIOuTgvv7,\
    AAAAAAAAAAnBM01O+RXRtjRlO7wmf83a,AAAAAAAAABhZBbwjfg8xeG1b77UbAAq5";

fn minted(resource: &str, bits: u32, parts: u32) -> Stamp {
    let req = MintRequest::new(resource)
        .alg(Algorithm::Equix)
        .bits(bits)
        .parts(parts)
        .date(StampDate::from_unix(NOW, 6).unwrap());
    Minter::new().threads(2).mint(&req).unwrap()
}

fn check(policy: Policy, text: &str) -> Verdict {
    Verifier::new(policy)
        .with_clock(FixedClock(NOW))
        .check(text)
        .unwrap()
}

fn equix_policy(min: u32) -> Policy {
    Policy::new(20, ["bob@example.org", "carol@example.org"]).with_min_value(Algorithm::Equix, min)
}

/// The stamp with counter `i` replaced by `f(nonce, solution)`'s counter.
fn with_part(stamp: &Stamp, i: usize, f: impl Fn(u64, [u8; 16]) -> (u64, [u8; 16])) -> String {
    let mut counters: Vec<String> = stamp.counters().map(str::to_owned).collect();
    let (nonce, solution) = decode_counter(&counters[i]).unwrap();
    let (nonce, solution) = f(nonce, solution);
    counters[i] = encode_counter(nonce, &solution);
    format!("{}{}", stamp.prefix(), counters.join(","))
}

#[test]
fn mint_and_verify_round_trip() {
    let stamp = minted("bob@example.org", 6, 4);
    assert!(
        stamp
            .as_str()
            .starts_with("2:equix:4:4:261127:bob@example.org::")
    );
    assert_eq!(stamp.algorithm(), Algorithm::Equix);
    assert_eq!(stamp.parts(), 4);
    for c in stamp.counters() {
        assert_eq!(c.len(), 32);
        assert!(decode_counter(c).is_some());
    }
    let v = check(equix_policy(6), stamp.as_str());
    assert_eq!(v.result(), Ok(()));
    assert!(v.unchecked.iter().eq([Unchecked::Spent]));
    assert_eq!(v.value, 6.0);
    // Worth 6 Equi-X solutions' bits: short of a minimum of 7.
    assert_eq!(
        check(equix_policy(7), stamp.as_str()).result(),
        Err(VerifyError::InsufficientWork {
            value: 6.0,
            required: 7
        })
    );
    // A policy with only a bits minimum (for the hashes) does not take Equi-X stamps.
    assert_eq!(
        check(Policy::new(6, ["bob@example.org"]), stamp.as_str()).result(),
        Err(VerifyError::NotAccepted { alg: "equix" })
    );
}

#[test]
fn regression_vector_verifies() {
    let stamp: Stamp = MINTED.parse().unwrap();
    let v = check(equix_policy(6), MINTED);
    assert_eq!(v.result(), Ok(()), "{MINTED}");
    let nonces: Vec<u64> = stamp
        .counters()
        .map(|c| decode_counter(c).unwrap().0)
        .collect();
    assert_eq!(nonces, [2, 5, 9, 24]);
}

#[test]
fn tampered_parts_are_worth_nothing() {
    let stamp: Stamp = MINTED.parse().unwrap();
    let refused = |text: &str| {
        let v = check(equix_policy(0), text);
        assert!(!v.is_valid(), "{text}");
        assert_eq!(v.value, 0.0, "{text}");
    };
    // A solution byte changed (in every position of one part: order, sums or digest break).
    for byte in 0..16 {
        refused(&with_part(&stamp, 1, |n, mut s| {
            s[byte] ^= 0x01;
            (n, s)
        }));
    }
    // Another nonce for the same solution.
    refused(&with_part(&stamp, 2, |n, s| (n + 1000, s)));
    // Another resource in the prefix: the challenges change, no solution holds.
    let moved = MINTED.replace("bob@example.org", "carol@example.org");
    refused(&moved);
    // Bits claimed above what the digests show.
    refused(&MINTED.replacen(":4:4:", ":9:4:", 1));
}

/// A repeated nonce (with another solution, so the counters differ) is malformed: one solve
/// cannot pay for two parts. The rest of the Equi-X grammar is tested in src/stamp/parse.rs, in
/// every build.
#[test]
fn repeated_nonce_is_malformed() {
    let stamp: Stamp = MINTED.parse().unwrap();
    let first = decode_counter(stamp.counters().next().unwrap()).unwrap().0;
    let twice = with_part(&stamp, 1, |_, mut s| {
        s[0] ^= 1;
        (first, s)
    });
    let v = check(equix_policy(0), &twice);
    assert_eq!(
        v.result(),
        Err(VerifyError::Malformed(ParseError::DuplicateNonce(first)))
    );
}

#[test]
fn minting_holds_one_solver_per_thread_and_stops_on_time() {
    let req = MintRequest::new("bob@example.org")
        .alg(Algorithm::Equix)
        .bits(60)
        .parts(4);
    assert_eq!(req.memory_per_thread(), 1_895_424);
    let minter = Minter::new().threads(8).max_memory(4_000_000);
    assert_eq!(minter.threads_for(&req), Ok(2));
    assert_eq!(
        Minter::new()
            .threads(2)
            .deadline(Duration::from_millis(100))
            .mint(&req),
        Err(MintError::DeadlineExceeded(Duration::from_millis(100)))
    );
    let minter = Minter::new().threads(2);
    minter
        .cancel_flag()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(minter.mint(&req), Err(MintError::Cancelled));
}

/// `mint -a equix` and `verify --min-value equix=N` on the command line.
#[cfg(feature = "cli")]
#[test]
fn command_line_round_trip() {
    use crate::support::pennyblack;
    let o = pennyblack()
        .args([
            "mint",
            "-a",
            "equix",
            "--bits",
            "4",
            "-q",
            "bob@example.org",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stamp = String::from_utf8(o.stdout).unwrap();
    assert!(stamp.starts_with("2:equix:2:4:"), "{stamp}");
    let verify = |min: &str| {
        pennyblack()
            .args([
                "verify",
                "--no-spent",
                "-r",
                "bob@example.org",
                "--min-value",
                min,
            ])
            .arg(stamp.trim())
            .output()
            .unwrap()
    };
    let ok = verify("equix=4");
    assert_eq!(
        ok.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let short = verify("equix=5");
    assert_eq!(short.status.code(), Some(1));
}
