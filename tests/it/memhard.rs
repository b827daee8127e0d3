//! Argon2id stamps (docs/FORMAT.md, "Argon2id"), through the library: known answers from
//! argon2-cffi, live agreement with the reference `argon2` tool and argon2-cffi, minting and
//! tampering, and hostile stamps, each refused by the receiver's cost bounds before any
//! Argon2id evaluation. The command line's side is in `memhard_cli.rs`.

use std::time::Duration;

use pennyblack::verify::estimated_cost;
use pennyblack::{
    Algorithm, Argon2Params, FixedClock, MemoryStore, MintRequest, Minter, ParseError, Policy,
    ResourcePattern, Stamp, StampDate, Verifier, VerifyError,
};

use crate::support::{data, utc};

/// The date of every stamp minted or forged here, and the receivers' clock, a day later.
const DATE: &str = "261127";
const NOW: &str = "261128";

/// The salt of every part, as docs/FORMAT.md writes it.
const SALT: &[u8] = b"pennyblack argon2id stamp v2";

fn argon2id(m: u32, t: u32, p: u32) -> Algorithm {
    Algorithm::Argon2id(Argon2Params::new(m, t, p).unwrap())
}

fn date() -> StampDate {
    StampDate::parse(DATE).unwrap()
}

/// A receiver that takes Argon2id stamps worth at least `min` for any resource, from the least
/// memory Argon2 allows (8 KiB) to the default 64 MiB, with a budget no stamp here reaches
/// (10 s): for the small stamps of these tests only the work decides.
fn lenient(min: u32) -> Policy {
    Policy {
        min_memory_kib: 8,
        max_work: Duration::from_secs(10),
        ..Policy::default()
    }
    .with_min_value(Algorithm::ARGON2ID, min)
}

/// The receiver of the hostile tests: the default bounds (1 MiB to 16 MiB, 64 parts, 100 ms
/// per recipient, 1 s per message), Argon2id stamps worth 8 or more for Bob, 8 bits from the hash families.
fn receiver() -> Policy {
    Policy::new(8, ["bob@example.org"]).with_min_value(Algorithm::ARGON2ID, 8)
}

fn verifier(policy: Policy) -> Verifier {
    Verifier::new(policy).with_clock(FixedClock(utc(NOW)))
}

fn mint(alg: Algorithm, bits: u32, parts: u32) -> Stamp {
    Minter::new()
        .threads(2)
        .mint(
            &MintRequest::new("bob@example.org")
                .alg(alg)
                .bits(bits)
                .parts(parts)
                .date(date()),
        )
        .unwrap()
}

/// One part as the format defines it, computed with the `argon2` crate directly rather than
/// through pennyblack: Argon2id version 0x13 over `pwd` with the format's salt, 32 bytes out.
/// The oracle that tells a tampered text which by chance carries work from one that does not.
fn reference_part(p: Argon2Params, pwd: &[u8]) -> [u8; 32] {
    let params = argon2::Params::new(p.memory_kib, p.passes, p.lanes, Some(32)).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut memory = vec![argon2::Block::default(); a.params().block_count()];
    let mut out = [0u8; 32];
    a.hash_password_into_with_memory(pwd, SALT, &mut out, &mut memory)
        .unwrap();
    out
}

/// Leading zero bits, the first byte's most significant bit first.
fn zero_bits(d: &[u8]) -> u32 {
    let mut n = 0;
    for &b in d {
        n += b.leading_zeros();
        if b != 0 {
            break;
        }
    }
    n
}

/// Whether every part of an Argon2id `stamp` meets its claim, by [`reference_part`].
fn reference_meets(stamp: &Stamp) -> bool {
    let p = stamp.algorithm().argon2().unwrap();
    stamp.counters().all(|c| {
        zero_bits(&reference_part(
            p,
            format!("{}{c}", stamp.prefix()).as_bytes(),
        )) >= stamp.bits()
    })
}

/// A well-formed Argon2id stamp for Bob whose counters (`C0`, `C1`, ...) carry no work: what
/// an attacker sends at no cost to himself. Only its cost parameters are meant to matter.
fn forged(alg: &str, parts: u32) -> String {
    let counters: Vec<String> = (0..parts).map(|i| format!("C{i}")).collect();
    format!(
        "2:{alg}:8:{parts}:{DATE}:bob@example.org::AAAAAAAAAAAAAAAA:{}",
        counters.join(",")
    )
}

#[test]
fn the_salt_is_the_formats() {
    assert_eq!(pennyblack::argon2id::SALT, SALT);
    assert_eq!(pennyblack::argon2id::OUTPUT_LEN, 32);
}

