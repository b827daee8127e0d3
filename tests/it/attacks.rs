//! The one promise under attack: the work of one stamp buys one delivery, to one recipient, of
//! one message. Each test is an attack that worked against earlier builds (see the README's
//! security section for what stops each); the Postfix ones are in `milter.rs`, the Redis ones
//! in `redis.rs`.

use std::process::Output;

use pennyblack::{MemoryStore, MintRequest, Minter, Policy, StampDate, Verifier, VerifyError};
use sha2::Digest as _;

use crate::support::{pennyblack, pipe, utc};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = pennyblack();
    cmd.args(args);
    pipe(cmd, stdin)
}

fn text(o: &Output) -> String {
    // Unfolded, for simple assertions.
    String::from_utf8_lossy(&o.stdout)
        .replace("\r\n\t", " ")
        .replace("\n\t", " ")
}

/// Extra solutions for one prefix: `want` counters whose SHA-256 after `prefix` has `bits`
/// leading zero bits, found by brute force with the plain hash.
fn solutions(prefix: &str, bits: u32, want: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut n = 0u64;
    while out.len() < want {
        let counter = format!("{n:08X}");
        let d = sha2::Sha256::digest(format!("{prefix}{counter}").as_bytes());
        let lead = u128::from_be_bytes(d[..16].try_into().unwrap()).leading_zeros();
        if lead >= bits {
            out.push(counter);
        }
        n += 1;
    }
    out
}

