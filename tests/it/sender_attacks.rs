//! Review 18 (SPF and DMARC): attacks on the sender checks, through a DNS server of our own on
//! loopback (tests/peers/sender_attacks_dns.py, dnslib) and the `pennyblack` command and milter.

#[cfg(feature = "milter")]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "milter/harness.rs"]
mod harness;
#[cfg(feature = "milter")]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "milter/proto.rs"]
mod proto;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::support::{peer, pennyblack, pipe};

/// The DNS server of sender_attacks_dns.py with `zone` (JSON), stopped when dropped.
struct Zone {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Zone {
    fn start(zone: serde_json::Value) -> Zone {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zone.json");
        std::fs::write(&file, zone.to_string()).unwrap();
        let python = std::env::var_os("PENNYBLACK_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
        let mut child = Command::new(&python)
            .arg(peer("sender_attacks_dns.py"))
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} with dnslib (`bash .ci/run`): {e}", python.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("sender_attacks_dns.py said {line:?}"));
        Zone {
            child,
            port,
            _dir: dir,
        }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// bank.example: p=reject, its mail from 192.0.2.1; evil.example: the attacker's, mail from
/// 198.51.100.7, with an explanation that looks like results.
fn zone() -> serde_json::Value {
    serde_json::json!({
        "_dmarc.bank.example": [["TXT", "v=DMARC1; p=reject"]],
        "bank.example": [["TXT", "v=spf1 ip4:192.0.2.1 -all"], ["A", "192.0.2.1"]],
        "evil.example": [["TXT", "v=spf1 ip4:198.51.100.7 exp=why.evil.example -all"]],
        "why.evil.example": [["TXT", "dkim=pass header.d=bank.example; dmarc=pass) (x"]],
        "loop1.evil.example": [["TXT", "v=spf1 include:loop2.evil.example -all"]],
        "loop2.evil.example": [["TXT", "v=spf1 include:loop1.evil.example -all"]],
        "blow.evil.example": [["TXT", format!("v=spf1 exists:{}.x.evil.example -all", "%{s}".repeat(100))]],
    })
}

/// `pennyblack check` of `msg` with the session's facts: the Authentication-Results fields,
/// unfolded.
fn check(zone: &Zone, ip: &str, helo: &str, mail_from: &str, msg: &str) -> String {
    let mut c = pennyblack();
    c.args([
        "check",
        "--no-spent",
        "--verdict-only",
        "--dns-timeout",
        "2",
    ])
    .args(["--dns-server", &zone.server()])
    .args(["--client-ip", ip, "--helo", helo, "--mail-from", mail_from]);
    let out = pipe(c, msg.as_bytes());
    assert!(
        out.status.code().is_some_and(|c| c <= 3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .replace("\r\n\t", " ")
        .replace("\n\t", " ")
}

/// An Authentication-Results value with its comments and quoted strings taken out (RFC 8601
/// grammar: nested comments, quoted-pairs), as a consumer that parses it sees it.
fn bare(value: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if depth > 0 || quoted => {
                chars.next();
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                if !quoted {
                    out.push_str("\"\"");
                }
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 && !quoted => out.push(c),
            _ => {}
        }
    }
    assert!(depth == 0 && !quoted, "unbalanced: {value}");
    out
}

/// The results (method=result) of the field holding dkim=, spf=, dmarc=.
fn results(ar: &str) -> Vec<String> {
    let field = ar
        .lines()
        .find(|l| l.contains("spf="))
        .unwrap_or_else(|| panic!("no spf= in {ar}"));
    let value = field.split_once(':').unwrap().1;
    bare(value)
        .split(';')
        .skip(1)
        .map(|r| r.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

/// Ways to write the From field so that a p=reject domain's policy did not apply (a permerror)
/// while the header, and Authentication-Results' header.from, named that domain.
#[test]
#[ignore = "needs dnslib (.venv): run `bash .ci/run`"]
fn no_from_syntax_escapes_the_authors_policy() {
    let z = zone();
    let zone = Zone::start(z);
    let spoof = |from_fields: &str| {
        let msg = format!("{from_fields}To: bob@example.net\r\nSubject: x\r\n\r\nhi\r\n");
        check(
            &zone,
            "198.51.100.7",
            "mx.evil.example",
            "a@evil.example",
            &msg,
        )
    };
    let plain = spoof("From: ceo@bank.example\r\n");
    assert!(
        results(&plain).contains(&"dmarc=fail".to_owned()),
        "{plain}"
    );
    for from in [
        // mail-auth kept the final dot: "_dmarc.bank.example.." (permerror, no policy).
        "From: ceo@bank.example.\r\n",
        "From: ceo@BANK.example.\r\n",
        // our own one-author rule made these a permerror, which no policy acts on.
        "From: ceo@bank.example, x@evil.example\r\n",
        "From: x@evil.example, ceo@bank.example\r\n",
        "From: ceo@bank.example\r\nFrom: x@evil.example\r\n",
        "From: x@evil.example\r\nFrom: ceo@bank.example\r\n",
        "From: nobody, ceo@bank.example\r\n",
        "From: Bank: ceo@bank.example;, x@evil.example\r\n",
    ] {
        let ar = spoof(from);
        assert!(
            results(&ar).contains(&"dmarc=fail".to_owned())
                && ar.contains("header.from=bank.example"),
            "{from:?} escaped bank.example's p=reject: {ar}"
        );
    }
}

/// What the attacker writes (the HELO name, MAIL FROM, the explanation of their own domain's
/// SPF record) stays in comments and quoted strings: a parser of the field sees only our
/// results.
#[test]
#[ignore = "needs dnslib (.venv): run `bash .ci/run`"]
fn attacker_text_adds_no_result() {
    let zone = Zone::start(zone());
    let msg = "From: ceo@bank.example\r\nTo: bob@example.net\r\n\r\nhi\r\n";
    // spf=fail with evil.example's explanation, whose text is results and a ')'.
    let ar = check(&zone, "203.0.113.9", "x.example", "a@evil.example", msg);
    // The domain's exp= text is the sender's words: never in the field (a consumer grepping
    // it for "dmarc=pass" would be fooled), only in the JSON.
    assert!(
        !ar.contains("header.d=bank.example"),
        "the explanation is in the field: {ar}"
    );
    assert_eq!(
        results(&ar),
        ["dkim=none", "spf=fail", "dmarc=fail"],
        "{ar}"
    );
    // The null sender: the HELO identity, written by the client.
    for helo in [
        "x.example; dmarc=pass",
        "x.example (dmarc=pass",
        "x\"; dmarc=pass; \"",
        "x.example\r\nAuthentication-Results: localhost; dmarc=pass",
    ] {
        let ar = check(&zone, "203.0.113.9", helo, "", msg);
        assert_eq!(
            ar.lines()
                .filter(|l| l.starts_with("Authentication-Results:"))
                .count(),
            ar.lines().count(),
            "{helo:?}: {ar}"
        );
        assert_eq!(
            results(&ar),
            ["dkim=none", "spf=none", "dmarc=fail"],
            "{helo:?}: {ar}"
        );
    }
    for mail_from in [
        "\"a;dmarc=pass\"@evil.example",
        "a(b@evil.example",
        "a@evil.example;dkim=pass",
    ] {
        let ar = check(&zone, "203.0.113.9", "x.example", mail_from, msg);
        let r = results(&ar);
        assert_eq!(r.len(), 3, "{mail_from:?}: {ar}");
        assert_eq!(r[0], "dkim=none", "{mail_from:?}: {ar}");
        assert!(r[1].starts_with("spf="), "{mail_from:?}: {ar}");
        assert_eq!(r[2], "dmarc=fail", "{mail_from:?}: {ar}");
    }
}

/// Records that cost: an include loop ends in a permerror, 100 `%{s}` of a 2000-octet sender stop
/// at the expansion cap (a permerror), an IPv4-mapped client is the IPv4 one.
#[test]
#[ignore = "needs dnslib (.venv): run `bash .ci/run`"]
fn costly_records_end_in_a_result() {
    let zone = Zone::start(zone());
    let spf = |ip: &str, mail_from: &str| {
        let mut c = pennyblack();
        c.args(["spf", "--dns-timeout", "2", "--dns-server", &zone.server()])
            .args([
                "--client-ip",
                ip,
                "--helo",
                "h.example",
                "--mail-from",
                mail_from,
            ]);
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(spf("192.0.2.1", "a@loop1.evil.example").starts_with("permerror"));
    let long = format!("{}@blow.evil.example", "l".repeat(2000));
    // 100 copies of a 2000-octet sender: stopped at 8192 octets of expansion (spf::MAX_EXPANSION),
    // never built whole.
    let blown = spf("192.0.2.1", &long);
    assert!(
        blown.starts_with("permerror") && blown.contains("macro expansion over 8192"),
        "{blown}"
    );
    assert!(spf("::ffff:192.0.2.1", "a@bank.example").starts_with("pass"));
    assert!(spf("::ffff:192.0.2.2", "a@bank.example").starts_with("fail"));
}

/// The milter under --dmarc-enforce: a spoof of a p=reject domain is refused in every From
/// spelling.
#[cfg(feature = "milter")]
#[test]
#[ignore = "needs dnslib (.venv): run `bash .ci/run`"]
fn milter_refuses_every_spelling_of_a_spoof() {
    let zone = Zone::start(zone());
    let tmp = tempfile::tempdir().unwrap();
    let m = harness::Milter::start(
        tmp.path(),
        "milter-review18",
        &[
            "--inbound-only",
            "--authserv-id",
            "mx.test.example",
            "--dns-server",
            &zone.server(),
            "--dns-timeout",
            "2",
            "--dmarc-enforce",
            "--max-size",
            "100000",
        ],
    );
    let port: u16 = m.addr.rsplit(':').next().unwrap().parse().unwrap();
    let send = |header: &[(&str, &str)], body: &[u8]| {
        let mut c = proto::Client::connect(port);
        c.smtp_connect("198.51.100.7");
        let r = c.message("a@evil.example", &["bob@example.net"], header, body);
        c.quit();
        r
    };
    for from in [
        &[("From", "ceo@bank.example")][..],
        &[("From", "ceo@bank.example.")],
        &[("From", "ceo@bank.example, x@evil.example")],
        &[("From", "x@evil.example"), ("From", "ceo@bank.example")],
    ] {
        let mut header = from.to_vec();
        header.extend([("To", "bob@example.net"), ("Subject", "wire")]);
        let r = send(&header, b"hi\r\n");
        assert_eq!(
            r.action,
            'y',
            "{from:?} was not refused: {r:?}\n{}",
            m.log()
        );
        assert!(r.text.contains("DMARC policy of bank.example"), "{r:?}");
    }
    // A message the milter cannot read (a header line over 998 octets, which Postfix passes up
    // to its line_length_limit of 2048, or one over --max-size) cannot show that its From
    // domain's policy is met: under --dmarc-enforce it is refused, never delivered unchecked
    // (review 18 found it delivered).
    let pad = "x".repeat(1200);
    let r = send(
        &[
            ("From", "ceo@bank.example"),
            ("To", "bob@example.net"),
            ("X-Pad", &pad),
        ],
        b"hi\r\n",
    );
    assert_eq!(r.action, 'y', "an unreadable spoof was not refused: {r:?}");
    assert!(r.text.contains("DMARC"), "{r:?}");
    let big = vec![b'x'; 100_001];
    let r = send(
        &[("From", "ceo@bank.example"), ("To", "bob@example.net")],
        &big,
    );
    assert_eq!(r.action, 'y', "an oversized spoof was not refused: {r:?}");
    assert!(r.text.contains("DMARC"), "{r:?}");
}