/// One row of tests/data/argon2id-kat.tsv.
struct KatRow {
    prefix: String,
    counter: String,
    m: u32,
    t: u32,
    p: u32,
    zero_bits: u32,
}

fn kat() -> Vec<KatRow> {
    let text = std::fs::read_to_string(data("argon2id-kat.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let [prefix, counter, m, t, p, output, zero_bits] = f[..] else {
                panic!("bad row {line:?}")
            };
            assert_eq!(output.len(), 64, "{line}");
            KatRow {
                prefix: prefix.to_owned(),
                counter: counter.to_owned(),
                m: m.parse().unwrap(),
                t: t.parse().unwrap(),
                p: p.parse().unwrap(),
                zero_bits: zero_bits.parse().unwrap(),
            }
        })
        .collect()
}

/// argon2-cffi's known answers (tests/data/argon2id-kat.tsv; rows with one prefix are the
/// parts of one stamp) through the public stamp path: each stamp is worth what its rows' zero
/// bits predict, bits + log2(parts) when every part meets the claim and 0 when one misses.
/// (The unit test `argon2id::tests::every_part_in_the_known_answer_table` compares all 32
/// bytes of each part.)
#[test]
fn argon2_cffi_known_answers_verify_to_the_predicted_value() {
    let rows = kat();
    let mut stamps: Vec<(&str, Vec<&KatRow>)> = Vec::new();
    for r in &rows {
        match stamps.last_mut() {
            Some((prefix, parts)) if *prefix == r.prefix => parts.push(r),
            _ => stamps.push((&r.prefix, vec![r])),
        }
    }
    let (mut valid, mut refused) = (0, 0);
    for (prefix, parts) in &stamps {
        let counters: Vec<&str> = parts.iter().map(|r| r.counter.as_str()).collect();
        let text = format!("{prefix}{}", counters.join(","));
        let stamp: Stamp = text.parse().unwrap();
        let row = parts[0];
        assert_eq!(stamp.algorithm(), argon2id(row.m, row.t, row.p), "{text}");
        assert_eq!(stamp.parts(), parts.len(), "{text}");
        let meets = parts.iter().all(|r| r.zero_bits >= stamp.bits());
        let predicted = if meets {
            f64::from(stamp.bits()) + (parts.len() as f64).log2()
        } else {
            0.0
        };
        let v = verifier(lenient(0)).check(&text).unwrap();
        assert_eq!(v.value, predicted, "{text}: {:?}", v.result());
        if meets {
            assert_eq!(v.result(), Ok(()), "{text}");
            valid += 1;
        } else {
            assert!(
                matches!(v.result(), Err(VerifyError::InsufficientWork { .. })),
                "{text}: {:?}",
                v.result()
            );
            refused += 1;
        }
    }
    // The table covers what it says it covers (a cut or regenerated-smaller file fails here).
    let has = |f: fn(&KatRow) -> u32, v: u32| rows.iter().any(|r| f(r) == v);
    for m in [8, 16, 32, 64, 1024] {
        assert!(has(|r| r.m, m), "m = {m}");
    }
    for n in [1, 2, 3] {
        assert!(has(|r| r.t, n), "t = {n}");
    }
    for n in [1, 2, 4] {
        assert!(has(|r| r.p, n), "p = {n}");
    }
    let len = |r: &&KatRow| r.prefix.len();
    assert!(rows.iter().any(|r| len(&r) < 64), "a prefix under 64 bytes");
    assert!(rows.iter().any(|r| (65..=127).contains(&len(&r))));
    assert!(
        rows.iter().any(|r| len(&r) > 127),
        "a prefix over 127 bytes"
    );
    assert!(
        rows.len() >= 12 && valid >= 8 && refused >= 1,
        "{valid} {refused}"
    );
}

