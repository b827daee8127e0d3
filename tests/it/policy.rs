//! Postage policies (`v=PB1` TXT records at `_postage.DOMAIN`) served by a real DNS server on
//! loopback (dnsmasq, `zone.rs`): the `policy` command, `stamp --postage-policy on`, and the
//! outbound milter. Stamps are judged by `pennyblack check` and `verify`. Bits are small (asked
//! 14, configured 10, cap 16) so every test is quick.
//!
//! | name                        | record                                      |
//! |-----------------------------|---------------------------------------------|
//! | `_postage.asks14.example`   | `v=PB1; bits=14`                            |
//! | `_postage.over.example`     | `v=PB1; bits=30` (over the cap of 16)       |
//! | `_postage.blake.example`    | `v=PB1; bits=12; alg=blake3; parts=4`       |
//! | `_postage.bad.example`      | `v=PB1; bits=x`                             |
//! | `_postage.multi.example`    | `v=PB1; bits=14` and `v=PB1; bits=16`       |
//! | `_postage.other.example`    | `v=spf1 -all` (a TXT record, no policy)     |
//! | `_postage.down.example`     | never answered (a DNS failure)              |
//! | `none.example`              | nothing (NXDOMAIN)                          |

#[cfg(feature = "milter")]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "milter/harness.rs"]
mod harness;
#[cfg(feature = "milter")]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "milter/proto.rs"]
mod proto;

use std::process::Output;

use serde_json::Value;

use crate::support::{pennyblack, pipe};
use crate::zone::{Records, Zone};