/// Six parts found for a four-part prefix give C(6,4) = 15 texts that all carry valid work;
/// they are one stamp: accepted once, the 14 others refused as spent, whatever the store.
#[test]
fn recombined_parts_are_spent_once() {
    let now = utc("261127");
    let prefix = "2:sha256:6:4:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAAAA:";
    let parts = solutions(prefix, 6, 6);
    let mut texts = Vec::new();
    for a in 0..6 {
        for b in a + 1..6 {
            for c in b + 1..6 {
                for d in c + 1..6 {
                    let list = [&parts[a], &parts[b], &parts[c], &parts[d]];
                    texts.push(format!("{prefix}{}", list.map(String::as_str).join(",")));
                }
            }
        }
    }
    assert_eq!(texts.len(), 15);
    let v = Verifier::new(Policy::new(8, ["bob@example.org"]))
        .with_clock(pennyblack::FixedClock(now))
        .with_store(MemoryStore::new());
    let verdicts: Vec<_> = texts.iter().map(|t| v.check(t).unwrap()).collect();
    assert!(verdicts[0].is_valid(), "{:?}", verdicts[0].result());
    for (t, verdict) in texts.iter().zip(&verdicts).skip(1) {
        assert_eq!(verdict.result(), Err(VerifyError::Spent), "{t}");
    }
    // The same through the command line and its file store, in one batch.
    let dir = tempfile::tempdir().unwrap();
    let spent = dir.path().join("spent.redb");
    let o = run(
        &[
            "verify",
            "--bits",
            "8",
            "-r",
            "bob@example.org",
            "--now",
            &now.to_string(),
            "--spent",
            spent.to_str().unwrap(),
        ],
        texts.join("\n").as_bytes(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert_eq!(
        out.lines().filter(|l| l.contains("spent")).count(),
        14,
        "{out}"
    );
}

/// A message for Bob (To) and Carol (Cc), stamped, the stamps bound to it (`bind=`).
fn stamped_for_bob_and_carol(body: &str) -> Vec<u8> {
    let msg = format!(
        "From: alice@example.org\r\nTo: bob@example.net\r\nCc: carol@example.net\r\n\
         Subject: hi\r\nMessage-ID: <{}@example.org>\r\n\r\n{body}",
        body.len()
    );
    let o = run(&["stamp", "--bits", "8", "--alg", "sha1"], msg.as_bytes());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn check(spent: &std::path::Path, rcpts: &[&str], extra: &[&str], msg: &[u8]) -> (i32, String) {
    let mut args = vec![
        "check",
        "--bits",
        "8",
        "--verdict-only",
        "--keys",
        "/dev/null",
        "--spent",
        spent.to_str().unwrap(),
    ];
    for r in rcpts {
        args.extend(["--rcpt", r]);
    }
    args.extend(extra);
    let o = run(&args, msg);
    (o.status.code().unwrap(), text(&o))
}

/// Carol lifts Bob's stamp from her copy and sends it first in a message of her own to Bob:
/// it is refused as bound to another message, and it is not burnt, so Alice's genuine message
/// still passes.
#[test]
fn a_lifted_stamp_neither_passes_nor_burns_the_genuine_one() {
    let genuine = stamped_for_bob_and_carol("Lunch at noon?\r\n");
    // Bob's field as it stands (folded over several lines).
    let head = String::from_utf8_lossy(&genuine)
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_owned();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().unwrap();
            last.push_str("\r\n");
            last.push_str(line);
        } else {
            fields.push(line.to_owned());
        }
    }
    let bobs = fields
        .into_iter()
        .find(|f| {
            f.starts_with("X-Hashcash:") && f.replace("\r\n\t", "").contains(":bob@example.net:")
        })
        .unwrap();
    let forged = format!(
        "{bobs}\r\nFrom: carol@example.net\r\nTo: bob@example.net\r\nSubject: mine\r\n\r\n\
         Buy my stuff.\r\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let spent = dir.path().join("spent.redb");
    let (code, ar) = check(&spent, &["bob@example.net"], &[], forged.as_bytes());
    assert_eq!(code, 1, "{ar}");
    assert!(
        ar.contains("x-hashcash=fail (bound to another message"),
        "{ar}"
    );
    // Keeping Alice's body but writing her own From and Subject does not help her either.
    let body = String::from_utf8_lossy(&genuine)
        .split_once("\r\n\r\n")
        .unwrap()
        .1
        .to_owned();
    let same_body = format!(
        "{bobs}\r\nFrom: ceo@example.org\r\nTo: bob@example.net\r\nSubject: URGENT\r\n\r\n{body}"
    );
    let (code, ar) = check(&spent, &["bob@example.net"], &[], same_body.as_bytes());
    assert_eq!(code, 1, "{ar}");
    assert!(ar.contains("bound to another message"), "{ar}");
    // Nor does `verify`, which sees no message: it reports the binding unchecked and records
    // nothing.
    let lone = bobs
        .trim_start_matches("X-Hashcash:")
        .replace("\r\n\t", "")
        .replace(' ', "");
    let v = run(
        &[
            "verify",
            "--bits",
            "8",
            "-r",
            "bob@example.net",
            "--spent",
            spent.to_str().unwrap(),
            &lone,
        ],
        b"",
    );
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));
    assert!(text(&v).contains("binding"), "{}", text(&v));
    let (code, ar) = check(&spent, &["bob@example.net"], &[], &genuine);
    assert_eq!(code, 0, "{ar}");
    assert!(ar.contains("x-hashcash=pass"), "{ar}");
    // The body is bound, LF or CRLF: the same message with bare LF line ends still passes
    // (against a fresh store).
    let lf = String::from_utf8(genuine.clone())
        .unwrap()
        .replace("\r\n", "\n");
    let (code, ar) = check(
        &dir.path().join("lf.redb"),
        &["bob@example.net"],
        &[],
        lf.as_bytes(),
    );
    assert_eq!(code, 0, "{ar}");
    // A receiver may demand bound stamps: one minted by `mint` (unbound) is then refused.
    let unbound = run(
        &["mint", "--alg", "sha1", "--bits", "8", "bob@example.net"],
        b"",
    );
    let unbound_msg = format!(
        "X-Hashcash: {}\r\nFrom: a@example.org\r\nTo: bob@example.net\r\n\r\nhi\r\n",
        String::from_utf8_lossy(&unbound.stdout).trim()
    );
    let strict = dir.path().join("strict.redb");
    let (code, ar) = check(
        &strict,
        &["bob@example.net"],
        &["--require-binding"],
        unbound_msg.as_bytes(),
    );
    assert_eq!(code, 1, "{ar}");
    assert!(ar.contains("not bound to its message"), "{ar}");
    let (code, ar) = check(&strict, &["bob@example.net"], &[], unbound_msg.as_bytes());
    assert_eq!(code, 0, "an unbound stamp still verifies by default: {ar}");
}