/// The reference `argon2` tool's output for one part (it reads at most 127 bytes of password).
fn cli_part(p: Argon2Params, pwd: &str) -> String {
    assert!(pwd.len() <= 127, "too long for the argon2 tool: {pwd}");
    let mut cmd = crate::support::argon2_cli();
    cmd.arg(std::str::from_utf8(SALT).unwrap()).args([
        "-id",
        "-t",
        &p.passes.to_string(),
        "-k",
        &p.memory_kib.to_string(),
        "-p",
        &p.lanes.to_string(),
        "-l",
        "32",
        "-r",
    ]);
    let o = crate::support::pipe(cmd, pwd.as_bytes());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// argon2-cffi's output for each part (tests/peers/argon2id_cffi.py).
fn cffi_parts(p: Argon2Params, pwds: &[String]) -> Vec<String> {
    let mut cmd = crate::support::argon2_cffi();
    cmd.arg(crate::support::peer("argon2id_cffi.py"))
        .arg("hash");
    let input: String = pwds
        .iter()
        .map(|pwd| {
            let hex: String = pwd.bytes().map(|b| format!("{b:02x}")).collect();
            format!("{} {} {} {hex}\n", p.memory_kib, p.passes, p.lanes)
        })
        .collect();
    let o = crate::support::pipe(cmd, input.as_bytes());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Live agreement with two independent implementations on fresh stamps (new resources and
/// random fields each run, prefix and counter within the `argon2` tool's 127 bytes):
/// both peers compute every part of stamps we mint to the same output, meeting the claim; and
/// for counters argon2-cffi picks right at the edge of a claim (a part with exactly BITS zero
/// bits, and one with exactly BITS - 1), the `argon2` tool agrees on the output and we accept
/// the first at exactly BITS and refuse the second, so an output differing from theirs would
/// be caught at that edge.
#[test]
#[ignore = "needs the argon2 CLI and argon2-cffi (.ci/run installs them)"]
fn the_argon2_cli_and_argon2_cffi_agree_with_us_on_fresh_stamps() {
    use rand::RngExt;
    let mut rng = rand::rng();
    let sets = [
        (8, 1, 1),
        (16, 2, 2),
        (32, 1, 4),
        (64, 3, 1),
        (100, 2, 4),
        (1024, 1, 1),
        (1024, 2, 2),
    ];
    let mut edges = 0;
    for (i, &(m, t, p)) in sets.iter().enumerate() {
        let params = Argon2Params::new(m, t, p).unwrap();
        let alg = Algorithm::Argon2id(params);
        let user: String = (0..rng.random_range(1..=40))
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect();
        let resource = format!("{user}@example.org");
        // We mint; both peers recompute every part.
        let parts = [1u32, 2, 4][i % 3];
        let stamp = Minter::new()
            .threads(2)
            .mint(
                &MintRequest::new(&resource)
                    .alg(alg)
                    .bits(3 + parts.ilog2())
                    .parts(parts)
                    .date(date()),
            )
            .unwrap();
        assert_eq!(stamp.bits(), 3);
        let pwds: Vec<String> = stamp
            .counters()
            .map(|c| format!("{}{c}", stamp.prefix()))
            .collect();
        let theirs = cffi_parts(params, &pwds);
        assert_eq!(theirs.len(), pwds.len());
        for (pwd, out) in pwds.iter().zip(&theirs) {
            assert_eq!(&cli_part(params, pwd), out, "{pwd}: the peers disagree");
            assert!(zero_bits(&unhex(out)) >= 3, "{pwd}: {out} misses our claim");
        }
        // argon2-cffi picks counters at the edge of a claim on a fresh prefix; we judge them.
        let bits = 3 + (i % 3) as u32;
        let rand: String = (0..16)
            .map(|_| char::from(b'A' + rng.random_range(0..26u8)))
            .collect();
        let prefix = format!("2:{alg}:{bits}:1:{DATE}:{resource}::{rand}:");
        let mut cmd = crate::support::argon2_cffi();
        cmd.arg(crate::support::peer("argon2id_cffi.py"))
            .arg("search")
            .args([m, t, p, bits].map(|n| n.to_string()))
            .arg(&prefix);
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let found = String::from_utf8(o.stdout).unwrap();
        let [hit, miss] = found.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("{found:?}")
        };
        for (counter, zeros) in [(hit, bits), (miss, bits - 1)] {
            let text = format!("{prefix}{counter}");
            let cli = cli_part(params, &text);
            assert_eq!(zero_bits(&unhex(&cli)), zeros, "{text}: the peers disagree");
            let v = verifier(lenient(0)).check(&text).unwrap();
            if zeros >= bits {
                assert_eq!(v.result(), Ok(()), "{text}");
                assert_eq!(v.value, f64::from(bits), "{text}");
            } else {
                assert!(
                    matches!(v.result(), Err(VerifyError::InsufficientWork { .. })),
                    "{text}: {:?}",
                    v.result()
                );
                assert_eq!(v.value, 0.0, "{text}");
            }
            edges += 1;
        }
    }
    assert_eq!(edges, 2 * sets.len());
}

/// The memory, passes, lanes, bits and parts of the minting tests, and the parts' bits.
const MINTED: [(u32, u32, u32, u32, u32); 5] = [
    (64, 1, 1, 4, 1),
    (64, 2, 2, 5, 4),
    (256, 1, 2, 6, 3),
    (1024, 1, 1, 7, 16),
    (128, 3, 1, 5, 1),
];

/// Stamps our minter makes, for several memory sizes, passes, lanes and part counts, are worth
/// exactly bits + log2(parts): valid and fully checked under a policy asking for that much (a
/// store, a resource, the stamp's memory as the floor), refused for insufficient work one
/// above; the receiver's default floor of 1 MiB refuses the smaller ones.
#[test]
fn minted_stamps_are_worth_exactly_bits_plus_log2_parts() {
    for (m, t, p, bits, parts) in MINTED {
        let alg = argon2id(m, t, p);
        let stamp = mint(alg, bits, parts);
        let text = stamp.to_string();
        // The text says what was asked for, and formats back exactly.
        assert_eq!(stamp.algorithm(), alg, "{text}");
        assert!(
            text.starts_with(&format!("2:argon2id-m{m}-t{t}-p{p}:")),
            "{text}"
        );
        assert_eq!(stamp.parts(), parts as usize);
        assert_eq!(
            stamp.bits(),
            pennyblack::mint::per_part_bits(bits, parts),
            "{text}"
        );
        assert!((3..=5).contains(&stamp.bits()), "{text}");
        assert_eq!(text.parse::<Stamp>().unwrap(), stamp);
        let worth = f64::from(stamp.bits()) + f64::from(parts).log2();
        let asked = worth.floor() as u32;
        let policy = |min: u32, floor: u32| {
            Policy {
                resources: vec![ResourcePattern::new("bob@example.org")],
                min_memory_kib: floor,
                ..Policy::default()
            }
            .with_min_value(Algorithm::ARGON2ID, min)
        };
        let v = verifier(policy(asked, m))
            .with_store(MemoryStore::new())
            .check(&text)
            .unwrap();
        assert_eq!(v.result(), Ok(()), "{text}");
        assert!(v.fully_checked(), "{text}");
        assert_eq!(v.value, worth, "{text}");
        let v = verifier(policy(asked + 1, m)).check(&text).unwrap();
        assert_eq!(
            v.result(),
            Err(VerifyError::InsufficientWork {
                value: worth,
                required: asked + 1
            }),
            "{text}"
        );
        let v = verifier(policy(asked, pennyblack::verify::DEFAULT_MIN_MEMORY_KIB))
            .check(&text)
            .unwrap();
        if m < 1024 {
            assert_eq!(
                v.result(),
                Err(VerifyError::OutOfPolicy {
                    what: "memory (KiB)",
                    value: u64::from(m),
                    bound: "minimum 1024".into()
                }),
                "{text}"
            );
        } else {
            assert_eq!(v.result(), Ok(()), "{text}");
        }
    }
}

/// The nine fields of a version 2 stamp with field `i` replaced.
fn with_field(text: &str, i: usize, value: &str) -> String {
    let mut f: Vec<&str> = text.split(':').collect();
    f[i] = value;
    f.join(":")
}

/// `s` with its character at `at` replaced by another of the stamp alphabet.
fn other_char(s: &str, at: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

/// Tampering with any field of a minted stamp (a counter, the memory, passes or lanes in the
/// algorithm field, the bits, the parts, the date, the resource, the extension, the random
/// field) leaves a text that is malformed or refused for insufficient work, worth 0: never
/// valid on the original's work. Each parseable variant is also judged by the reference
/// computation ([`reference_meets`]): one that by chance carries the work afresh (about one in
/// 2^bits) is a genuine stamp, must be valid, and is not counted; each field has enough
/// variants (a date, an extension, a random field: seven or eight) that at least one is
/// refused but once in 2^28 or so.
#[test]
fn tampering_with_any_field_never_leaves_a_valid_stamp() {
    for (m, t, p, bits, parts) in MINTED {
        let stamp = mint(argon2id(m, t, p), bits, parts);
        let text = stamp.to_string();
        let f: Vec<&str> = text.split(':').collect();
        let alg = |m: u32, t: u32, p: u32| format!("argon2id-m{m}-t{t}-p{p}");
        let mut variants: Vec<(&str, String)> = Vec::new();
        let counters: Vec<&str> = f[8].split(',').collect();
        // Every character of every counter: two variants of a one-part 4-bit stamp both met the
        // bits by chance once in CI (1 in 256); eight or more leave that once in 2^32.
        for (j, c) in counters.iter().enumerate() {
            for at in 0..c.len() {
                let mut cs = counters.clone();
                let changed = other_char(c, at);
                cs[j] = &changed;
                variants.push(("counter", with_field(&text, 8, &cs.join(","))));
            }
        }
        for mm in [m + 1, m + 8, 2 * m, m - 1] {
            variants.push(("memory", with_field(&text, 1, &alg(mm, t, p))));
        }
        for tt in [t + 1, t + 2, t + 3, t + 4, t - 1] {
            variants.push(("passes", with_field(&text, 1, &alg(m, tt, p))));
        }
        for pp in [p + 1, p + 2, p + 3, p + 4, p - 1] {
            variants.push(("lanes", with_field(&text, 1, &alg(m, t, pp))));
        }
        let b = stamp.bits();
        for bb in [b - 1, b + 1, b + 2, b + 3, b + 4] {
            variants.push(("bits", with_field(&text, 2, &bb.to_string())));
        }
        variants.push(("parts", with_field(&text, 3, &(parts + 1).to_string())));
        // Several variants of each field: one variant alone meets a part of b bits by chance
        // once in 2^b (1 in 16 for a 4-bit part), which made this test flaky.
        for date in [
            "261126", "261125", "261124", "261123", "261122", "261121", "261120", "261119",
        ] {
            variants.push(("date", with_field(&text, 4, date)));
        }
        // Eight resources: two met a 4-bit part by chance together once in CI (1 in 256).
        for resource in [
            "bob@example.net",
            "Bob@example.org",
            "bob@example.or",
            "bob@example.orgx",
            "alice@example.org",
            "bob@example.com",
            "bo@example.org",
            "bob@sub.example.org",
        ] {
            variants.push(("resource", with_field(&text, 5, resource)));
        }
        for ext in ["x", "y", "z", "a=1", "b=2", "c", "d;e", "f=3,4"] {
            variants.push(("ext", with_field(&text, 6, ext)));
        }
        for at in [0, 1, 2, 3, f[7].len() - 3, f[7].len() - 2, f[7].len() - 1] {
            variants.push(("rand", with_field(&text, 7, &other_char(f[7], at))));
        }

        let mut refused: Vec<&str> = Vec::new();
        for (field, variant) in &variants {
            assert_ne!(variant, &text);
            let v = verifier(lenient(0)).check(variant).unwrap();
            match variant.parse::<Stamp>() {
                Err(_) => {
                    assert!(
                        matches!(v.result(), Err(VerifyError::Malformed(_))),
                        "{field}: {variant}: {:?}",
                        v.result()
                    );
                    refused.push(field);
                }
                Ok(s) if reference_meets(&s) => {
                    // Fresh work by chance: a genuine stamp.
                    assert_eq!(v.result(), Ok(()), "{field}: {variant}");
                }
                Ok(_) => {
                    assert!(
                        matches!(v.result(), Err(VerifyError::InsufficientWork { .. })),
                        "{field}: {variant}: {:?}",
                        v.result()
                    );
                    assert_eq!(v.value, 0.0, "{field}: {variant}");
                    refused.push(field);
                }
            }
        }
        for field in [
            "counter", "memory", "passes", "lanes", "bits", "parts", "date", "resource", "ext",
            "rand",
        ] {
            assert!(
                refused.contains(&field),
                "{text}: no {field} variant refused"
            );
        }
    }
}

/// A stamp naming 4 GiB of memory is refused by the memory bound ([`VerifyError::OutOfPolicy`])
/// before its date, resource or work is looked at: with every parameter at the grammar's
/// limit, 64 parts, an expired date and another resource, the memory is still the reason.
/// A receiver that raised its memory bound to 4 GiB is still held by its budget
/// ([`VerifyError::OverBudget`]). Were either check made after the evaluation, this test would
/// allocate 4 GiB per part and run for minutes; `memhard_cli.rs` makes the same point as a
/// quick failure, under an address space limit of 1 GiB.
#[test]
fn four_gib_of_memory_is_refused_before_any_evaluation() {
    let four_gib = OutOfPolicyMemory(4_194_304, "maximum 16384");
    let v = verifier(receiver())
        .check(&forged("argon2id-m4194304-t1-p1", 1))
        .unwrap();
    four_gib.expect(&v);
    let all_out = "2:argon2id-m4194304-t999-p255:8:64:060101:mallory@example.net::AAAA:".to_owned()
        + &(0..64)
            .map(|i| format!("C{i}"))
            .collect::<Vec<_>>()
            .join(",");
    four_gib.expect(&verifier(receiver()).check(&all_out).unwrap());
    // A policy without any minimum still bounds the memory.
    four_gib.expect(&verifier(Policy::default()).check(&all_out).unwrap());

    let raised = Policy {
        max_memory_kib: Argon2Params::MAX_MEMORY_KIB,
        ..receiver()
    };
    let v = verifier(raised)
        .check(&forged("argon2id-m4194304-t1-p1", 1))
        .unwrap();
    assert_eq!(
        v.result(),
        Err(VerifyError::OverBudget {
            cost_us: estimated_cost(argon2id(4_194_304, 1, 1), 1).as_micros() as u64,
            left_us: 100_000
        })
    );
}

/// The expected refusal for a stamp whose memory breaks a bound.
struct OutOfPolicyMemory(u64, &'static str);

impl OutOfPolicyMemory {
    fn expect(&self, v: &pennyblack::Verdict) {
        assert_eq!(
            v.result(),
            Err(VerifyError::OutOfPolicy {
                what: "memory (KiB)",
                value: self.0,
                bound: self.1.into()
            }),
            "{}",
            v.stamp()
        );
        assert_eq!(v.value, 0.0);
    }
}

/// Stamps within the memory bound that would cost seconds to check (64 parts of 16 MiB, 999
/// passes, 255 lanes over 16 MiB three times, twice) are refused by the budget of 100 ms, for exactly their
/// estimated cost, before any evaluation: the reason is the budget's, and a genuine stamp
/// next to them is not charged for them. The bound on parts speaks before the budget.
#[test]
fn stamps_costing_seconds_are_refused_by_the_budget_unchecked() {
    for (alg, parts) in [
        ("argon2id-m16384-t1-p1", 64),
        ("argon2id-m1024-t999-p1", 1),
        ("argon2id-m16320-t3-p255", 2),
        ("argon2id-m2040-t100-p255", 1),
    ] {
        let text = forged(alg, parts);
        let stamp: Stamp = text.parse().unwrap();
        let cost = estimated_cost(stamp.algorithm(), parts);
        assert!(cost > Duration::from_millis(100), "{alg}: {cost:?}");
        let v = verifier(receiver()).check(&text).unwrap();
        assert_eq!(
            v.result(),
            Err(VerifyError::OverBudget {
                cost_us: cost.as_micros() as u64,
                left_us: 100_000
            }),
            "{text}"
        );
        assert_eq!(v.value, 0.0);
    }
    // 16 parts where the receiver takes 4: refused for the parts, whatever they would cost.
    let policy = Policy {
        max_parts: 4,
        ..receiver()
    };
    let v = verifier(policy)
        .check(&forged("argon2id-m65536-t1-p1", 16))
        .unwrap();
    assert_eq!(
        v.result(),
        Err(VerifyError::OutOfPolicy {
            what: "parts",
            value: 16,
            bound: "maximum 4".into()
        })
    );
}

/// A receiver that names minimums for other families only does not accept Argon2id at all
/// ([`VerifyError::NotAccepted`], checked first: even a 4 GiB stamp gets this reason), and
/// that includes a genuine stamp. A policy with no minimum at all admits it, with its value
/// unchecked.
#[test]
fn argon2id_is_not_accepted_where_the_policy_names_no_minimum_for_it() {
    let genuine = mint(argon2id(64, 1, 1), 4, 1).to_string();
    let hostile = forged("argon2id-m4194304-t1-p1", 1);
    let mut bits_only = Policy::new(20, ["bob@example.org"]);
    bits_only.min_memory_kib = 8;
    let sha256_only = Policy {
        min_memory_kib: 8,
        ..Policy::default()
    }
    .with_min_value(Algorithm::Sha256, 20);
    for policy in [bits_only, sha256_only] {
        for text in [&genuine, &hostile] {
            let v = verifier(policy.clone()).check(text).unwrap();
            assert_eq!(
                v.result(),
                Err(VerifyError::NotAccepted { alg: "argon2id" }),
                "{policy:?}: {text}"
            );
        }
    }
    let open = Policy {
        min_memory_kib: 8,
        ..Policy::default()
    };
    let v = verifier(open).check(&genuine).unwrap();
    assert_eq!(v.result(), Ok(()));
    assert!(v.unchecked.contains(pennyblack::verify::Unchecked::Bits));
}

/// A genuine stamp (its work is there: valid under a lenient policy) is refused by each cost
/// bound alone, with that bound's reason: the refusals cannot come from an evaluation, whose
/// outcome would have been a pass. The budget is inclusive: exactly the estimated cost passes,
/// a nanosecond less does not.
#[test]
fn a_genuine_stamp_is_refused_by_each_bound_alone() {
    let alg = argon2id(64, 1, 1);
    let text = mint(alg, 5, 4).to_string();
    assert_eq!(verifier(lenient(5)).check(&text).unwrap().result(), Ok(()));
    let cost = estimated_cost(alg, 4);
    // 20 us a part, 40 us a lane, 1 us a KiB a pass.
    assert_eq!(cost, Duration::from_micros(4 * (20 + 40 + 64)));
    let with = |f: fn(&mut Policy, Duration)| {
        let mut p = lenient(5);
        f(&mut p, cost);
        verifier(p).check(&text).unwrap().result()
    };
    let memory = |value, bound: &str| {
        Err(VerifyError::OutOfPolicy {
            what: "memory (KiB)",
            value,
            bound: bound.into(),
        })
    };
    assert_eq!(with(|p, _| p.min_memory_kib = 65), memory(64, "minimum 65"));
    assert_eq!(with(|p, _| p.max_memory_kib = 63), memory(64, "maximum 63"));
    assert_eq!(
        with(|p, _| p.max_parts = 3),
        Err(VerifyError::OutOfPolicy {
            what: "parts",
            value: 4,
            bound: "maximum 3".into()
        })
    );
    assert_eq!(with(|p, c| p.max_work = c), Ok(()));
    assert_eq!(
        with(|p, c| p.max_work = c - Duration::from_nanos(1)),
        Err(VerifyError::OverBudget {
            cost_us: 496,
            left_us: 495
        })
    );
    assert_eq!(
        with(|p, _| p.min_value = vec![(Algorithm::Blake3, 10)]),
        Err(VerifyError::NotAccepted { alg: "argon2id" })
    );
}

/// Algorithm fields outside the grammar (docs/FORMAT.md: `argon2id-mM-tT-pP`, canonical
/// decimals, m from 8p to 4 GiB in KiB, t 1-999, p 1-255) are malformed stamps
/// ([`ParseError::BadAlgorithm`]), and the same fields are refused as algorithm names; the
/// limits themselves parse and format back exactly.
#[test]
fn algorithm_fields_outside_the_grammar_are_malformed() {
    for field in [
        // leading zeros
        "argon2id-m01024-t1-p1",
        "argon2id-m1024-t01-p1",
        "argon2id-m1024-t1-p01",
        "argon2id-m00-t1-p1",
        // less than 8 KiB per lane
        "argon2id-m7-t1-p1",
        "argon2id-m15-t1-p2",
        "argon2id-m2039-t1-p255",
        // zero and over the limits
        "argon2id-m0-t1-p1",
        "argon2id-m1024-t0-p1",
        "argon2id-m1024-t1-p0",
        "argon2id-m1024-t1000-p1",
        "argon2id-m4096-t1-p256",
        "argon2id-m4194305-t1-p1",
        // huge numbers
        "argon2id-m4294967296-t1-p1",
        "argon2id-m99999999999-t1-p1",
        "argon2id-m1024-t99999999999-p1",
        "argon2id-m1024-t1-p99999999999",
        // missing parts
        "argon2id",
        "argon2id-",
        "argon2id-m1024",
        "argon2id-m1024-t1",
        "argon2id-m1024-t1-p",
        "argon2id-m-t1-p1",
        "argon2id-m1024-t-p1",
        "argon2id--t1-p1",
        // extra or misplaced dashes and fields, other order, signs
        "argon2id-m1024-t1-p1-",
        "argon2id--m1024-t1-p1",
        "argon2id-m1024--t1-p1",
        "argon2id-m-1024-t1-p1",
        "argon2id-m1024-t1-p-1",
        "argon2id-m1024-t1-p1-x1",
        "argon2id-m1024-t1-t1-p1",
        "argon2id-t1-m1024-p1",
        "argon2id-m+1024-t1-p1",
        "argon2id-m1024-t1-p1,",
        // other spellings and variants
        "ARGON2ID-m1024-t1-p1",
        "Argon2id-m1024-t1-p1",
        "argon2id-M1024-t1-p1",
        "argon2id-m1024-T1-P1",
        "argon2i-m1024-t1-p1",
        "argon2d-m1024-t1-p1",
        "argon2-m1024-t1-p1",
        "argon2id_m1024_t1_p1",
    ] {
        let text = forged(field, 1);
        let v = pennyblack::verify(&text, &receiver());
        assert!(
            matches!(
                v.result(),
                Err(VerifyError::Malformed(ParseError::BadAlgorithm(_)))
            ),
            "{field}: {:?}",
            v.result()
        );
        if field != "argon2id" {
            // (a bare family name is a policy's way of naming the default parameters)
            assert!(
                matches!(field.parse::<Algorithm>(), Err(ParseError::BadAlgorithm(_))),
                "{field}"
            );
        }
    }
    for (field, m, t, p) in [
        ("argon2id-m8-t1-p1", 8, 1, 1),
        ("argon2id-m2040-t1-p255", 2040, 1, 255),
        ("argon2id-m4194304-t999-p255", 4_194_304, 999, 255),
    ] {
        let text = forged(field, 1);
        let stamp: Stamp = text.parse().unwrap();
        assert_eq!(stamp.algorithm(), argon2id(m, t, p));
        assert_eq!(stamp.algorithm().to_string(), field);
        assert_eq!(stamp.to_string(), text);
    }
}

/// One message carrying many Argon2id stamps for one recipient costs at most that recipient's
/// budget (`check_message`, `max_work` per recipient): stamps past it are refused unchecked
/// ([`VerifyError::OverBudget`]), and the recipient is still judged. Eight genuine stamps with
/// room for three: three are checked and Bob is paid. Seven whose work is missing, then a
/// genuine one: three are checked and fail, the rest (the genuine one too) are refused
/// unchecked, and Bob's verdict is fail. Stamps refused before the work (expired ones, ones
/// naming 4 GiB) cost nothing: after forty of them a genuine stamp is checked and pays.
#[cfg(feature = "mail")]
#[test]
fn many_stamps_in_one_message_cost_at_most_its_budget() {
    use pennyblack::dkim::{KeyFile, VerifyOptions};
    use pennyblack::mail::Message;
    use pennyblack::postage::{CheckLimits, MessageVerdict, Outcome, check_message};

    let alg = argon2id(256, 1, 1);
    let cost = estimated_cost(alg, 1);
    assert_eq!(cost, Duration::from_micros(20 + 40 + 256));
    let genuine: Vec<String> = (0..8).map(|_| mint(alg, 3, 1).to_string()).collect();
    // A genuine stamp's prefix with the first counter whose part misses the claim.
    let junk: Vec<String> = genuine[..7]
        .iter()
        .map(|s| {
            let prefix = s.rsplit_once(':').unwrap().0;
            (0..)
                .map(|n| format!("{prefix}:J{n}"))
                .find(|t| !reference_meets(&t.parse().unwrap()))
                .unwrap()
        })
        .collect();
    let check = |stamps: &[String]| -> MessageVerdict {
        let head: String = stamps
            .iter()
            .map(|s| format!("X-Hashcash: {s}\r\n"))
            .collect();
        let msg = Message::parse(
            format!(
                "{head}From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHi\r\n"
            )
            .into_bytes(),
        )
        .unwrap();
        let policy = Policy {
            resources: vec![ResourcePattern::address("bob@example.org")],
            min_memory_kib: 256,
            max_work: cost * 3,
            ..Policy::default()
        }
        .with_min_value(Algorithm::ARGON2ID, 3);
        let v = verifier(policy).with_store(MemoryStore::new());
        let m = check_message(
            &msg,
            &v,
            &KeyFile::default(),
            &VerifyOptions::default(),
            &CheckLimits::default(),
        )
        .unwrap();
        assert_eq!(m.stamps.len(), stamps.len());
        assert_eq!(m.recipients.len(), 1);
        m
    };
    let over = Err(VerifyError::OverBudget {
        cost_us: 316,
        left_us: 0,
    });

    let m = check(&genuine);
    for (i, s) in m.stamps.iter().enumerate() {
        let want = if i < 3 { Ok(()) } else { over.clone() };
        assert_eq!(s.verdict.result(), want, "stamp {i}");
    }
    assert_eq!(m.recipients[0].outcome, Outcome::Pass);
    assert_eq!(m.hashcash(), Outcome::Pass);

    let mut stamps = junk.clone();
    stamps.push(genuine[7].clone());
    let m = check(&stamps);
    for (i, s) in m.stamps.iter().enumerate() {
        let r = s.verdict.result();
        if i < 3 {
            assert!(
                matches!(r, Err(VerifyError::InsufficientWork { .. })),
                "stamp {i}: {r:?}"
            );
        } else {
            assert_eq!(r, over, "stamp {i}");
        }
    }
    assert_eq!(m.recipients[0].outcome, Outcome::Fail);
    assert_eq!(m.hashcash(), Outcome::Fail);

    let mut stamps: Vec<String> = (0..20)
        .map(|i| format!("2:argon2id-m256-t1-p1:3:1:250101:bob@example.org::R{i}:C"))
        .collect();
    stamps.extend(
        (0..20).map(|i| format!("2:argon2id-m4194304-t1-p1:3:1:{DATE}:bob@example.org::G{i}:C")),
    );
    stamps.push(genuine[0].clone());
    let m = check(&stamps);
    for s in &m.stamps[..20] {
        assert!(matches!(
            s.verdict.result(),
            Err(VerifyError::Expired { .. })
        ));
    }
    for s in &m.stamps[20..40] {
        assert!(matches!(
            s.verdict.result(),
            Err(VerifyError::OutOfPolicy { .. })
        ));
    }
    assert_eq!(m.stamps[40].verdict.result(), Ok(()));
    assert_eq!(m.recipients[0].outcome, Outcome::Pass);
}