fn zone() -> Zone {
    let mut r = Records::default();
    r.txt("_postage.asks14.example", "v=PB1; bits=14")
        .txt("_postage.over.example", "v=PB1; bits=30")
        .txt(
            "_postage.blake.example",
            "v=PB1; bits=12; alg=blake3; parts=4",
        )
        .txt("_postage.bad.example", "v=PB1; bits=x")
        .txt("_postage.multi.example", "v=PB1; bits=14")
        .txt("_postage.multi.example", "v=PB1; bits=16")
        .txt("_postage.other.example", "v=spf1 -all")
        .silent("_postage.down.example");
    Zone::start(&r)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `pennyblack policy` with the zone's server, a 1 s DNS timeout, 10 bits configured, a cap
/// of 16.
fn policy(zone: &Zone, extra: &[&str]) -> Output {
    pennyblack()
        .args(["policy", "--bits", "10", "--max-bits", "16"])
        .args(["--dns-server", &zone.server(), "--dns-timeout", "1"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn policy_shows_a_published_record_and_what_would_be_minted() {
    let zone = zone();
    let out = policy(&zone, &["asks14.example"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // dnsmasq serves its records with TTL 0: senders keep them a minute all the same.
    assert!(
        stdout.contains("asks14.example: policy (TTL 0 s, kept 60 s by senders)"),
        "{stdout}"
    );
    assert!(stdout.contains("v=PB1; bits=14"), "{stdout}");
    assert!(
        stdout.contains("would mint:  sha256 14 bits in 16 part(s)"),
        "{stdout}"
    );
    // An address names its domain; case and a final dot do not matter.
    let out = policy(&zone, &["--json", "Bob@ASKS14.example."]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["domain"], "asks14.example");
    assert_eq!(v["result"], "policy");
    assert_eq!(v["requirement"], "v=PB1; bits=14");
    assert_eq!(v["mint"]["bits"], 14);
    assert_eq!(v["followed"], true);
    assert_eq!(
        (v["ttl"].as_u64(), v["kept"].as_u64()),
        (Some(0), Some(60)),
        "{v}"
    );
    // Over the cap: the configured cost, and why.
    let out = policy(&zone, &["--json", "over.example"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        (v["mint"]["bits"].as_u64(), &v["followed"]),
        (Some(10), &Value::Bool(false))
    );
    assert!(
        v["deviation"]
            .as_str()
            .unwrap()
            .contains("over the cap of 16"),
        "{v}"
    );
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn policy_exit_status_says_none_invalid_several_and_failure() {
    let zone = zone();
    for (domain, code, says) in [
        ("none.example", 1, "none.example: no policy"),
        ("other.example", 1, "other.example: no policy"),
        ("bad.example", 2, "invalid policy, treated as none"),
        ("multi.example", 2, "2 v=PB1 records, treated as none"),
        ("down.example", 3, "DNS failure (temperror)"),
    ] {
        let out = policy(&zone, &[domain]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{domain}: {stdout}");
        assert!(stdout.contains(says), "{domain}: {stdout}");
        assert!(
            stdout.contains("would mint:  sha256 10 bits in 16 part(s)"),
            "{domain}: {stdout}"
        );
    }
    // Several domains: the highest status; every one is shown.
    let out = policy(&zone, &["asks14.example", "bad.example", "none.example"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout).matches("would mint").count(), 3);
    let out = policy(&zone, &["--json", "bad.example", "multi.example"]);
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["result"], "invalid");
    assert_eq!(lines[0]["record"], "v=PB1; bits=x");
    assert!(lines[0]["error"].as_str().unwrap().contains("bits"));
    assert_eq!(lines[1]["result"], "several");
    assert_eq!(lines[1]["count"], 2);
}

/// A name that is no domain is bad usage (exit 3), refused before anything is asked: the DNS
/// server here is a socket that never answers, and nothing reaches it.
#[test]
fn policy_refuses_a_bad_domain_before_any_lookup() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    for bad in [
        "a..b",
        "[192.0.2.1]",
        "b\u{fc}cher .example",
        &"a".repeat(64),
    ] {
        let out = pennyblack()
            .args(["policy", "--dns-server", &server, "--dns-timeout", "1"])
            .args(["ok.example", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{bad}");
        assert!(text(&out.stdout).is_empty(), "{bad}: {}", text(&out.stdout));
    }
    silent.set_nonblocking(true).unwrap();
    assert!(silent.recv(&mut [0u8; 512]).is_err(), "a query was sent");
    // --max-bits below --bits is bad usage too.
    let out = pennyblack()
        .args(["policy", "--bits", "20", "--max-bits", "16", "x.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn policy_times_out_on_a_silent_server() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = pennyblack()
        .args(["policy", "--dns-timeout", "1", "--dns-server"])
        .arg(silent.local_addr().unwrap().to_string())
        .arg("example.net")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("DNS failure"),
        "{}",
        text(&out.stdout)
    );
}

const MSG: &str = "From: alice@example.org\r\nTo: bob@asks14.example, carol@none.example\r\n\
                   Subject: postage\r\nMessage-ID: <p1@example.org>\r\n\r\nHello.\r\n";

/// `stamp` with 10 bits configured, a cap of 16, policies followed through the zone.
fn stamp(zone: &Zone, msg: &str, extra: &[&str]) -> Output {
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "10", "--max-bits", "16", "--quiet"])
        .args(["--postage-policy", "on", "--dns-server", &zone.server()])
        .args(["--dns-timeout", "1"])
        .args(extra);
    pipe(c, msg.as_bytes())
}

/// `check --min-bits BITS --rcpt RCPT` of a stamped message, with a spent store of its own
/// (so a pass is a pass: exit 0), keys from the zone (there are none: the message is unsigned).
fn check(zone: &Zone, stamped: &[u8], bits: u32, rcpt: &str) -> i32 {
    let dir = tempfile::tempdir().unwrap();
    let mut c = pennyblack();
    c.args(["check", "--verdict-only", "--min-bits", &bits.to_string()])
        .args(["--rcpt", rcpt, "--dns-server", &zone.server()])
        .arg("--spent")
        .arg(dir.path().join("spent.redb"));
    let out = pipe(c, stamped);
    out.status.code().unwrap()
}

/// A Bcc recipient's stamp says nothing of whom it pays: hidden stamps are minted at one cost
/// chosen from what readers see already (the visible recipients' highest, or the configured
/// cost), whatever their own domains publish (earlier builds minted each at its domain's cost,
/// so `blake3:12:4` beside the visible `sha256` named the hidden recipient's domain).
/// Two hidden recipients at domains with different policies get stamps that differ only in
/// their random fields, hidden resources and counters.
#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn hidden_stamps_are_minted_alike_whatever_their_domains_ask() {
    let zone = zone();
    let out = stamp(
        &zone,
        MSG,
        &[
            "--rcpt",
            "bob@asks14.example",
            "--rcpt",
            "carol@none.example",
            "--rcpt",
            "secret@blake.example",
            "--rcpt",
            "other@asks14.example",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stamped = text(&out.stdout).replace("\r\n\t", "").replace("\r\n ", "");
    let stamps: Vec<&str> = stamped
        .lines()
        .filter_map(|l| l.strip_prefix("X-Hashcash: "))
        .map(str::trim)
        .collect();
    assert_eq!(stamps.len(), 4, "{stamped}");
    // What a reader can see of a stamp: everything but rand, the resource and the counters.
    let visible_shape = |s: &str| -> String {
        let f: Vec<&str> = s.split(':').collect();
        // 2:alg:bits:parts:date:resource:ext:rand:counters
        let ext_names: Vec<&str> = f[6]
            .split(';')
            .map(|e| e.split_once('=').map_or(e, |(n, _)| n))
            .collect();
        format!(
            "{}:{}:{}:{}:{}:{}",
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            ext_names.join(";")
        )
    };
    let hidden: Vec<&&str> = stamps.iter().filter(|s| s.contains(":bcc.")).collect();
    assert_eq!(hidden.len(), 2, "{stamps:?}");
    assert_eq!(
        visible_shape(hidden[0]),
        visible_shape(hidden[1]),
        "{hidden:?}"
    );
    // What the visible recipients' domains ask at most (asks14.example's 14 bits, which every
    // reader knows from Bob's stamp), not blake.example's 12 blake3 bits.
    let clear_bob = stamps
        .iter()
        .find(|s| s.contains(":bob@asks14.example:"))
        .unwrap();
    assert_eq!(
        visible_shape(hidden[0]),
        visible_shape(clear_bob),
        "{stamps:?}"
    );
    // Bob (visible) still gets what his domain asks.
    assert_eq!(check(&zone, &out.stdout, 14, "bob@asks14.example"), 0);
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn stamp_mints_what_a_recipient_domain_asks() {
    let zone = zone();
    let out = stamp(&zone, MSG, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    // Bob's domain asks 14 bits: his stamp has them; Carol's publishes nothing: 10 bits.
    assert_eq!(check(&zone, &out.stdout, 14, "bob@asks14.example"), 0);
    assert_eq!(check(&zone, &out.stdout, 10, "carol@none.example"), 0);
    assert_eq!(check(&zone, &out.stdout, 14, "carol@none.example"), 1);
    // Without --postage-policy (off by default) Bob gets the configured 10 bits.
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "10", "--quiet"]);
    let plain = pipe(c, MSG.as_bytes());
    assert!(plain.status.success());
    assert_eq!(check(&zone, &plain.stdout, 14, "bob@asks14.example"), 1);
}

/// `stamp` asks the DNS nothing unless --postage-policy on: the server given is a socket that
/// never answers, and no query reaches it.
#[test]
fn stamp_asks_the_dns_nothing_by_default() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "8", "--quiet", "--dns-server"])
        .arg(silent.local_addr().unwrap().to_string());
    let out = pipe(c, MSG.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    silent.set_nonblocking(true).unwrap();
    assert!(silent.recv(&mut [0u8; 512]).is_err(), "a query was sent");
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn stamp_over_the_cap_mints_the_configured_cost_and_says_so_without_a_bcc_address() {
    let zone = zone();
    // Visible recipients at over.example and multi.example; Bcc recipients at the same domains.
    let msg = MSG.replace(
        "carol@none.example",
        "dave@over.example, erin@multi.example",
    );
    let out = stamp(
        &zone,
        &msg,
        &[
            "--rcpt",
            "bob@asks14.example",
            "--rcpt",
            "dave@over.example",
            "--rcpt",
            "erin@multi.example",
            "--rcpt",
            "secret@over.example",
            "--rcpt",
            "hidden@multi.example",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let over: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("over.example"))
        .collect();
    assert_eq!(over.len(), 1, "{stderr}");
    assert!(
        over[0].contains("asks 30 bits") && over[0].contains("cap of 16 bits"),
        "{stderr}"
    );
    assert!(stderr.contains("multi.example publishes 2"), "{stderr}");
    assert!(
        !stderr.contains("secret") && !stderr.contains("hidden"),
        "a Bcc address on stderr: {stderr}"
    );
    // The configured 10 bits for Dave (over the cap); for the Bcc recipient, in hidden form, the
    // most a visible recipient's domain asks (Bob's 14), its own domain's policy not even asked.
    assert_eq!(check(&zone, &out.stdout, 10, "dave@over.example"), 0);
    assert_eq!(check(&zone, &out.stdout, 11, "dave@over.example"), 1);
    assert_eq!(check(&zone, &out.stdout, 14, "secret@over.example"), 0);
    assert_eq!(check(&zone, &out.stdout, 15, "secret@over.example"), 1);
    assert!(!text(&out.stdout).contains("secret"));
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn stamp_for_a_blake3_domain_mints_blake3() {
    let zone = zone();
    let msg = MSG.replace("carol@none.example", "dave@blake.example");
    let out = stamp(&zone, &msg, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stamped = text(&out.stdout);
    let dave: Vec<&str> = stamped
        .lines()
        .filter(|l| l.starts_with("X-Hashcash:") && l.contains("dave@blake.example"))
        .collect();
    assert_eq!(dave.len(), 1, "{stamped}");
    assert!(dave[0].contains(":blake3:"), "{}", dave[0]);
    assert_eq!(check(&zone, &out.stdout, 12, "dave@blake.example"), 0);
    // Bob's domain names no algorithm: the configured SHA-256.
    assert!(
        stamped
            .lines()
            .any(|l| l.contains(":sha256:") && l.contains("bob@asks14.example")),
        "{stamped}"
    );
}

#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn stamp_falls_back_to_the_configured_cost_when_the_dns_fails() {
    let zone = zone();
    let msg = MSG.replace("carol@none.example", "erin@down.example");
    let out = stamp(&zone, &msg, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("postage policy of down.example could not be looked up")
            && stderr.contains("minting the configured cost"),
        "{stderr}"
    );
    assert_eq!(check(&zone, &out.stdout, 10, "erin@down.example"), 0);
    assert_eq!(check(&zone, &out.stdout, 14, "bob@asks14.example"), 0);
}

/// The outbound milter (policies on by default) raises a recipient's stamp to what its domain
/// asks, keeps the configured cost for the others, and logs a policy over the cap naming the
/// domain only.
#[cfg(feature = "milter")]
#[test]
#[ignore = "needs dnsmasq: run bash .ci/run"]
fn milter_raises_a_stamp_to_what_the_recipient_domain_asks() {
    let zone = zone();
    let tmp = tempfile::tempdir().unwrap();
    let m = harness::Milter::start(
        tmp.path(),
        "milter-policy",
        &[
            "--bits",
            "10",
            "--max-bits",
            "16",
            "--dns-server",
            &zone.server(),
            "--dns-timeout",
            "1",
            "--sender-auth",
            "off",
            "--no-spent",
            "--authserv-id",
            "mx.test.example",
        ],
    );
    let port: u16 = m.addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut c = proto::Client::connect(port);
    c.smtp_connect("192.0.2.10");
    c.macros(b'M', &[("{auth_authen}", "alice"), ("i", "Q1")]);
    let r = c.message(
        "alice@example.org",
        &[
            "bob@asks14.example",
            "carol@none.example",
            "dave@over.example",
            "secret@over.example",
        ],
        &[
            ("From", "alice@example.org"),
            (
                "To",
                "bob@asks14.example, carol@none.example, dave@over.example",
            ),
            ("Subject", "postage"),
        ],
        b"Hello.\r\n",
    );
    c.quit();
    let stamps: Vec<String> = r
        .added_named("X-Hashcash")
        .iter()
        .map(|v| v.chars().filter(|c| !c.is_whitespace()).collect())
        .collect();
    assert_eq!(stamps.len(), 4, "{r:?}\n{}", m.log());
    let verify = |rcpt: &str, bits: u32| {
        let s = stamps
            .iter()
            .find(|s| s.contains(&format!(":{rcpt}:")))
            .unwrap_or_else(|| panic!("no stamp for {rcpt}: {stamps:?}"));
        pennyblack()
            .args(["verify", "--no-spent", "--min-bits", &bits.to_string()])
            .args(["-r", rcpt, s])
            .output()
            .unwrap()
            .status
            .code()
    };
    // Valid, not fully checked (no spent store, and a bound stamp): 2; too few bits: 1.
    assert_eq!(verify("bob@asks14.example", 14), Some(2));
    assert_eq!(verify("carol@none.example", 10), Some(2));
    assert_eq!(verify("carol@none.example", 14), Some(1));
    let log = m.log();
    assert!(
        log.contains("postage policy of over.example asks 30 bits"),
        "{log}"
    );
    assert!(!log.contains("secret"), "a Bcc address in the log: {log}");
    // A message stamped before this relay (as `pennyblack answer` re-sends one for a
    // challenge) is not paid twice for a recipient its stamp pays at what the relay would
    // mint; a stamp that is not valid for this message pays nothing (review).
    let raw =
        "From: alice@example.org\r\nTo: bob@asks14.example\r\nSubject: again\r\n\r\nHello.\r\n";
    let mut stamp = pennyblack();
    stamp.args([
        "stamp",
        "--bits",
        "14",
        "--only-rcpt",
        "--rcpt",
        "bob@asks14.example",
    ]);
    let out = pipe(stamp, raw.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stamped = text(&out.stdout);
    let (head, body) = stamped.split_once("\r\n\r\n").unwrap();
    let fields = header_fields(head);
    let send = |fields: &[(String, String)], qid: &str| {
        let mut c = proto::Client::connect(port);
        c.smtp_connect("192.0.2.10");
        c.macros(b'M', &[("{auth_authen}", "alice"), ("i", qid)]);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = c.message(
            "alice@example.org",
            &["bob@asks14.example"],
            &pairs,
            body.as_bytes(),
        );
        c.quit();
        r
    };
    let r = send(&fields, "Q2");
    assert!(
        r.added_named("X-Hashcash").is_empty(),
        "stamped twice: {r:?}"
    );
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| match n.as_str() {
            "X-Hashcash" => (n.clone(), "1:14:261206:bob@asks14.example::x:0".to_owned()),
            _ => (n.clone(), v.clone()),
        })
        .collect();
    let r = send(&forged, "Q3");
    assert_eq!(r.added_named("X-Hashcash").len(), 1, "{r:?}");
    let mut m = m;
    m.terminate();
    assert!(m.wait_exit(std::time::Duration::from_secs(30)).success());
}

/// The MTA's retries of an original that an answer to our challenge delivered: a copy for the
/// recipients the answer paid alone is accepted and discarded; a copy that also names another
/// recipient, on an MTA that does not let the filter remove recipients (this client offers no
/// SMFIF_DELRCPT), is refused as before: the recipients the answer paid are never counted as
/// paid on a copy that would still reach them (review). Needs no DNS.
#[cfg(feature = "milter")]
#[test]
fn retries_after_an_answer_are_dropped_only_where_they_reach_no_one_unpaid() {
    use pennyblack::challenge::{ANSWER_FIELD, Challenge};
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("challenge.key");
    let key = [9u8; 32];
    std::fs::write(&key_file, key).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (pem, _) = harness::signing_key(tmp.path());
    let m = harness::Milter::start(
        tmp.path(),
        "milter-retries",
        &[
            "--inbound-only",
            "--min-bits",
            "16",
            "--reject-below",
            "16",
            "--no-spent",
            "--sender-auth",
            "off",
            "--authserv-id",
            "mx.example.net",
            "--challenge-relay",
            "127.0.0.1:1",
            "--challenge-key",
            key_file.to_str().unwrap(),
            "--domain",
            "example.net",
            "--sign",
            &format!("s1:{pem}"),
        ],
    );
    let port: u16 = m.addr.rsplit(':').next().unwrap().parse().unwrap();
    let body = "The original.\r\n";
    let head = "From: alice@example.org\r\nTo: bob@example.net, dave@example.net\r\nSubject: s\r\nMessage-ID: <orig-1@example.org>\r\n";
    let digest = pennyblack::bind::body_digest(body.as_bytes());
    let challenge = Challenge::issue(
        &key,
        pennyblack::policy::Requirement::bits(16),
        "alice@example.org".into(),
        vec!["bob@example.net".into()],
        Some("orig-1@example.org".into()),
        digest,
        4_000_000_000,
    )
    .unwrap();
    // `stamp` output as (name, value) fields for the protocol client, and the body.
    let stamped = |raw: String, rcpts: &[&str]| -> Vec<(String, String)> {
        let all = if rcpts.is_empty() {
            raw
        } else {
            let mut c = pennyblack();
            c.args(["stamp", "--bits", "16", "--only-rcpt"]);
            for r in rcpts {
                c.args(["--rcpt", r]);
            }
            let out = pipe(c, raw.as_bytes());
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout)
        };
        header_fields(all.split_once("\r\n\r\n").unwrap().0)
    };
    let send = |fields: &[(String, String)], rcpts: &[&str], qid: &str| {
        let mut c = proto::Client::connect(port);
        c.smtp_connect("192.0.2.10");
        c.macros(b'M', &[("i", qid)]);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = c.message("alice@example.org", rcpts, &pairs, body.as_bytes());
        c.quit();
        r
    };
    // The answer: stamped for Bob, carrying our challenge; accepted, and remembered.
    let answer = stamped(
        format!("{ANSWER_FIELD}: {challenge}\r\n{head}\r\n{body}"),
        &["bob@example.net"],
    );
    let r = send(&answer, &["bob@example.net"], "A1");
    assert_eq!(r.action, 'c', "{r:?}\n{}", m.log());
    // The original retried to Bob alone: he has it, the copy is discarded.
    let original = stamped(format!("{head}\r\n{body}"), &[]);
    let r = send(&original, &["bob@example.net"], "R1");
    assert_eq!(r.action, 'd', "{r:?}\n{}", m.log());
    // The original retried to Bob and Dave (Dave paid): no recipient can be removed here,
    // so Bob is not counted as paid and the copy is refused, as before the answer.
    let for_dave = stamped(format!("{head}\r\n{body}"), &["dave@example.net"]);
    let r = send(&for_dave, &["bob@example.net", "dave@example.net"], "R2");
    assert_eq!(r.action, 'y', "{r:?}\n{}", m.log());
    assert!(r.text.starts_with("451"), "{}", r.text);
    let log = m.log();
    assert!(
        log.contains("1 of 1 recipient(s) have it -> discard (delivered_before)"),
        "{log}"
    );
    assert!(!log.contains("taken off"), "{log}");
    let mut m = m;
    m.terminate();
    assert!(m.wait_exit(std::time::Duration::from_secs(30)).success());
}

/// A header as (name, value) pairs for the milter protocol client, folded lines kept.
#[cfg(feature = "milter")]
fn header_fields(head: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        match line.strip_prefix([' ', '\t']) {
            Some(_) => fields
                .last_mut()
                .unwrap()
                .1
                .push_str(&format!("\r\n{line}")),
            None => {
                let (n, v) = line.split_once(':').unwrap();
                fields.push((n.to_owned(), v.trim_start().to_owned()));
            }
        }
    }
    fields
}
