//! Hostile input, one case per failure mode: each gets its documented verdict or error, exit
//! code, and no panic. (Part of the hostile-input issue; fuzzing comes separately.)

use pennyblack::dkim::{self, KeyFile};
use pennyblack::mail::{MailError, Message};
use pennyblack::{ParseError, Policy, VerifyError};

use crate::support::{pennyblack, pipe};

fn verify_stdin(input: &[u8]) -> (i32, String, String) {
    let mut c = pennyblack();
    c.args(["verify", "--no-spent", "--bits", "8", "-r", "*"]);
    let o = pipe(c, input);
    (
        o.status
            .code()
            .expect("exited by a signal (a panic would abort with 101, a crash with none)"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_stamps_are_malformed_verdicts_not_crashes() {
    type Expect = fn(&ParseError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("1:8:250101:x::abc", |e| {
            matches!(e, ParseError::FieldCount { .. })
        }),
        ("1:8", |e| matches!(e, ParseError::FieldCount { .. })),
        ("1:99999999999:250101:x::a:b", |e| {
            matches!(e, ParseError::BadBits(_))
        }),
        ("1:-5:250101:x::a:b", |e| {
            matches!(e, ParseError::BadBits(_))
        }),
        ("1:ten:250101:x::a:b", |e| {
            matches!(e, ParseError::BadBits(_))
        }),
        ("2:sha256:300:1:250101:x::a:b", |e| {
            matches!(e, ParseError::BitsTooHigh { .. })
        }),
        ("2:sha256:8:-1:250101:x::a:b", |e| {
            matches!(e, ParseError::BadParts(_))
        }),
        ("2:sha256:8:2:250101:x::a:b,b", |e| {
            matches!(e, ParseError::DuplicateCounter(_))
        }),
        ("1:8:2501:x::a:b\u{0}", |e| {
            matches!(e, ParseError::BadCharacter(_))
        }),
        ("1:8:250101:r\u{e9}sum\u{e9}::a:b", |e| {
            matches!(e, ParseError::BadCharacter(_))
        }),
        ("9:8:250101:x::a:b", |e| {
            matches!(e, ParseError::UnsupportedVersion(_))
        }),
        ("1:8:999999:x::a:b", |e| matches!(e, ParseError::BadDate(_))),
    ];
    for (text, want) in cases {
        let v = pennyblack::verify(text, &Policy::new(8, ["*"]));
        match &v.result() {
            Err(VerifyError::Malformed(e)) => assert!(want(e), "{text:?}: {e:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let long = format!("1:8:250101:{}::a:b", "x".repeat(20_000));
    let v = pennyblack::verify(&long, &Policy::new(8, ["*"]));
    assert!(matches!(
        v.result(),
        Err(VerifyError::Malformed(ParseError::TooLong(_)))
    ));
}

#[test]
fn the_cli_survives_garbage_on_stdin() {
    // invalid UTF-8, NUL bytes, a CR/LF mix (which trims to a stamp, expired), a 10 MB line
    let mut input = b"1:8:250101:\xff\xfe::a:b\r\n\0\0\0\n1:8:250101:x::a:b\r\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'A', 10 << 20));
    input.push(b'\n');
    let (code, out, err) = verify_stdin(&input);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out:.400}");
    assert!(
        lines[0].starts_with("invalid (malformed: stamp holds a character"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("invalid (malformed"), "{}", lines[1]);
    assert!(lines[2].starts_with("invalid (expired"), "{}", lines[2]);
    assert!(lines[3].starts_with("invalid (malformed: stamp is 10485760 bytes long"));
    // a huge line is not echoed back whole
    assert!(out.len() < 4096, "{} bytes of output", out.len());
}

#[test]
fn messages_that_break_the_limits_are_refused_cleanly() {
    let cases: Vec<(Vec<u8>, MailError)> = vec![
        (b"From: a\r\nTo: b\r\n".to_vec(), MailError::NoSeparator),
        (
            b"From: a\r\n\0To: b\r\n\r\n".to_vec(),
            MailError::BadBytes(2),
        ),
        (
            b"From: a\r\nno colon here\r\n\r\n".to_vec(),
            MailError::BadField(2),
        ),
        (b"From: a\x00b\r\n\r\n".to_vec(), MailError::BadBytes(1)),
        (
            format!("X: {}\r\n\r\n", "y".repeat(10 << 20)).into_bytes(),
            MailError::LineTooLong {
                line: 1,
                len: (10 << 20) + 3,
                max: 998,
            },
        ),
        (
            "X-Hashcash: a\r\n"
                .repeat(100_000)
                .into_bytes()
                .into_iter()
                .chain(*b"\r\n")
                .collect(),
            MailError::HeaderTooLarge(1 << 20),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(Message::parse(raw).unwrap_err(), want);
    }
    // CRLF and LF mixed in one message are read line by line as they come
    let m =
        Message::parse(b"From: a@x.org\r\nTo: b@x.org\nSubject: s\r\n\nbody\n".to_vec()).unwrap();
    assert_eq!(m.fields().count(), 3);
    assert_eq!(m.body(), b"body\n");
}

#[test]
fn thousands_of_stamps_are_capped() {
    let stamp = pennyblack::mint(&pennyblack::MintRequest::hashcash("bob@example.net", 4)).unwrap();
    let mut msg = String::new();
    for _ in 0..5000 {
        msg.push_str(&format!("X-Hashcash: {stamp}\r\n"));
    }
    msg.push_str("From: a@example.org\r\nTo: bob@example.net\r\n\r\nhi\r\n");
    let mut c = pennyblack();
    c.args([
        "check",
        "--no-spent",
        "--bits",
        "4",
        "--rcpt",
        "bob@example.net",
        "--keys",
        "/dev/null",
        "--json",
    ]);
    let o = pipe(c, msg.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // --max-stamps, and one more per recipient (so that every recipient can be paid).
    assert_eq!(
        v["stamps"].as_array().unwrap().len(),
        64 + 1,
        "at most --max-stamps + recipients are examined"
    );
    assert_eq!(v["skipped_stamps"], 5000 - 65);
}

#[test]
fn dkim_tag_abuse() {
    let keys = KeyFile::default();
    let opts = dkim::VerifyOptions::default();
    let msg = |sig: &str| {
        Message::parse(
            format!("DKIM-Signature: {sig}\r\nFrom: a@example.org\r\n\r\nx\r\n").into_bytes(),
        )
        .unwrap()
    };
    // duplicated tags, unknown algorithm, missing required tags: permerror before any lookup
    for sig in [
        "v=1; v=1; a=rsa-sha256; d=example.org; s=x; h=from; bh=AA==; b=AA==",
        "v=1; a=rsa-md5; d=example.org; s=x; h=from; bh=AA==; b=AA==",
        "v=1; a=rsa-sha256; d=example.org; h=from; bh=AA==; b=AA==",
        "v=1; a=rsa-sha256; d=example.org; s=x; h=to; bh=AA==; b=AA==",
        "v=1; a=rsa-sha256; d=example.org; s=x; h=from; bh=!!!; b=AA==",
        "v=2; a=rsa-sha256; d=example.org; s=x; h=from; bh=AA==; b=AA==",
    ] {
        let r = dkim::verify(&msg(sig), &keys, &opts);
        assert!(
            matches!(r[0].status, dkim::DkimStatus::PermError(_)),
            "{sig}: {r:?}"
        );
    }
    // many signatures: only the first few are verified
    let many: String = (0..50)
        .map(|i| format!("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s{i}; h=from; bh=AA==; b=AA==\r\n"))
        .collect();
    let m = Message::parse(format!("{many}From: a@example.org\r\n\r\nx\r\n").into_bytes()).unwrap();
    let r = dkim::verify(&m, &keys, &opts);
    assert_eq!(r.len(), 50);
    assert!(
        r[opts.max_signatures..]
            .iter()
            .all(|d| d.status.reason().is_some_and(|m| m.contains("not checked")))
    );
}
