//! Review of issue 17 (memory-hard stamps), attacker's view: each attack a test.

use std::time::{Duration, Instant};

use pennyblack::dkim::{KeyFile, VerifyOptions};
use pennyblack::mail::Message;
use pennyblack::postage::{CheckLimits, MessageVerdict, Outcome, check_message};
use pennyblack::verify::estimated_cost;
use pennyblack::{
    Algorithm, Argon2Params, FixedClock, MemoryStore, MintRequest, Minter, Policy, ResourcePattern,
    StampDate, Verifier,
};

use crate::support::utc;

const NOW: &str = "261128";

/// Timing tests run one at a time.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn argon2id(m: u32, t: u32, p: u32) -> Algorithm {
    Algorithm::Argon2id(Argon2Params::new(m, t, p).unwrap())
}

/// A forged stamp of `parts` parts at 0 bits (every part counts, whatever its output).
fn forged(alg: Algorithm, parts: u32) -> String {
    let counters: Vec<String> = (0..parts).map(|i| format!("C{i}")).collect();
    format!(
        "2:{alg}:0:{parts}:261127:bob@example.org::AAAAAAAAAAAAAAAA:{}",
        counters.join(",")
    )
}

/// The least time of `n` checks of `text` under a policy that admits it whatever its cost.
fn time_check(text: &str, n: usize) -> Duration {
    let _one_at_a_time = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    let policy = Policy {
        min_memory_kib: 8,
        max_memory_kib: 4 << 20,
        max_work: Duration::from_secs(100),
        ..Policy::default()
    }
    .with_min_value(Algorithm::ARGON2ID, 0);
    let v = Verifier::new(policy).with_clock(FixedClock(utc(NOW)));
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let verdict = v.check(text).unwrap();
            let e = t.elapsed();
            assert!(verdict.is_valid(), "{:?}", verdict.result());
            e
        })
        .min()
        .unwrap()
}

#[test]
#[ignore = "measurement"]
fn measure_costs() {
    for (m, t, p) in [
        (1024, 1, 1),
        (1024, 1, 128),
        (2040, 1, 1),
        (2040, 1, 255),
        (8, 1, 1),
        (64 << 10, 1, 1),
        (16 << 10, 1, 1),
        (17 << 10, 1, 1),
    ] {
        let alg = argon2id(m, t, p);
        let d = time_check(&forged(alg, 1), 5);
        eprintln!("{alg}: {d:?} estimate {:?}", estimated_cost(alg, 1));
    }
}

/// The least time of `n` checks of a one-part 0-bit stamp of `alg`, per unit of its estimate.
fn per_estimate(alg: Algorithm, n: usize) -> f64 {
    time_check(&forged(alg, 1), n).as_secs_f64() / estimated_cost(alg, 1).as_secs_f64()
}

/// ATTACK: lanes. `estimated_cost` charges m x t whatever the lanes, but each lane costs its
/// verifier about 10 us of its own (two H' blocks, 64 BLAKE2b calls): at m = 8p the part costs
/// ~6x what one lane of the same memory costs, and more than its estimate. A garbage message of
/// such stamps takes its receiver past `max_work` (measured here: 1.6x the estimate, where one
/// lane uses 0.28x of it). The estimate's headroom must not depend on a parameter the sender
/// picks for free.
#[test]
fn lanes_do_not_buy_work_beyond_the_estimate() {
    let one = per_estimate(argon2id(2040, 1, 1), 7);
    let many = per_estimate(argon2id(2040, 1, 255), 7);
    assert!(
        many <= 2.0 * one,
        "255 lanes cost {many:.2} of their estimate, one lane {one:.2}"
    );
    let one = per_estimate(argon2id(1024, 1, 1), 7);
    let many = per_estimate(argon2id(1024, 1, 128), 7);
    assert!(
        many <= 2.0 * one,
        "128 lanes cost {many:.2} of their estimate, one lane {one:.2}"
    );
}

/// ATTACK: large memory. Above `argon2id::KEEP_BYTES` (16 MiB) every evaluation allocates and
/// faults in a fresh buffer, and the fill misses the caches: a 64 MiB part costs ~3x as much of
/// its (linear) estimate as a 1 MiB part (53 ms of 65.5 ms here, against 0.28 ms of 1.02 ms), so
/// the budget's margin is gone exactly at the default --max-memory.
#[test]
fn big_parts_keep_the_estimates_headroom() {
    let small = per_estimate(argon2id(1024, 1, 1), 7);
    let big = per_estimate(argon2id(64 << 10, 1, 1), 3);
    assert!(
        big <= 2.0 * small,
        "64 MiB costs {big:.2} of its estimate, 1 MiB {small:.2}"
    );
}

