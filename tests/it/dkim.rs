//! Stamped and signed mail, checked against independent implementations: dkimpy (Python) for
//! both algorithms, Mail::DKIM (Perl) for RSA, and the RFC 8463 example. `.ci/run` installs the
//! peers; without them these tests fail, they never skip.

use std::path::Path;
use std::process::Command;

use pennyblack::dkim::keys::{KeyKind, PublicKey};
use pennyblack::dkim::{self, KeyFile, SigningKey};
use pennyblack::mail::Message;

use crate::support::{data, dkimpy, mail_dkim, peer, pennyblack, pipe};

/// A folder with an Ed25519 and an RSA key and a key file publishing both.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let mut records = String::new();
        for (sel, alg) in [("ed", "ed25519"), ("rs", "rsa")] {
            let out = pennyblack()
                .args([
                    "keygen",
                    "--selector",
                    sel,
                    "--domain",
                    "example.org",
                    "--alg",
                    alg,
                    "--out",
                ])
                .arg(dir.path().join(format!("{sel}.pem")))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            records.push_str(&String::from_utf8(out.stdout).unwrap());
        }
        std::fs::write(dir.path().join("keys.txt"), records).unwrap();
        Keys { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn stamp(&self, msg: &[u8], signers: &[&str]) -> Vec<u8> {
        let mut cmd = pennyblack();
        cmd.args(["stamp", "--bits", "8"]);
        if !signers.is_empty() {
            cmd.args(["--domain", "example.org"]);
        }
        for s in signers {
            cmd.args(["--sign", &format!("{s}:{}", self.path(&format!("{s}.pem")))]);
        }
        let out = pipe(cmd, msg);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
    /// A spent store of its own for each call, so every check is a full one.
    fn fresh_store(&self) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.path(&format!("spent-{n}.redb"))
    }
    fn check(&self, msg: &[u8], rcpt: &str) -> (i32, String) {
        let mut cmd = pennyblack();
        cmd.args([
            "check",
            "--bits",
            "8",
            "--spent",
            &self.fresh_store(),
            "--verdict-only",
            "--keys",
            &self.path("keys.txt"),
        ]);
        cmd.args(["--rcpt", rcpt]);
        let out = pipe(cmd, msg);
        // unfolded, for simple assertions
        let text = String::from_utf8_lossy(&out.stdout)
            .replace("\r\n\t", " ")
            .replace("\n\t", " ");
        (out.status.code().unwrap(), text)
    }
    fn dkimpy_verify(&self, msg: &[u8]) -> i32 {
        let mut cmd = dkimpy();
        cmd.arg(peer("dkimpy_verify.py")).arg(self.path("keys.txt"));
        pipe(cmd, msg).status.code().unwrap()
    }
    fn mail_dkim_verify(&self, msg: &[u8]) -> (i32, String) {
        let mut cmd = mail_dkim();
        cmd.arg(peer("mail_dkim_verify.pl"))
            .arg(self.path("keys.txt"));
        let out = pipe(cmd, msg);
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// Messages of every awkward shape the issue names.
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let head = "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: a\r\n  folded subject\r\nDate: Fri, 27 Nov 2026 07:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n";
    vec![
        ("crlf", format!("{head}Hi Bob.\r\n").into_bytes()),
        (
            "lf",
            format!("{head}Hi Bob.\r\n")
                .replace("\r\n", "\n")
                .into_bytes(),
        ),
        (
            "8bit",
            [
                head.as_bytes(),
                "Grüße, Jörg €\r\n".as_bytes(),
                b"latin1 \xe9\r\n",
            ]
            .concat(),
        ),
        ("empty body", head.as_bytes().to_vec()),
        (
            "trailing blank lines",
            format!("{head}Hi.\r\n\r\n\r\n\r\n").into_bytes(),
        ),
        (
            "whitespace body",
            format!("{head}a  \t b \r\n \r\n").into_bytes(),
        ),
    ]
}

#[test]
#[ignore = "needs dkimpy (.venv) and Mail::DKIM: run `bash .ci/run`, which installs them"]
fn our_signatures_verify_with_dkimpy_and_mail_dkim() {
    let keys = Keys::new();
    for (name, msg) in messages() {
        let both = keys.stamp(&msg, &["ed", "rs"]);
        assert_eq!(keys.dkimpy_verify(&both), 0, "dkimpy on {name}");
        let (code, out) = keys.check(&both, "bob@example.net");
        assert_eq!(code, 0, "{name}: {out}");
        assert_eq!(out.matches("dkim=pass").count(), 2, "{name}: {out}");
        assert!(
            out.contains("x-hashcash=pass (8.00 bits, signed by example.org)"),
            "{name}: {out}"
        );
        // Mail::DKIM has no Ed25519: give it an RSA-only message.
        let rsa = keys.stamp(&msg, &["rs"]);
        let (code, out) = keys.mail_dkim_verify(&rsa);
        assert_eq!(code, 0, "Mail::DKIM on {name}: {out}");
        // the output differs from the input only by added fields
        assert!(
            both.ends_with(&msg),
            "{name}: the original must be kept byte for byte below the new fields"
        );
    }
}

#[test]
#[ignore = "needs dkimpy (.venv) and Mail::DKIM: run `bash .ci/run`, which installs them"]
fn peer_signatures_verify_with_us() {
    let keys = Keys::new();
    for (name, msg) in messages() {
        let stamped = keys.stamp(&msg, &[]);
        for (sel, alg) in [("ed", "ed25519-sha256"), ("rs", "rsa-sha256")] {
            let mut cmd = dkimpy();
            cmd.arg(peer("dkimpy_sign.py")).args([
                sel,
                "example.org",
                &keys.path(&format!("{sel}.pem")),
                alg,
                "from:to:subject:x-hashcash",
            ]);
            let out = pipe(cmd, &stamped);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (code, ar) = keys.check(&out.stdout, "bob@example.net");
            assert_eq!(code, 0, "dkimpy {alg} on {name}: {ar}");
            assert!(
                ar.contains("dkim=pass") && ar.contains("x-hashcash=pass"),
                "{ar}"
            );
        }
        let mut cmd = mail_dkim();
        cmd.arg(peer("mail_dkim_sign.pl"))
            .args(["rs", "example.org", &keys.path("rs.pem")]);
        let out = pipe(cmd, &stamped);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, ar) = keys.check(&out.stdout, "bob@example.net");
        assert_eq!(code, 0, "Mail::DKIM on {name}: {ar}");
    }
}

fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = hay
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    [&hay[..i], to, &hay[i + from.len()..]].concat()
}

#[test]
#[ignore = "needs dkimpy (.venv) and Mail::DKIM: run `bash .ci/run`, which installs them"]
fn tampering_fails_every_verifier() {
    let keys = Keys::new();
    let msg = &messages()[0].1;
    let rsa = keys.stamp(msg, &["rs"]);
    let both = keys.stamp(msg, &["ed", "rs"]);
    let tamper = |m: &[u8]| -> Vec<(&str, Vec<u8>)> {
        vec![
            (
                "stamp",
                replace_once(m, b"X-Hashcash: 2:sha256:", b"X-Hashcash: 2:sha256:1"),
            ),
            ("subject", replace_once(m, b"Subject: a", b"Subject: b")),
            ("body", replace_once(m, b"Hi Bob.", b"Hi Rob.")),
        ]
    };
    for (what, bad) in tamper(&both) {
        let (code, ar) = keys.check(&bad, "bob@example.net");
        assert_eq!(code, 1, "altered {what}: {ar}");
        assert!(!ar.contains("dkim=pass"), "altered {what}: {ar}");
        assert_eq!(keys.dkimpy_verify(&bad), 1, "dkimpy, altered {what}");
    }
    for (what, bad) in tamper(&rsa) {
        assert_eq!(
            keys.mail_dkim_verify(&bad).0,
            1,
            "Mail::DKIM, altered {what}"
        );
    }
}