/// One stamp pays for one recipient: Bob's stamp leaves Dave unpaid, and a recipient that
/// looks like a pattern is only itself.
#[test]
fn every_recipient_pays_and_recipients_are_not_patterns() {
    let msg = stamped_for_bob_and_carol("Hello\r\n");
    let dir = tempfile::tempdir().unwrap();
    let (code, ar) = check(
        &dir.path().join("a.redb"),
        &["bob@example.net", "dave@example.net"],
        &[],
        &msg,
    );
    assert_eq!(code, 2, "{ar}");
    assert!(ar.contains("x-hashcash=pass"), "Bob is paid: {ar}");
    // Dave is not in the header: the field names him nowhere (the exit status says unpaid).
    assert!(
        !ar.contains("dave") && ar.matches("x-hashcash=").count() == 1,
        "{ar}"
    );
    // A recipient `*` (what a delivery agent passes on for RCPT TO:<*>) names only itself.
    for star in ["*", "*@example.net", "?ob@example.net"] {
        let (code, ar) = check(&dir.path().join("b.redb"), &[star], &[], &msg);
        assert_eq!(code, 2, "{star}: {ar}");
        assert!(!ar.contains("x-hashcash=pass"), "{star}: {ar}");
    }
    // Addresses compare as mail addresses: case of the domain, needless quotes.
    let (code, ar) = check(
        &dir.path().join("c.redb"),
        &["\"bob\"@EXAMPLE.net", "carol@example.NET"],
        &[],
        &msg,
    );
    assert_eq!(code, 0, "{ar}");
    assert_eq!(ar.matches("x-hashcash=pass").count(), 2, "{ar}");
    // A delivery agent running once per recipient with the operator's pattern as well: Bob's
    // run does not burn Carol's stamp (it pays no recipient of that run).
    let shared = dir.path().join("shared.redb");
    let (code, ar) = check(
        &shared,
        &["bob@example.net"],
        &["-r", "*@example.net"],
        &msg,
    );
    assert_eq!(code, 0, "{ar}");
    let (code, ar) = check(
        &shared,
        &["carol@example.net"],
        &["-r", "*@example.net"],
        &msg,
    );
    assert_eq!(code, 0, "Carol's stamp was burnt by Bob's delivery: {ar}");
    // The operator's own pattern still works where no recipient is given.
    let (code, ar) = check(
        &dir.path().join("d.redb"),
        &[],
        &["--resource", "*@example.net"],
        &msg,
    );
    assert_eq!(code, 0, "{ar}");
}

/// A Bcc recipient gets postage, but no header field names it; its own checker finds its stamp.
#[test]
fn bcc_recipients_are_not_disclosed() {
    let msg = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello\r\n";
    let o = run(
        &[
            "stamp",
            "--bits",
            "8",
            "--rcpt",
            "secret.boss@example.com",
            "--rcpt",
            "Bob@Example.net",
        ],
        msg.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).unwrap();
    let head = out.split("\r\n\r\n").next().unwrap();
    assert!(!head.to_lowercase().contains("secret"), "{head}");
    assert!(!head.to_lowercase().contains("example.com"), "{head}");
    // Bob, named in To, is stamped once, in clear.
    assert_eq!(head.matches("X-Hashcash:").count(), 2, "{head}");
    let dir = tempfile::tempdir().unwrap();
    let (code, ar) = check(
        &dir.path().join("s.redb"),
        &["Secret.Boss@example.com"],
        &[],
        out.as_bytes(),
    );
    assert_eq!(code, 0, "{ar}");
    // The hidden stamp pays only its own recipient.
    let (code, _) = check(
        &dir.path().join("t.redb"),
        &["other@example.com"],
        &[],
        out.as_bytes(),
    );
    assert_eq!(code, 2);
}