fn mint(resource: &str, alg: Algorithm, bits: u32, parts: u32) -> String {
    Minter::new()
        .threads(2)
        .mint(
            &MintRequest::new(resource)
                .alg(alg)
                .bits(bits)
                .parts(parts)
                .date(StampDate::parse("261127").unwrap()),
        )
        .unwrap()
        .to_string()
}

/// A message to `to` carrying `stamps` (top to bottom).
fn message(to: &[&str], stamps: &[String]) -> Message {
    let head: String = stamps
        .iter()
        .map(|s| format!("X-Hashcash: {s}\r\n"))
        .collect();
    Message::parse(
        format!(
            "{head}From: alice@example.org\r\nTo: {}\r\nSubject: hi\r\n\r\nHi\r\n",
            to.join(", ")
        )
        .into_bytes(),
    )
    .unwrap()
}

/// `check_message` under the default cost bounds, 20 bits for hashes, Argon2id at `argon2`,
/// for `resources` (addresses are recipients).
fn check(msg: &Message, resources: Vec<ResourcePattern>, argon2: u32) -> MessageVerdict {
    let policy = Policy {
        resources,
        ..Policy::new(20, Vec::<String>::new())
    }
    .with_min_value(Algorithm::ARGON2ID, argon2);
    let v = Verifier::new(policy)
        .with_clock(FixedClock(utc(NOW)))
        .with_store(MemoryStore::new());
    check_message(
        msg,
        &v,
        &KeyFile::default(),
        &VerifyOptions::default(),
        &CheckLimits::default(),
    )
    .unwrap()
}

/// ATTACK (on the sender): the defaults disagree. The receiver's default --max-memory is
/// 64 MiB and the minter's default parts for Argon2id is 4, but 4 parts of more than 24 MiB
/// cost more than the default 100 ms budget: a stamp minted with `--memory 64MiB` (or 32MiB)
/// and nothing else is refused unchecked by every default receiver, and its work is lost.
#[test]
fn a_default_part_count_at_the_default_max_memory_fits_the_default_budget() {
    let alg = argon2id(64 << 10, 1, 1);
    let parts = alg.default_parts();
    let policy = Policy::default();
    assert!(u64::from(alg.argon2().unwrap().memory_kib) <= u64::from(policy.max_memory_kib));
    assert!(
        estimated_cost(alg, parts) <= policy.max_work,
        "{parts} parts of 64 MiB: {:?}, budget {:?}",
        estimated_cost(alg, parts),
        policy.max_work
    );
}

/// ATTACK (on delivery): one budget per message whatever its recipients. A genuine message to
/// two local recipients, each paid by a default-shaped stamp of 16 MiB (within every default
/// bound), has its second recipient refused over budget, and a milter with --reject-below then
/// refuses the whole message; at 1 MiB (the minter's default) the 26th recipient is. The number
/// of stamps examined grows with the recipients (max_stamps + recipients), the budget does not.
#[test]
fn every_local_recipient_of_a_genuine_message_can_be_paid() {
    let alg = argon2id(16 << 10, 1, 1);
    let rcpts = ["bob@example.org", "carol@example.org"];
    let stamps: Vec<String> = rcpts.iter().map(|r| mint(r, alg, 0, 4)).collect();
    let m = check(
        &message(&rcpts, &stamps),
        rcpts.iter().map(|r| ResourcePattern::address(*r)).collect(),
        0,
    );
    for s in &m.stamps {
        assert_eq!(s.verdict.result(), Ok(()), "{}", s.verdict.stamp());
    }
    assert!(m.paid_at_least(20));
}

/// ATTACK (on delivery, `check --rcpt bob -r '*@example.org'`): stamps that pay no recipient
/// (a co-recipient's, matched by the operator's pattern) are only reported, never recorded,
/// yet they are checked first when they come first and spend the message's budget, so Bob's
/// own genuine stamp below them is refused over budget and Bob is unpaid.
#[test]
fn co_recipients_stamps_do_not_starve_the_recipients_own() {
    let alg = argon2id(16 << 10, 1, 1);
    let mut stamps = vec![
        mint("carol@example.org", alg, 0, 4),
        mint("dave@example.org", alg, 0, 4),
    ];
    stamps.push(mint("bob@example.org", alg, 0, 4));
    let m = check(
        &message(
            &["carol@example.org", "dave@example.org", "bob@example.org"],
            &stamps,
        ),
        vec![
            ResourcePattern::address("bob@example.org"),
            ResourcePattern::new("*@example.org"),
        ],
        0,
    );
    assert_eq!(m.recipients.len(), 1);
    let bob = m.stamps.iter().find(|s| s.pays == Some(0)).unwrap();
    assert_eq!(bob.verdict.result(), Ok(()));
    assert_eq!(m.recipients[0].outcome, Outcome::Pass);
}

