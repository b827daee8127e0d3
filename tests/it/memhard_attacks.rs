//! Attacks on memory-hard stamps (an attacker's review of issue 17), each a test: free value, the cost
//! model, the defaults, the budgets, replays, hostile requests.

use std::time::Duration;

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

/// ATTACK: lanes and large memory. Each lane costs its verifier about 10 us of its own (its
/// first blocks and final hashes), and above `argon2id::KEEP_BYTES` (16 MiB) every evaluation
/// allocates and faults in a fresh buffer that misses the caches (0.8 to 1.9 us per KiB measured
/// at 64 MiB, against 0.3 to 0.6 below). The review measured 255 lanes at 8 KiB each costing 1.6
/// times a lane-blind estimate, and 64 MiB 1.65 to 1.89 times a linear one under load. The
/// model must charge for both, so a parameter the sender picks for free cannot buy work beyond
/// the budget (the measurements themselves live in `benches/verify_cost.rs`).
#[test]
fn the_cost_model_charges_lanes_and_large_memory() {
    let us = |m, t, p| estimated_cost(argon2id(m, t, p), 1).as_micros();
    // 20 us a part, 40 us a lane, 1 us a KiB a pass, 1 us a KiB more above 16 MiB.
    assert_eq!(us(2040, 1, 1), 20 + 40 + 2040);
    assert_eq!(us(2040, 1, 255), 20 + 255 * 40 + 2040);
    assert_eq!(us(16 << 10, 1, 1), 60 + 16384);
    assert_eq!(us(64 << 10, 1, 1), 60 + 65536 + 65536);
    assert_eq!(us(64 << 10, 3, 1), 60 + 3 * 65536 + 65536);
    // Hand-built parameters saturate instead of wrapping to a small cost.
    let huge = Algorithm::Argon2id(Argon2Params {
        memory_kib: u32::MAX,
        passes: u32::MAX,
        lanes: u32::MAX,
    });
    assert!(estimated_cost(huge, 64) >= Duration::from_secs(1 << 30));
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

/// ATTACK (on the sender): the defaults disagree. With a default --max-memory of 64 MiB and
/// the minter's default 4 parts, 4 parts of more than 24 MiB cost more than the default 100 ms
/// budget: a stamp minted with `--memory 64MiB` and nothing else was refused unchecked by every
/// default receiver, its work lost. The largest default-accepted memory at the default parts
/// must fit the default budget (and `mint` warns when a stamp would not).
#[test]
fn a_default_part_count_at_the_default_max_memory_fits_the_default_budget() {
    let alg = argon2id(Policy::default().max_memory_kib, 1, 1);
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