#[test]
#[ignore = "needs dkimpy (.venv) and Mail::DKIM: run `bash .ci/run`, which installs them"]
fn forged_stamps_added_above_or_below_are_caught() {
    let keys = Keys::new();
    let msg = &messages()[0].1;
    let signed = keys.stamp(msg, &["ed"]);
    let extra = pipe(
        {
            let mut c = pennyblack();
            c.args(["mint", "--header", "--bits", "8", "bob@example.net"]);
            c
        },
        b"",
    )
    .stdout;
    let extra = String::from_utf8(extra).unwrap().replace('\n', "\r\n");
    // above everything, and at the bottom of the header block
    let above = [extra.as_bytes(), &signed].concat();
    let below = replace_once(
        &signed,
        b"\r\n\r\n",
        format!("\r\n{}\r\n\r\n", extra.trim_end()).as_bytes(),
    );
    for (where_, bad) in [("above", above), ("below", below)] {
        let (code, ar) = keys.check(&bad, "bob@example.net");
        assert_eq!(code, 1, "{where_}: {ar}");
        assert!(ar.contains("dkim=fail"), "{where_}: {ar}");
        assert!(
            ar.contains("unsigned"),
            "{where_}: the stamps are no longer bound: {ar}"
        );
        assert_eq!(keys.dkimpy_verify(&bad), 1, "dkimpy, forged stamp {where_}");
    }
}

#[test]
fn rfc8463_example_verifies_with_its_published_keys() {
    let msg = Message::parse(std::fs::read(data("rfc8463-a3.eml")).unwrap()).unwrap();
    let keys = KeyFile::open(&data("rfc8463-keys.txt")).unwrap();
    let results = dkim::verify(&msg, &keys, &dkim::VerifyOptions::default());
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.status, dkim::DkimStatus::Pass, "{r:?}");
    }
    assert_eq!(results[0].algorithm, "ed25519-sha256");
    // one changed byte in the body fails both
    let bad = replace_once(msg.as_bytes(), b"hungry", b"Hungry");
    let results = dkim::verify(
        &Message::parse(bad).unwrap(),
        &keys,
        &dkim::VerifyOptions::default(),
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r.status, dkim::DkimStatus::Fail(_)))
    );
}

#[test]
fn weak_and_sha1_signatures_are_refused() {
    let weak = std::fs::read_to_string(data("weak-rsa-768-keys.txt")).unwrap();
    let record = weak
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1;
    let err = PublicKey::from_record(record, KeyKind::Rsa).unwrap_err();
    assert!(err.to_string().contains("under 1024"), "{err}");
    // a signature claiming rsa-sha1 is a permerror before any key is fetched
    let msg = Message::parse(
        b"DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=x; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nx\r\n".to_vec(),
    )
    .unwrap();
    let r = dkim::verify(&msg, &KeyFile::default(), &dkim::VerifyOptions::default());
    assert!(
        matches!(&r[0].status, dkim::DkimStatus::PermError(m) if m.contains("rsa-sha1")),
        "{r:?}"
    );
}