/// ATTACK (replay): one Argon2id prefix with other counters, or the counters reordered, is the
/// same stamp: spent once, whatever the text.
#[test]
fn an_argon2id_stamp_with_other_counters_is_spent_once() {
    let alg = argon2id(1024, 1, 1);
    let stamp = mint("bob@example.org", alg, 0, 3);
    let (prefix, counters) = stamp.rsplit_once(':').unwrap();
    let mut list: Vec<&str> = counters.split(',').collect();
    list.reverse();
    let reordered = format!("{prefix}:{}", list.join(","));
    let others = format!("{prefix}:X1,X2,X3");
    let policy = Policy::new(20, ["bob@example.org"]).with_min_value(Algorithm::ARGON2ID, 0);
    let v = Verifier::new(policy)
        .with_clock(FixedClock(utc(NOW)))
        .with_store(MemoryStore::new());
    assert_eq!(v.check(&stamp).unwrap().result(), Ok(()));
    for text in [&stamp, &reordered, &others] {
        assert_eq!(
            v.check(text).unwrap().result(),
            Err(pennyblack::VerifyError::Spent),
            "{text}"
        );
    }
}

/// Units (characterization, see the report): under a milter's `--reject-below 40` over `-b 20`,
/// a valid Argon2id stamp of one evaluation at 0 bits pays, since a memory-hard stamp pays by
/// having met its family's minimum, whatever the bar. A hash stamp needs 40 bits.
#[test]
fn a_memory_hard_stamp_pays_at_any_reject_below() {
    let alg = argon2id(1024, 1, 1);
    let stamp = mint("bob@example.org", alg, 0, 1);
    let m = check(
        &message(&["bob@example.org"], &[stamp]),
        vec![ResourcePattern::address("bob@example.org")],
        0,
    );
    assert_eq!(m.stamps[0].verdict.result(), Ok(()));
    assert!(m.paid_at_least(40), "one 1 MiB evaluation pays at 40 bits");
}

/// ATTACK (minting): hand-built parameters in public fields never panic nor allocate: refused
/// by `mint`, `mint_many`, `threads_for` and a zero memory limit, before any work.
#[test]
fn hostile_mint_requests_are_refused_without_work() {
    let hostile = [
        Argon2Params {
            memory_kib: 0,
            passes: 0,
            lanes: 0,
        },
        Argon2Params {
            memory_kib: 8,
            passes: 1,
            lanes: 0,
        },
        Argon2Params {
            memory_kib: 8,
            passes: 0,
            lanes: 1,
        },
        Argon2Params {
            memory_kib: 7,
            passes: 1,
            lanes: 1,
        },
        Argon2Params {
            memory_kib: 16,
            passes: 1,
            lanes: 256,
        },
        Argon2Params {
            memory_kib: u32::MAX,
            passes: u32::MAX,
            lanes: u32::MAX,
        },
        Argon2Params {
            memory_kib: (4 << 20) + 1,
            passes: 1,
            lanes: 1,
        },
    ];
    let minter = Minter::new().threads(2).max_memory(u64::MAX);
    for p in hostile {
        let req = MintRequest::new("bob@example.org")
            .alg(Algorithm::Argon2id(p))
            .bits(0)
            .parts(1);
        let _ = req.stamp_len();
        let _ = req.expected_work();
        let _ = estimated_cost(req.alg, req.parts);
        assert!(req.validate().is_err(), "{p:?}");
        assert!(minter.mint(&req).is_err(), "{p:?}");
        assert!(
            minter
                .mint_many(&[req.clone(), req])
                .iter()
                .all(|r| r.is_err())
        );
    }
    // A memory-hard request in mint_many obeys max_memory too.
    let req = MintRequest::new("bob@example.org")
        .alg(argon2id(1024, 1, 1))
        .bits(0)
        .parts(1);
    let tight = Minter::new().threads(2).max_memory(1 << 20);
    assert_eq!(tight.threads_for(&req), Ok(1));
    assert!(
        Minter::new()
            .max_memory(0)
            .mint_many(&[req])
            .iter()
            .all(|r| r.is_err())
    );
}