/// Unchecked means unchecked: without a minimum, without recipients or without a store, a
/// valid stamp is neutral (exit 2), never pass.
#[test]
fn check_without_a_minimum_recipients_or_store_is_not_a_pass() {
    let msg = stamped_for_bob_and_carol("Hi\r\n");
    let dir = tempfile::tempdir().unwrap();
    let spent = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let base = |store: &str| {
        vec![
            "check".to_owned(),
            "--verdict-only".to_owned(),
            "--keys".to_owned(),
            "/dev/null".to_owned(),
            "--spent".to_owned(),
            spent(store),
        ]
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            [base("1"), vec!["--rcpt".into(), "bob@example.net".into()]].concat(),
            "no --bits",
        ),
        (
            [base("2"), vec!["--bits".into(), "8".into()]].concat(),
            "no recipient",
        ),
        (
            vec![
                "check",
                "--verdict-only",
                "--keys",
                "/dev/null",
                "--no-spent",
                "--bits",
                "8",
                "--rcpt",
                "bob@example.net",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "--no-spent",
        ),
    ];
    for (args, why) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args, &msg);
        let ar = text(&o);
        assert_eq!(o.status.code(), Some(2), "{why}: {ar}");
        assert!(ar.contains("x-hashcash=neutral"), "{why}: {ar}");
        assert!(!ar.contains("x-hashcash=pass"), "{why}: {ar}");
    }
}

/// A checker with a longer window that once refused a stamp as spent keeps refusing it for its
/// whole window, after the first checker's window has passed and after a purge.
#[test]
fn a_longer_window_checker_never_sees_a_spent_stamp_fresh() {
    let date = utc("261101");
    let stamp = Minter::new()
        .mint(
            &MintRequest::hashcash("bob@example.org", 8)
                .date(StampDate::from_unix(date, 6).unwrap()),
        )
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let spent = dir.path().join("spent.redb");
    let verify = |validity: &str, at_day: i64| {
        let o = run(
            &[
                "verify",
                "--bits",
                "8",
                "-r",
                "bob@example.org",
                "--validity",
                validity,
                "--grace",
                "1d",
                "--now",
                &(date + at_day * 86_400).to_string(),
                "--spent",
                spent.to_str().unwrap(),
                &stamp,
            ],
            b"",
        );
        (o.status.code().unwrap(), text(&o))
    };
    // A short-window checker accepts it on day 0; a 28-day checker refuses it on day 1.
    assert_eq!(verify("1d", 0).0, 0);
    let (code, out) = verify("28d", 1);
    assert_eq!(code, 1, "{out}");
    // Day 10: the short window (and its purge time) are long past; purge, then check again.
    let purge = run(
        &[
            "spent",
            "purge",
            "--spent",
            spent.to_str().unwrap(),
            "--now",
            &(date + 10 * 86_400).to_string(),
        ],
        b"",
    );
    assert_eq!(purge.status.code(), Some(0));
    let (code, out) = verify("28d", 10);
    assert_eq!(code, 1, "a spent stamp came back: {out}");
    assert!(out.contains("spent"), "{out}");
    // Validity 0 keeps entries for good.
    let forever = run(
        &[
            "verify",
            "--bits",
            "8",
            "-r",
            "bob@example.org",
            "--validity",
            "0",
            "--now",
            &(date + 86_400).to_string(),
            "--spent",
            dir.path().join("forever.redb").to_str().unwrap(),
            &stamp,
        ],
        b"",
    );
    assert_eq!(forever.status.code(), Some(0));
    let purge = run(
        &[
            "spent",
            "purge",
            "--spent",
            dir.path().join("forever.redb").to_str().unwrap(),
            "--now",
            &(date + 4000 * 86_400).to_string(),
            "--json",
        ],
        b"",
    );
    assert!(text(&purge).contains("\"removed\":0"), "{}", text(&purge));
}