#[test]
#[ignore = "needs the openssl command: run `bash .ci/run`, which installs it"]
fn keys_are_pem_as_openssl_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, args) in [
        ("ed25519", &["genpkey", "-algorithm", "ed25519"][..]),
        (
            "rsa",
            &[
                "genpkey",
                "-algorithm",
                "rsa",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ][..],
        ),
    ] {
        let path = dir.path().join(format!("{alg}.pem"));
        let ok = Command::new("openssl")
            .args(args)
            .arg("-out")
            .arg(&path)
            .status()
            .unwrap();
        assert!(ok.success());
        let key = SigningKey::from_file(&path).unwrap();
        assert!(key.algorithm().starts_with(alg));
        // and ours read back with openssl
        let ours = dir.path().join(format!("ours-{alg}.pem"));
        std::fs::write(
            &ours,
            SigningKey::generate(
                if alg == "rsa" {
                    KeyKind::Rsa
                } else {
                    KeyKind::Ed25519
                },
                2048,
            )
            .unwrap()
            .to_pkcs8_pem()
            .unwrap(),
        )
        .unwrap();
        let ok = Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&ours)
            .status()
            .unwrap();
        assert!(ok.success(), "openssl reads our {alg} key");
    }
    // PKCS#1 RSA is accepted too
    let p1 = dir.path().join("pkcs1.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&p1)
        .arg("2048")
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(
        std::fs::read_to_string(&p1)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    assert_eq!(
        SigningKey::from_file(Path::new(&p1)).unwrap().algorithm(),
        "rsa-sha256"
    );
}

#[test]
fn stamp_refuses_bad_input_and_writes_nothing() {
    let keys = Keys::new();
    let cases: Vec<(Vec<&str>, Vec<u8>)> = vec![
        (vec!["stamp"], b"From: a\r\nTo: b@example.org\r\n".to_vec()), // no separator
        (
            vec!["stamp"],
            b"From: a@example.org\r\n\r\nno recipients\r\n".to_vec(),
        ),
        (
            vec![
                "stamp",
                "--domain",
                "example.org",
                "--sign",
                "x:/nonexistent.pem",
            ],
            messages()[0].1.clone(),
        ),
        (vec!["stamp", "--rcpt", "bad:addr"], messages()[0].1.clone()),
    ];
    for (args, input) in cases {
        let mut c = pennyblack();
        c.args(&args);
        let out = pipe(c, &input);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    drop(keys);
}

#[cfg(feature = "dns")]
#[test]
#[ignore = "needs dnsmasq: run `bash .ci/run`, which installs it"]
fn keys_come_from_the_dns() {
    let keys = Keys::new();
    let records = std::fs::read_to_string(keys.path("keys.txt")).unwrap();
    let dns = crate::zone::Zone::start(crate::zone::Records::default().keys(&records));
    let signed = keys.stamp(&messages()[0].1, &["ed", "rs"]);
    let check = |server: String, msg: &[u8]| {
        let mut c = pennyblack();
        c.args([
            "check",
            "--bits",
            "8",
            "--spent",
            &keys.fresh_store(),
            "--verdict-only",
            "--rcpt",
            "bob@example.net",
            "--dns-timeout",
            "2",
        ])
        .args(["--dns-server", &server]);
        let out = pipe(c, msg);
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n\t", " ");
        (out.status.code().unwrap(), text)
    };
    let (code, ar) = check(format!("127.0.0.1:{}", dns.port), &signed);
    assert_eq!(code, 0, "{ar}");
    assert_eq!(ar.matches("dkim=pass").count(), 2, "{ar}");
    // a selector nobody published: permerror, not a pass and not a crash
    let renamed = replace_once(&signed, b"s=ed;", b"s=gone;");
    let (_, ar) = check(format!("127.0.0.1:{}", dns.port), &renamed);
    assert!(ar.contains("dkim=permerror (no key record"), "{ar}");
    // a server that does not answer: temperror
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_, ar) = check(silent.local_addr().unwrap().to_string(), &signed);
    assert!(ar.contains("dkim=temperror"), "{ar}");
}

/// RFC 6376 8.15: a signature that does not oversign From (here dkimpy's, `h=from:to:...`)
/// survives a forged From and Subject prepended above the real ones. Two From fields make every
/// signature fail, with the reason.
#[test]
#[ignore = "needs dkimpy (.venv) and Mail::DKIM: run `bash .ci/run`, which installs them"]
fn a_second_from_field_fails_the_signature() {
    let keys = Keys::new();
    let stamped = keys.stamp(&messages()[0].1, &[]);
    let mut cmd = dkimpy();
    cmd.arg(peer("dkimpy_sign.py")).args([
        "ed",
        "example.org",
        &keys.path("ed.pem"),
        "ed25519-sha256",
        "from:to:subject:x-hashcash",
    ]);
    let signed = pipe(cmd, &stamped);
    assert!(signed.status.success());
    let (code, ar) = keys.check(&signed.stdout, "bob@example.net");
    assert_eq!(code, 0, "{ar}");
    let forged = [
        b"From: ceo@example.org\r\nSubject: wire the money\r\n".as_slice(),
        &signed.stdout,
    ]
    .concat();
    let (code, ar) = keys.check(&forged, "bob@example.net");
    assert_eq!(code, 1, "{ar}");
    assert!(
        ar.contains("dkim=fail (the message has 2 From fields"),
        "{ar}"
    );
}

/// Tag lists and h= lists are bounded: a signature with hundreds of tags or names is a
/// permerror before any hashing or key lookup.
#[test]
fn oversized_tag_and_header_lists_are_permerrors() {
    let keys = Keys::new();
    let signed = keys.stamp(&messages()[0].1, &["ed"]);
    let many_names = format!("h={}", "x-filler:\r\n\t".repeat(2100));
    let long_h = replace_once(&signed, b"h=", many_names.as_bytes());
    let (_, ar) = keys.check(&long_h, "bob@example.net");
    assert!(
        ar.contains("dkim=permerror (h= lists more than 2048"),
        "{ar}"
    );
    let many_tags: String = (0..80).map(|i| format!("z{i}=1;\r\n\t")).collect();
    let long_tags = replace_once(&signed, b"v=1;", format!("v=1; {many_tags}").as_bytes());
    let (_, ar) = keys.check(&long_tags, "bob@example.net");
    assert!(
        ar.contains("dkim=permerror (syntax: more than 64 tags"),
        "{ar}"
    );
}

/// A keys file of garbage lines is refused with the line and what was expected; a bad key file
/// is named once ("key: FILE: why", not "key: FILE: key: why").
#[test]
fn key_files_are_read_strictly_and_errors_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    for (text, want) in [
        (
            "garbage line here\n",
            "line 1: garbage is not SELECTOR._domainkey.DOMAIN",
        ),
        (
            "# ok\ns1._domainkey.example.org v=DKIM1; k=ed25519\n",
            "line 2: the record has no p= tag",
        ),
        ("lonely\n", "line 1: no record after the name"),
    ] {
        std::fs::write(&keys, text).unwrap();
        let mut c = pennyblack();
        c.args(["check", "--keys", keys.to_str().unwrap()]);
        let o = pipe(c, b"From: a@example.org\r\n\r\nhi\r\n");
        assert_eq!(o.status.code(), Some(3));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
    }
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "junk").unwrap();
    let mut c = pennyblack();
    c.args(["stamp", "--domain", "example.org", "--sign"])
        .arg(format!("s:{}", bad.display()));
    let o = pipe(c, b"From: a@example.org\r\nTo: b@example.org\r\n\r\nhi\r\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("key:").count(), 1, "{err}");
    // keygen prints a zone-file record in strings of at most 255 octets.
    let out = pennyblack()
        .args([
            "keygen",
            "--selector",
            "s2",
            "--domain",
            "example.org",
            "--alg",
            "rsa",
            "--out",
        ])
        .arg(dir.path().join("rsa.pem"))
        .output()
        .unwrap();
    let zone = String::from_utf8_lossy(&out.stderr);
    let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
    assert!(strings.len() >= 2, "{zone}");
    assert!(strings.iter().all(|s| s.len() <= 255), "{zone}");
    assert_eq!(
        strings.concat(),
        String::from_utf8_lossy(&out.stdout)
            .split_once(' ')
            .unwrap()
            .1
            .trim()
    );
}