#[cfg(feature = "equix")]
mod equix {
    use super::*;
    use pennyblack::equix::{decode_counter, encode_counter};

    fn equix_verifier() -> Verifier {
        let policy = Policy {
            max_work: Duration::from_secs(100),
            ..Policy::new(20, ["bob@example.org"])
        }
        .with_min_value(Algorithm::Equix, 1);
        Verifier::new(policy).with_clock(FixedClock(utc(NOW)))
    }

    /// ATTACK (identity): the eight items of a solution in any other order are not a solution,
    /// so a part has one text (and the spent key is the prefix anyway).
    #[test]
    fn reordered_solutions_are_refused() {
        // Two parts at 0 bits: worth 1 only when both solutions solve their challenges.
        let stamp = mint("bob@example.org", Algorithm::Equix, 0, 2);
        let (prefix, counters) = stamp.rsplit_once(':').unwrap();
        let (counter, second) = counters.split_once(',').unwrap();
        let (nonce, sol) = decode_counter(counter).unwrap();
        let items: Vec<[u8; 2]> = sol.chunks(2).map(|c| [c[0], c[1]]).collect();
        let v = equix_verifier();
        assert!(v.check(&stamp).unwrap().is_valid());
        let mut idx: Vec<usize> = (0..8).collect();
        let mut valid = 0;
        // Every permutation (Heap's algorithm, iterative).
        let mut c = [0usize; 8];
        let mut i = 0;
        let mut perms = 1;
        while i < 8 {
            if c[i] < i {
                if i % 2 == 0 {
                    idx.swap(0, i);
                } else {
                    idx.swap(c[i], i);
                }
                perms += 1;
                let mut s = [0u8; 16];
                for (k, &j) in idx.iter().enumerate() {
                    s[2 * k..2 * k + 2].copy_from_slice(&items[j]);
                }
                if s != sol {
                    let text = format!("{prefix}:{},{second}", encode_counter(nonce, &s));
                    if v.check(&text).unwrap().is_valid() {
                        valid += 1;
                    }
                }
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(perms, 40320);
        assert_eq!(valid, 0);
    }

    /// ATTACK (receiver time): 64 garbage parts under a prefix near the 8192-byte limit cost no
    /// more than their estimate (100 us a part) relative to short ones.
    #[test]
    fn long_prefixes_keep_equix_parts_within_the_estimate() {
        let run = |ext: &str| {
            let counters: Vec<String> = (0..64u64)
                .map(|n| encode_counter(n, &[n as u8; 16]))
                .collect();
            let text = format!(
                "2:equix:0:64:261127:bob@example.org:{ext}:AAAAAAAAAAAAAAAA:{}",
                counters.join(",")
            );
            assert!(text.len() <= 8192, "{}", text.len());
            let v = equix_verifier();
            let _one = TIMING.lock().unwrap_or_else(|e| e.into_inner());
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let r = v.check(&text).unwrap();
                    assert!(!r.is_valid());
                    t.elapsed()
                })
                .min()
                .unwrap()
        };
        let short = run("");
        let long = run(&"a".repeat(5900));
        let estimate = estimated_cost(Algorithm::Equix, 64);
        eprintln!("short {short:?} long {long:?} estimate {estimate:?}");
        assert!(long <= estimate, "{long:?} > {estimate:?}");
    }
}

/// ATTACK (free value): a part of 0 bits is met by any counter, so a 0-bit stamp of K parts
/// needs no evaluation at all, yet is worth log2(K): 16 made-up counters are worth 4 Argon2id
/// bits, 64 are worth 6. Memory-hard minimums are naturally small (4 parts of 64 MiB is a second
/// of the sender's work), so `--min-value argon2id=4` accepts stamps that cost nothing to
/// make, while costing the receiver 16 evaluations each.
#[test]
fn zero_bit_argon2id_parts_are_worth_nothing() {
    let alg = argon2id(1024, 1, 1);
    let free = forged(alg, 16); // 16 counters nobody searched for
    let policy = Policy::new(20, ["bob@example.org"]).with_min_value(Algorithm::ARGON2ID, 4);
    let v = Verifier::new(policy)
        .with_clock(FixedClock(utc(NOW)))
        .check(&free)
        .unwrap();
    assert!(!v.is_valid(), "{free} is worth {} with no work", v.value);
}
