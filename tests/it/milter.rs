//! `pennyblack milter` inside a real Postfix (Debian's `postfix`, installed by `.ci/run`), on
//! loopback only: messages go in over SMTP, Postfix runs them through the milter and puts them
//! on hold (nothing is ever delivered), and the held copies are read back with `postcat`.
//! Stamps are checked with the real `hashcash -c`, signatures with dkimpy. Missing Postfix is a
//! failure, not a skip. Postfix's master needs root, as it does in production: the test runs
//! Postfix's commands directly as root, or through `sudo -n` otherwise.
//!
//! The Postfix configuration written here is the one the README shows. The site (Postfix and
//! its three milters) is set up once, by `harness::Site`; the Postfix test is a list of steps,
//! each a function below it that checks one behaviour, in an order some of them rely on (a
//! stamp spent in one step is replayed in a later one).

mod harness;
mod proto;

use std::time::{Duration, Instant};

use std::process::Output;

use crate::support::{dkimpy, peer, pennyblack, pipe};
use harness::*;

#[test]
#[ignore = "needs Postfix, hashcash and dkimpy, and root (or sudo -n): run `bash .ci/run` as root"]
fn postfix_stamps_signs_checks_refuses_and_fails_open() {
    let mut site = Site::start();
    outbound_stamps_every_recipient_hides_bcc_and_signs(&site);
    submission_from_an_outsider_is_checked_as_inbound(&site);
    concurrent_connections_are_stamped_for_their_own_recipients(&site);
    let signed = inbound_removes_a_forged_verdict_and_passes_a_signed_stamp(&site);
    forged_verdicts_in_any_spelling_go_also_when_unreadable(&site);
    a_replay_fails_as_spent(&site, &signed);
    no_stamp_gets_verdicts_only(&site);
    reject_below_refuses_no_stamp_and_passes_a_good_one(&site, &signed);
    every_recipient_pays_and_a_refusal_burns_nothing(&site);
    an_envelope_star_is_an_address_not_a_pattern(&site);
    inbound_mail_gets_spf_and_dmarc_results(&site);
    dmarc_enforce_refuses_a_reject_fail_quarantines_and_never_refuses_a_temperror(&site);
    // The postage challenge loop (milters S and R), attacks first.
    let (stamped, challenge) = too_little_postage_gets_a_readable_451_and_one_challenge(&site);
    a_retry_of_the_refused_message_gets_no_second_challenge(&site, &stamped);
    a_forged_sender_gets_no_challenge(&site);
    answer_ignores_a_challenge_for_a_message_never_sent(&site, &challenge);
    answer_refuses_a_challenge_over_its_cap_and_sends_nothing(&site, &challenge);
    answer_re_sends_with_stamps_that_pass(&site, &challenge);
    the_originals_retries_after_the_answer_are_never_delivered_twice(&site, &stamped);
    forged_and_replayed_challenges_are_ignored(&site, &challenge);
    a_forged_answer_is_challenged_and_a_real_one_is_not(&site, &challenge);
    // Tickets (milters T and V, and ticketd).
    tickets_pay_through_postfix_are_cancelled_and_refunded(&site);
    a_stamp_not_minted_in_time_passes_unstamped(&site);
    sigterm_while_minting_completes_the_message_then_postfix_tempfails(&mut site);
    everything_stops_by_pid(site);
}

/// A forged verdict in our name, put on top of a message that arrives at the MX.
const FORGED: &str = "Authentication-Results: mx.test.example; x-hashcash=pass (forged)\r\n";

/// Outbound: a stamp per envelope recipient (the Bcc one too), then a DKIM signature.
/// Carol is a Bcc recipient (envelope only): her stamp names her in hidden form, and no
/// header field of the delivered message holds her address.
fn outbound_stamps_every_recipient_hides_bcc_and_signs(site: &Site) {
    let keys = site.keys.as_str();
    send_ok(
        site.sub,
        "alice@example.org",
        &["bob@example.net", "carol@example.com"],
        &message("out-1@example.org", "Bob <bob@example.net>"),
    );
    let stamped = site.postfix.take("out-1@example.org");
    let head = String::from_utf8_lossy(&stamped)
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_owned();
    assert!(
        !head.contains("carol"),
        "a Bcc address in the header:\n{head}"
    );
    // A stamp is folded where the line is full; readers drop the white space.
    let stamps = stamps_in(&stamped);
    assert_eq!(stamps.len(), 2, "{}", String::from_utf8_lossy(&stamped));
    let hc_db = site.dir().join("hashcash.sdb");
    let bob_stamp = stamps
        .iter()
        .find(|s| s.contains(":bob@example.net:"))
        .unwrap_or_else(|| panic!("no stamp for bob: {stamps:?}"));
    let carol_stamp = stamps
        .iter()
        .find(|s| s.split(':').nth(3).is_some_and(|r| r.starts_with("bcc.")))
        .unwrap_or_else(|| panic!("no hidden stamp for carol: {stamps:?}"));
    // Both bound to their message (`bind=`), both accepted by the real hashcash (version 1).
    for (s, resource) in [
        (bob_stamp, "bob@example.net"),
        (carol_stamp, carol_stamp.split(':').nth(3).unwrap()),
    ] {
        assert!(s.starts_with("1:16:"), "{s}");
        assert!(s.split(':').nth(4).unwrap().starts_with("bind="), "{s}");
        assert_eq!(
            hashcash_check(&hc_db, 16, resource, s),
            0,
            "hashcash -c refused {s}"
        );
    }
    // Carol's own checker recognises the hidden stamp as hers; nobody else's does.
    let carol_check = |rcpt: &str| {
        let mut c = pennyblack();
        c.args(["check", "--bits", "16", "--keys", keys, "--verdict-only"])
            .args(["--no-spent", "--rcpt", rcpt]);
        pipe(c, &stamped)
    };
    let mine = carol_check("Carol@Example.com");
    assert_eq!(mine.status.code(), Some(2), "valid, replay not checked");
    assert!(
        String::from_utf8_lossy(&mine.stdout).contains("x-hashcash=neutral"),
        "{}",
        String::from_utf8_lossy(&mine.stdout)
    );
    let other = carol_check("dave@example.com");
    assert!(
        String::from_utf8_lossy(&other.stdout).contains("x-hashcash=none"),
        "{}",
        String::from_utf8_lossy(&other.stdout)
    );
    let dk = pipe(
        {
            let mut c = dkimpy();
            c.arg(peer("dkimpy_verify.py")).arg(keys);
            c
        },
        &stamped,
    );
    assert!(
        dk.status.success(),
        "dkimpy: {}{}\n{}",
        String::from_utf8_lossy(&dk.stdout),
        String::from_utf8_lossy(&dk.stderr),
        String::from_utf8_lossy(&stamped)
    );
    let sig = header_values(&stamped, "DKIM-Signature");
    assert_eq!(sig.len(), 1);
    assert!(sig[0].contains("x-hashcash"), "{}", sig[0]);
}

/// The submission service reached by an outsider (127.0.0.2: not --internal, no SASL
/// login): no stamp, no signature of ours; the message is checked as inbound instead.
fn submission_from_an_outsider_is_checked_as_inbound(site: &Site) {
    send_from(
        "127.0.0.2",
        site.sub,
        "alice@example.org",
        &["bob@example.net"],
        &message("outsider-1@example.org", "bob@example.net"),
    );
    let outsider = site.postfix.take("outsider-1@example.org");
    assert!(header_values(&outsider, "DKIM-Signature").is_empty());
    assert!(header_values(&outsider, "X-Hashcash").is_empty());
    let ar = header_values(&outsider, "Authentication-Results");
    assert!(ar.iter().any(|v| v.contains("x-hashcash=none")), "{ar:?}");
}

/// Concurrent connections: every message stamped for its own recipients.
fn concurrent_connections_are_stamped_for_their_own_recipients(site: &Site) {
    let sub = site.sub;
    let senders: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let rc = [format!("r{i}a@example.net"), format!("r{i}b@example.net")];
                send_ok(
                    sub,
                    "alice@example.org",
                    &[&rc[0], &rc[1]],
                    &message(&format!("conc-{i}@example.org"), &rc[0]),
                );
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    for i in 0..4 {
        let m = site.postfix.take(&format!("conc-{i}@example.org"));
        let stamps = stamps_in(&m);
        assert_eq!(stamps.len(), 2);
        // The To recipient in clear, the envelope-only one hidden.
        let resources: Vec<&str> = stamps
            .iter()
            .map(|s| s.split(':').nth(3).unwrap())
            .collect();
        assert!(
            resources.contains(&format!("r{i}a@example.net").as_str()),
            "{resources:?}"
        );
        assert!(
            resources.iter().any(|r| r.starts_with("bcc.")),
            "{resources:?}"
        );
        for s in &stamps {
            let rcpt = s.split(':').nth(3).unwrap();
            let v = pennyblack()
                .args(["verify", "--no-spent", "--bits", "16", "-r", rcpt, s])
                .output()
                .unwrap();
            assert_eq!(v.status.code(), Some(2), "{s}"); // valid, replay not checked
        }
    }
}

/// Inbound: the stamped, signed message arrives at the MX, carrying a forged verdict in our
/// name, which is removed; ours says pass, bound to the signing domain. Returns the message as
/// milter A stamped and signed it (its stamp now spent in A's store only).
fn inbound_removes_a_forged_verdict_and_passes_a_signed_stamp(site: &Site) -> String {
    send_ok(
        site.sub,
        "alice@example.org",
        &["bob@example.net"],
        &message("in-1@example.org", "bob@example.net"),
    );
    let outbound = String::from_utf8(site.postfix.take("in-1@example.org")).unwrap();
    let inbound_copy = format!("{FORGED}{outbound}");
    send_ok(
        site.mx,
        "alice@example.org",
        &["bob@example.net"],
        &inbound_copy,
    );
    let checked = site.postfix.take("in-1@example.org");
    let ar = header_values(&checked, "Authentication-Results");
    assert_eq!(ar.len(), 2, "forged verdict not removed: {ar:?}");
    assert!(
        ar.iter()
            .any(|v| v.contains("dkim=pass") && v.contains("header.d=example.org"))
    );
    assert!(
        ar.iter()
            .any(|v| v.contains("x-hashcash=pass") && v.contains("signed by example.org")),
        "{ar:?}"
    );
    assert!(!ar.iter().any(|v| v.contains("forged")));
    outbound
}

/// Forged verdicts in other legal spellings of our id (a comment before it, a quoted
/// string, another case) are removed too, also when the message cannot be parsed (a header
/// line of 1500 octets, which Postfix passes): then our verdict says permerror.
fn forged_verdicts_in_any_spelling_go_also_when_unreadable(site: &Site) {
    let spellings = [
        "Authentication-Results: (relayed) mx.test.example; x-hashcash=pass (forged-a)\r\n",
        "Authentication-Results: \"MX.test.example\"; x-hashcash=pass (forged-b)\r\n",
        "Authentication-Results: other.example; x-hashcash=pass (kept)\r\n",
    ]
    .concat();
    let long_line = format!("X-Long: {}\r\n", "y".repeat(1500));
    for (id, extra) in [
        ("forged-2@example.com", ""),
        ("forged-3@example.com", long_line.as_str()),
    ] {
        let m = format!("{spellings}{extra}{}", message(id, "bob@example.net"));
        send_ok(site.mx, "mallory@example.com", &["bob@example.net"], &m);
        let got = site.postfix.take(id);
        let ar = header_values(&got, "Authentication-Results");
        assert!(!ar.iter().any(|v| v.contains("forged")), "{id}: {ar:?}");
        assert!(ar.iter().any(|v| v.contains("(kept)")), "{id}: {ar:?}");
        let ours: Vec<_> = ar
            .iter()
            .filter(|v| v.starts_with("mx.test.example;"))
            .collect();
        assert_eq!(ours.len(), 2, "{id}: {ar:?}");
        if !extra.is_empty() {
            assert!(
                ours.iter().all(|v| v.contains("=permerror")),
                "{id}: {ar:?}"
            );
        }
    }
}

/// Replay: the very copy that `inbound_removes_a_forged_verdict_and_passes_a_signed_stamp`
/// passed fails as spent when it comes again.
fn a_replay_fails_as_spent(site: &Site, signed: &str) {
    let inbound_copy = format!("{FORGED}{signed}");
    send_ok(
        site.mx,
        "alice@example.org",
        &["bob@example.net"],
        &inbound_copy,
    );
    let replay = site.postfix.take("in-1@example.org");
    let ar = header_values(&replay, "Authentication-Results");
    assert!(
        ar.iter()
            .any(|v| v.contains("x-hashcash=fail") && v.contains("spent")),
        "{ar:?}"
    );
}

/// No stamp: headers only by default.
fn no_stamp_gets_verdicts_only(site: &Site) {
    send_ok(
        site.mx,
        "mallory@example.com",
        &["bob@example.net"],
        &message("plain-1@example.com", "bob@example.net"),
    );
    let plain = site.postfix.take("plain-1@example.com");
    let ar = header_values(&plain, "Authentication-Results");
    assert!(ar.iter().any(|v| v.contains("x-hashcash=none")), "{ar:?}");
    assert!(ar.iter().any(|v| v.contains("dkim=none")), "{ar:?}");
}

/// --reject-below: no stamp is refused, 550 5.7.1 by milter B (--reject-with reject), 451
/// 4.7.1 by milter C (Unix socket, the default); a good stamp (`signed`'s, not spent in their stores)
/// passes: with B's spent store a pass, with C's --no-spent only neutral (never pass).
fn reject_below_refuses_no_stamp_and_passes_a_good_one(site: &Site, signed: &str) {
    for (port, refusal, id, verdict) in [
        (
            site.mx_strict,
            "550 5.7.1",
            "plain-2@example.com",
            "x-hashcash=pass",
        ),
        (
            site.mx_tempfail,
            "451 4.7.1",
            "plain-3@example.com",
            "x-hashcash=neutral",
        ),
    ] {
        let r = send(
            port,
            "mallory@example.com",
            &["bob@example.net"],
            &message(id, "bob@example.net"),
        );
        assert!(r.starts_with(refusal), "{r}");
        send_ok(port, "alice@example.org", &["bob@example.net"], signed);
        let passed = site.postfix.take("in-1@example.org");
        let ar = header_values(&passed, "Authentication-Results");
        assert!(ar.iter().any(|v| v.contains(verdict)), "{ar:?}");
        assert!(!ar.iter().any(|v| v.contains("x-hashcash=pass")) || port == site.mx_strict);
    }
}

/// Every recipient pays: one stamp (Bob's) does not carry 201 envelope recipients. The
/// message is refused whole, and refusing it burns nothing: to Bob alone it then passes.
fn every_recipient_pays_and_a_refusal_burns_nothing(site: &Site) {
    send_ok(
        site.sub,
        "alice@example.org",
        &["bob@example.net"],
        &message("many-1@example.org", "bob@example.net"),
    );
    let one_stamp = String::from_utf8(site.postfix.take("many-1@example.org")).unwrap();
    let others: Vec<String> = (0..200).map(|i| format!("r{i:03}@example.net")).collect();
    let mut many: Vec<&str> = vec!["bob@example.net"];
    many.extend(others.iter().map(String::as_str));
    let r = send(site.mx_strict, "alice@example.org", &many, &one_stamp);
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(r.contains("200 of 201"), "{r}");
    assert!(
        site.postfix
            .held()
            .iter()
            .all(|(_, m)| !String::from_utf8_lossy(m).contains("many-1@"))
    );
    send_ok(
        site.mx_strict,
        "alice@example.org",
        &["bob@example.net"],
        &one_stamp,
    );
    let ar = header_values(
        &site.postfix.take("many-1@example.org"),
        "Authentication-Results",
    );
    assert!(ar.iter().any(|v| v.contains("x-hashcash=pass")), "{ar:?}");
}

/// An envelope recipient is an address, never a pattern: RCPT TO:<*> is not paid by a
/// stamp for someone else (a catch-all or backup MX accepts such a recipient).
fn an_envelope_star_is_an_address_not_a_pattern(site: &Site) {
    send_ok(
        site.sub,
        "alice@example.org",
        &["bob@example.net"],
        &message("star-1@example.org", "bob@example.net"),
    );
    let for_bob = String::from_utf8(site.postfix.take("star-1@example.org")).unwrap();
    let r = send(site.mx_strict, "mallory@example.com", &["*"], &for_bob);
    assert!(
        r.starts_with("550 5.7.1") && r.contains("postage"),
        "RCPT TO:<*> must not be paid by Bob's stamp: {r}"
    );
}

/// Our Authentication-Results field that holds `dkim=` (the other holds `x-hashcash=`).
fn dkim_field(msg: &[u8]) -> String {
    let ar = header_values(msg, "Authentication-Results");
    let ours: Vec<&String> = ar
        .iter()
        .filter(|v| v.starts_with("mx.test.example;") && v.contains("dkim="))
        .collect();
    assert_eq!(ours.len(), 1, "{ar:?}");
    ours[0].clone()
}

/// SPF and DMARC of inbound mail, from the SMTP session Postfix reports to the milter: a
/// message milter A signed (d=example.org) sent from 127.0.0.1, which example.org's SPF
/// authorises, passes both, in the field that holds dkim= (milter D, its key from the DNS).
/// From 127.0.0.2 the same message fails SPF and still passes DMARC by its aligned signature.
/// Unsigned from 127.0.0.2 it fails DMARC under p=reject, and milter A, which does not enforce
/// DMARC (the default), delivers it with dmarc=fail.
fn inbound_mail_gets_spf_and_dmarc_results(site: &Site) {
    send_ok(
        site.sub,
        "alice@example.org",
        &["bob@example.net"],
        &message("auth-1@example.org", "bob@example.net"),
    );
    let signed = String::from_utf8(site.postfix.take("auth-1@example.org")).unwrap();
    for (source, spf) in [("127.0.0.1", "spf=pass"), ("127.0.0.2", "spf=fail")] {
        let r = send_from(
            source,
            site.mx_dmarc,
            "alice@example.org",
            &["bob@example.net"],
            &signed,
        );
        assert!(r.starts_with("250"), "{source}: {r}");
        let ar = dkim_field(&site.postfix.take("auth-1@example.org"));
        for want in [
            "dkim=pass",
            &format!("{spf} smtp.mailfrom=alice@example.org"),
            "dmarc=pass",
            "header.from=example.org",
        ] {
            assert!(ar.contains(want), "{source}: no {want}: {ar}");
        }
    }
    let unsigned = message("auth-2@example.org", "bob@example.net");
    let r = send_from(
        "127.0.0.2",
        site.mx,
        "alice@example.org",
        &["bob@example.net"],
        &unsigned,
    );
    assert!(r.starts_with("250"), "{r}");
    let ar = dkim_field(&site.postfix.take("auth-2@example.org"));
    for want in [
        "spf=fail smtp.mailfrom=alice@example.org",
        "dmarc=fail",
        "p=reject",
        "header.from=example.org",
    ] {
        assert!(ar.contains(want), "no {want}: {ar}");
    }
}

/// --dmarc-enforce (milter D): the unsigned message that milter A delivered with dmarc=fail
/// is refused (550 5.7.1, p=reject) and nothing is held; a DMARC fail under p=quarantine is
/// accepted and quarantined: sent where Postfix holds nothing by itself (`mx_dmarc_nohold`),
/// it is on hold by the milter's action (Postfix logs milter-hold); a temperror (the DMARC
/// record's server does not answer) is never refused.
fn dmarc_enforce_refuses_a_reject_fail_quarantines_and_never_refuses_a_temperror(site: &Site) {
    let from = |id: &str, author: &str| {
        message(id, "bob@example.net").replace("alice@example.org", author)
    };
    let r = send_from(
        "127.0.0.2",
        site.mx_dmarc,
        "alice@example.org",
        &["bob@example.net"],
        &message("enforce-1@example.org", "bob@example.net"),
    );
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(
        site.postfix
            .held()
            .iter()
            .all(|(_, m)| !String::from_utf8_lossy(m).contains("enforce-1@")),
        "a refused message was held"
    );
    // p=quarantine: accepted and quarantined.
    let r = send_from(
        "127.0.0.2",
        site.mx_dmarc_nohold,
        "carol@example.com",
        &["bob@example.net"],
        &from("enforce-2@example.com", "carol@example.com"),
    );
    assert!(r.starts_with("250"), "{r}");
    let started = Instant::now();
    let qid = loop {
        if let Some((qid, _)) = site
            .postfix
            .held()
            .into_iter()
            .find(|(_, m)| String::from_utf8_lossy(m).contains("<enforce-2@example.com>"))
        {
            break qid;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not held");
        std::thread::sleep(Duration::from_millis(50));
    };
    let hold = format!("{qid}: milter-hold:");
    while !std::fs::read_to_string(&site.postfix.maillog)
        .unwrap_or_default()
        .contains(&hold)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {hold} in the maillog:\n{}",
            std::fs::read_to_string(&site.postfix.maillog).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ar = dkim_field(&site.postfix.take("enforce-2@example.com"));
    assert!(
        ar.contains("dmarc=fail") && ar.contains("p=quarantine"),
        "{ar}"
    );
    // temperror: accepted, whatever the policy might have been.
    let r = send_from(
        "127.0.0.2",
        site.mx_dmarc,
        "alice@example.org",
        &["bob@example.net"],
        &from("enforce-3@example.org", "dave@tempfail.example.org"),
    );
    assert!(r.starts_with("250"), "a temperror refused: {r}");
    let ar = dkim_field(&site.postfix.take("enforce-3@example.org"));
    assert!(ar.contains("dmarc=temperror"), "{ar}");
}

/// `pennyblack answer` with the sender's keys, its store `sent`, re-sending to milter R.
fn answer(site: &Site, sent: &std::path::Path, challenge: &[u8], extra: &[&str]) -> Output {
    let mut c = pennyblack();
    c.arg("answer")
        .arg("--sent")
        .arg(sent)
        .args(["--smtp", &format!("127.0.0.1:{}", site.mx_challenge)])
        .args(["--keys", &site.keys, "--domain", "example.org"])
        .args(["--sign", &format!("s1:{}", site.key), "--bits", "8"])
        .args(extra);
    pipe(c, challenge)
}

/// `msg` without its fields named `name` (continuation lines included).
fn without_field(msg: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(msg);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if skipping {
                continue;
            }
        } else {
            skipping = line
                .split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name));
            if skipping {
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    format!("{out}\r\n{body}").into_bytes()
}

/// How often milter R's log says `what`.
fn r_says(site: &Site, what: &str) -> usize {
    site.r.log().matches(what).count()
}

/// Waits until milter R's log says `what` `n` times.
fn wait_r_says(site: &Site, what: &str, n: usize) {
    let started = Instant::now();
    while r_says(site, what) < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "milter R never said {what:?} {n} time(s):\n{}",
            site.r.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (a) Milter S stamps 8 bits and keeps the message; milter R refuses it with a 451 whose
/// text states the requirement in the policy syntax (`requirement_in_reply` reads bits=16),
/// and sends one challenge to the authenticated (SPF pass) sender: an RFC 3834 reply
/// (Auto-Submitted, In-Reply-To, null return path), signed by example.net over its
/// Postage-Challenge field, which names Bob and the message. Returns (the stamped message,
/// the challenge as held).
fn too_little_postage_gets_a_readable_451_and_one_challenge(site: &Site) -> (String, Vec<u8>) {
    send_ok(
        site.sub_keep,
        "alice@example.org",
        &["bob@example.net"],
        &message("ch-1@example.org", "Bob <bob@example.net>"),
    );
    let stamped = String::from_utf8(site.postfix.take("ch-1@example.org")).unwrap();
    let stamps = stamps_in(stamped.as_bytes());
    assert!(
        stamps.len() == 1 && stamps[0].starts_with("2:sha256:"),
        "{stamped}"
    );
    let r = send(
        site.mx_challenge,
        "alice@example.org",
        &["bob@example.net"],
        &stamped,
    );
    assert!(r.starts_with("451 4.7.1"), "{r}");
    assert!(r.contains("for 1 of 1 recipient(s)"), "{r}");
    let req = pennyblack::policy::requirement_in_reply(&r)
        .unwrap_or_else(|| panic!("no requirement in {r}"));
    assert_eq!(req.bits, 16, "{r}");
    let challenge = site.postfix.take_where("the challenge to ch-1", |m| {
        m.contains("Postage-Challenge:") && m.contains("In-Reply-To: <ch-1@example.org>")
    });
    wait_r_says(site, "challenge sent to <alice@example.org>", 1);
    for (field, want) in [
        ("Auto-Submitted", "auto-replied"),
        ("To", "<alice@example.org>"),
        ("From", "<postmaster@example.net>"),
        ("References", "<ch-1@example.org>"),
    ] {
        assert_eq!(header_values(&challenge, field), [want], "{field}");
    }
    let maillog = std::fs::read_to_string(&site.postfix.maillog).unwrap_or_default();
    assert!(
        maillog.contains("from=<>"),
        "not from the null sender:\n{maillog}"
    );
    let text = header_values(&challenge, "Postage-Challenge").remove(0);
    let c = pennyblack::challenge::Challenge::parse(&text).unwrap();
    assert_eq!(c.rcpts, ["bob@example.net"]);
    assert_eq!(c.message_id.as_deref(), Some("ch-1@example.org"));
    assert_eq!(c.requirement.bits, 16);
    let sig = header_values(&challenge, "DKIM-Signature").join(" ");
    assert!(
        sig.contains("d=example.net") && sig.contains("postage-challenge"),
        "{sig}"
    );
    (stamped, challenge)
}

/// (e) The MTA's retry of the refused message: refused again, no second challenge.
fn a_retry_of_the_refused_message_gets_no_second_challenge(site: &Site, stamped: &str) {
    let r = send(
        site.mx_challenge,
        "alice@example.org",
        &["bob@example.net"],
        stamped,
    );
    assert!(r.starts_with("451 4.7.1"), "{r}");
    wait_r_says(site, "challenge not sent: already challenged (a retry)", 1);
    std::thread::sleep(Duration::from_secs(1));
    let again = |m: &str| m.contains("In-Reply-To: <ch-1@example.org>");
    assert_eq!(site.postfix.count_where(again), 0, "a second challenge");
    assert_eq!(r_says(site, "challenge sent to"), 1, "{}", site.r.log());
}

/// (b) A forged sender (127.0.0.2 is not in example.org's SPF; unsigned): refused, and no
/// challenge goes to the address it forged (no backscatter).
fn a_forged_sender_gets_no_challenge(site: &Site) {
    let r = send_from(
        "127.0.0.2",
        site.mx_challenge,
        "alice@example.org",
        &["bob@example.net"],
        &message("forged-ch@example.org", "bob@example.net"),
    );
    assert!(r.starts_with("451 4.7.1"), "{r}");
    wait_r_says(site, "challenge not sent: sender not authenticated", 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        site.postfix.count_where(|m| m.contains("forged-ch@")),
        0,
        "a challenge went to a forged sender"
    );
    assert_eq!(r_says(site, "challenge sent to"), 1, "{}", site.r.log());
}

/// (c) A challenge for a message this sender never sent (not in its store): ignored, exit 1.
fn answer_ignores_a_challenge_for_a_message_never_sent(site: &Site, challenge: &[u8]) {
    let empty = site.dir().join("sent-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = answer(site, &empty, challenge, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no such message"), "{err}");
}

/// (d) A challenge asking more than the sender's cap: refused and reported (exit 2, what it
/// asks and the cap), nothing sent, nothing recorded.
fn answer_refuses_a_challenge_over_its_cap_and_sends_nothing(site: &Site, challenge: &[u8]) {
    let out = answer(site, &site.sent, challenge, &["--max-bits", "12"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("asks 16 bits") && err.contains("--max-bits is 12"),
        "{err}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        site.postfix
            .count_where(|m| m.contains("Message-ID: <ch-1@example.org>")),
        0,
        "re-sent over the cap"
    );
}

/// (a) `pennyblack answer` reads the challenge, mints 16-bit stamps for Bob, signs, adds
/// Postage-Answer and re-sends as alice@example.org: milter R delivers it with
/// x-hashcash=pass, and does not challenge it.
fn answer_re_sends_with_stamps_that_pass(site: &Site, challenge: &[u8]) {
    let out = answer(site, &site.sent, challenge, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("answered"), "{err}");
    let resent = site.postfix.take("ch-1@example.org");
    let ar = header_values(&resent, "Authentication-Results");
    assert!(
        ar.iter()
            .any(|v| v.contains("x-hashcash=pass") && v.contains("bob@example.net")),
        "{ar:?}"
    );
    assert!(ar.iter().any(|v| v.contains("dkim=pass")), "{ar:?}");
    let answered = header_values(&resent, "Postage-Answer");
    assert_eq!(answered.len(), 1, "{}", String::from_utf8_lossy(&resent));
    assert_eq!(
        header_values(&resent, "X-Hashcash").len(),
        1,
        "only the new stamp: {}",
        String::from_utf8_lossy(&resent)
    );
}

/// (g) The sender's MTA retries the refused original after the answer delivered it: Bob has
/// it, so the retry is taken (250) and discarded rather than refused until it bounces; a retry
/// that also names Dave, paid with a stamp of his own, reaches Dave alone.
fn the_originals_retries_after_the_answer_are_never_delivered_twice(site: &Site, stamped: &str) {
    let is_ch1 = |m: &str| m.contains("Message-ID: <ch-1@example.org>");
    let r = send(
        site.mx_challenge,
        "alice@example.org",
        &["bob@example.net"],
        stamped,
    );
    assert!(r.starts_with("250"), "{r}");
    wait_r_says(site, "1 of 1 recipient(s) have it -> discard", 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(site.postfix.count_where(is_ch1), 0, "delivered twice");
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "16", "--only-rcpt"])
        .args(["--rcpt", "dave@example.net"]);
    let out = pipe(c, stamped.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retry = String::from_utf8(out.stdout).unwrap();
    let r = send(
        site.mx_challenge,
        "alice@example.org",
        &["bob@example.net", "dave@example.net"],
        &retry,
    );
    assert!(r.starts_with("250"), "{r}");
    wait_r_says(
        site,
        "1 of 2 recipient(s) have it -> deliver, 1 recipient(s) taken off",
        1,
    );
    let started = std::time::Instant::now();
    let rcpts = loop {
        let held = site.postfix.held_recipients(is_ch1);
        if !held.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break held;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(rcpts, [["dave@example.net"]], "{}", site.r.log());
    site.postfix.take("ch-1@example.org");
}

/// (f) Forged challenges are ignored (exit 1): replayed after it was answered; without its
/// signature; signed by another domain than the recipients'; altered after signing (a lower
/// bits=, which the receiver's MAC would refuse anyway).
fn forged_and_replayed_challenges_are_ignored(site: &Site, challenge: &[u8]) {
    let out = answer(site, &site.sent, challenge, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "replayed: {err}");
    assert!(err.contains("already answered"), "{err}");
    let unsigned = without_field(challenge, "DKIM-Signature");
    let out = answer(site, &site.sent, &unsigned, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "unsigned: {err}");
    assert!(err.contains("not signed by the domain"), "{err}");
    let mut sign = pennyblack();
    sign.args(["stamp", "--alg", "sha1", "--bits", "1", "--only-rcpt"])
        .args(["--rcpt", "x@example.org", "--domain", "example.org"])
        .args(["--sign", &format!("s1:{}", site.key)]);
    let other = pipe(sign, &unsigned);
    assert!(other.status.success());
    let out = answer(site, &site.sent, &other.stdout, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "signed by example.org: {err}");
    assert!(err.contains("d=example.org pass"), "{err}");
    let altered = String::from_utf8_lossy(challenge).replace("bits=16", "bits=12");
    let out = answer(site, &site.sent, altered.as_bytes(), &[]);
    assert_eq!(out.status.code(), Some(1), "altered");
    assert_eq!(
        site.postfix
            .count_where(|m| m.contains("Message-ID: <ch-1@example.org>")),
        0,
        "a forged challenge was answered"
    );
}

/// (f) At the receiver: a message carrying a Postage-Answer whose MAC is not ours is
/// challenged like any other; one carrying a real answer (our MAC) never is.
fn a_forged_answer_is_challenged_and_a_real_one_is_not(site: &Site, challenge: &[u8]) {
    let real = header_values(challenge, "Postage-Challenge").remove(0);
    let mac = real.rsplit("mac=").next().unwrap();
    let forged = real.replace(mac, &"A".repeat(43));
    for (id, answer_text) in [("fa-1@example.org", &forged), ("fa-2@example.org", &real)] {
        // A body of its own: one challenge per (sender, body digest).
        let m = format!(
            "Postage-Answer: {answer_text}\r\n{}",
            message(id, "bob@example.net").replace("bye", &format!("bye from {id}"))
        );
        let r = send(
            site.mx_challenge,
            "alice@example.org",
            &["bob@example.net"],
            &m,
        );
        assert!(r.starts_with("451 4.7.1"), "{id}: {r}");
    }
    site.postfix.take_where("the challenge to fa-1", |m| {
        m.contains("Postage-Challenge:") && m.contains("In-Reply-To: <fa-1@example.org>")
    });
    wait_r_says(
        site,
        "challenge not sent: it answers one of our challenges",
        1,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        site.postfix
            .count_where(|m| m.contains("In-Reply-To: <fa-2@example.org>")),
        0
    );
    assert_eq!(r_says(site, "challenge sent to"), 2, "{}", site.r.log());
}

/// Tickets end to end: the sender buys two tickets into its wallet; milter T pays Bob with a
/// ticket (no stamp) under its DKIM signature; milter V, which refuses mail without 16 bits of
/// postage, checks the ticket offline, cancels it at ticketd and delivers the message with
/// `x-postage-ticket=pass`; the same message again is refused (a replay, recorded in V's
/// spent store); the receiver's refund of the wanted message restores the sender's balance.
fn tickets_pay_through_postfix_are_cancelled_and_refunded(site: &Site) {
    let d = &site.ticketd;
    let alice = site.ticket_token("alice");
    let mx = site.ticket_token("mx");
    let mut buy = pennyblack();
    buy.args(["ticket", "buy", "2", "--wallet"])
        .arg(&site.wallet)
        .args(["--ticket-server", &d.url, "--ticket-token-file"])
        .arg(&alice);
    let out = buy.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let alice_token = std::fs::read_to_string(&alice).unwrap();
    let before = d.balance(alice_token.trim());

    // Bob (To) gets a ticket; Dave (Bcc) an 8-bit stamp with a hidden resource.
    let both = ["bob@example.net", "dave@example.net"];
    send_ok(
        site.sub_ticket,
        "alice@example.org",
        &both,
        &message("tk-1@example.org", "Bob <bob@example.net>"),
    );
    let paid = site.postfix.take("tk-1@example.org");
    let tickets = header_values(&paid, "X-Postage-Ticket");
    assert_eq!(tickets.len(), 1, "{}", String::from_utf8_lossy(&paid));
    assert!(tickets[0].contains("rcpt=bob@example.net;"), "{tickets:?}");
    assert!(!tickets[0].contains("dave"), "{tickets:?}");
    assert_eq!(
        stamps_in(&paid).len(),
        1,
        "a stamp for the Bcc recipient only"
    );
    let sig = header_values(&paid, "DKIM-Signature").join(" ");
    assert!(sig.contains("x-postage-ticket"), "{sig}");

    // To both at V, which asks 16 bits: Dave is unpaid, the message refused whole, and Bob's
    // ticket is not cancelled (nothing is burnt by a refusal).
    let paid = String::from_utf8(paid).unwrap();
    let r = send(site.mx_ticket, "alice@example.org", &both, &paid);
    assert!(r.starts_with("451 4.7.1"), "{r}");
    let mx_token = std::fs::read_to_string(&mx).unwrap();
    let (code, st) = d.call("GET", "/v1/statement", mx_token.trim(), None);
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["operations"].as_array().unwrap().len(), 0, "{st}");

    // To Bob alone: paid by the ticket, cancelled, delivered.
    send_ok(
        site.mx_ticket,
        "alice@example.org",
        &["bob@example.net"],
        &paid,
    );
    let delivered = site.postfix.take("tk-1@example.org");
    let ar = header_values(&delivered, "Authentication-Results").join("\n");
    for want in [
        "x-postage-ticket=pass",
        "smtp.rcpt=bob@example.net",
        "header.iss=tickets.example.org",
        "header.d=example.org",
    ] {
        assert!(ar.contains(want), "{want}: {ar}");
    }
    assert!(
        site.v.log().contains("tickets=1/1 cancelled"),
        "{}",
        site.v.log()
    );

    // The same message again: a replay, refused whatever the service says of the cancel, with
    // the replay's own reply (retrying cannot help it).
    let r = send(
        site.mx_ticket,
        "alice@example.org",
        &["bob@example.net"],
        &paid,
    );
    assert!(r.starts_with("550 5.7.1 postage already spent"), "{r}");

    // The receiver's user wanted it: the refund gives the sender its ticket back.
    let mut refund = pennyblack();
    refund
        .args(["ticket", "refund", "--rcpt", "bob@example.net"])
        .args(["--ticket-server", &d.url, "--ticket-token-file"])
        .arg(&mx);
    let out = pipe(refund, &delivered);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(d.balance(alice_token.trim()), before + 1);
}

/// A stamp that cannot be minted in time: the message passes unstamped, and it is logged.
fn a_stamp_not_minted_in_time_passes_unstamped(site: &Site) {
    let t = Instant::now();
    send_ok(
        site.sub_slow,
        "alice@example.org",
        &["bob@example.net"],
        &message("slow-1@example.org", "bob@example.net"),
    );
    assert!(t.elapsed() < Duration::from_secs(60));
    let slow = site.postfix.take("slow-1@example.org");
    assert!(header_values(&slow, "X-Hashcash").is_empty());
    assert!(site.b.log().contains("UNSTAMPED"), "{}", site.b.log());
}

/// SIGTERM while a message is being minted: that message still completes (unstamped, at its
/// deadline), the milter exits 0, and mail that comes after is tempfailed by Postfix
/// (milter_default_action), never accepted unchecked or lost.
fn sigterm_while_minting_completes_the_message_then_postfix_tempfails(site: &mut Site) {
    let sub_slow = site.sub_slow;
    let slow2 = std::thread::spawn(move || {
        send(
            sub_slow,
            "alice@example.org",
            &["bob@example.net"],
            &message("slow-2@example.org", "bob@example.net"),
        )
    });
    let b = &mut site.b;
    let t = Instant::now();
    // Stop the milter once it has started minting slow-2 (its second "minting" line).
    while b.log().matches("minting 1 stamp(s)").count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    b.terminate();
    let r = slow2.join().unwrap();
    assert!(r.starts_with("250"), "{r}\n{}", b.log());
    assert!(
        b.wait_exit(Duration::from_secs(100)).success(),
        "{}",
        b.log()
    );
    site.postfix.take("slow-2@example.org");
    let r = send(
        site.mx_strict,
        "mallory@example.com",
        &["bob@example.net"],
        &message("after-stop@example.com", "bob@example.net"),
    );
    assert!(r.starts_with("451"), "{r}");
}

/// Everything stops by PID; milter A exits 0, and its log shows the internal client's mail
/// went out as outbound.
fn everything_stops_by_pid(mut site: Site) {
    site.postfix.stop();
    let a = &mut site.a;
    a.terminate();
    assert!(
        a.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        a.log()
    );
    assert!(
        a.log().contains("outbound (internal client)"),
        "{}",
        a.log()
    );
}

/// The trust boundaries, through the milter protocol itself (no Postfix): only an
/// authenticated sender gets our signature (a daemon name alone does not), no SMTP session
/// inherits an earlier one's login on a reused connection (QUIT_NC), and every forged verdict
/// in our name goes on every path (a header line Postfix would pass at 2048 octets, a message
/// over --max-size), with our own verdict added.
#[test]
fn milter_protocol_trust_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (key, keys) = signing_key(dir);
    let spent = dir.join("spent.redb");
    let m = Milter::start(
        dir,
        "milter-proto",
        &[
            "--keys",
            &keys,
            "--authserv-id",
            "mx.test.example",
            "--alg",
            "sha1",
            "--bits",
            "8",
            "--min-bits",
            "8",
            "--domain",
            "example.org",
            "--sign",
            &format!("s1:{key}"),
            "--spent",
            spent.to_str().unwrap(),
            "--max-size",
            "100000",
            // No SPF, DMARC or postage policies here (the Postfix test has them, through its
            // own DNS zone): this test must not ask the system's resolver anything.
            "--sender-auth",
            "off",
            "--postage-policy",
            "off",
        ],
    );
    let port: u16 = m.addr.rsplit(':').next().unwrap().parse().unwrap();
    let header = [
        ("From", "alice@example.org"),
        ("To", "bob@example.net"),
        ("Subject", "hi"),
    ];
    let mut c = proto::Client::connect(port);
    let outbound = |r: &proto::Reply| {
        !r.added_named("X-Hashcash").is_empty() && !r.added_named("DKIM-Signature").is_empty()
    };
    // 1. SASL-authenticated: outbound.
    c.macros(b'C', &[("{daemon_name}", "ORIGINATING"), ("j", "mx")]);
    c.smtp_connect("192.0.2.10");
    c.macros(b'M', &[("{auth_authen}", "alice"), ("i", "Q1")]);
    let r = c.message(
        "alice@example.org",
        &["bob@example.net"],
        &header,
        b"Hello\r\n",
    );
    assert!(outbound(&r), "{r:?}");
    // 2. The connection reused (QUIT_NC) by an unauthenticated session through the same
    // "originating" daemon: not ours to sign.
    c.quit_nc();
    c.macros(b'C', &[("{daemon_name}", "ORIGINATING"), ("j", "mx")]);
    c.smtp_connect("192.0.2.66");
    let r = c.message(
        "alice@example.org",
        &["bob@example.net"],
        &header,
        b"Hello\r\n",
    );
    assert!(!outbound(&r), "daemon name alone made it outbound: {r:?}");
    assert!(!r.added_named("Authentication-Results").is_empty(), "{r:?}");
    // 3. Authenticated again, then QUIT_NC and a session whose MTA sends no macros at all: the
    // earlier login does not survive.
    c.quit_nc();
    c.macros(b'C', &[("j", "mx")]);
    c.smtp_connect("192.0.2.10");
    c.macros(b'M', &[("{auth_authen}", "alice")]);
    let r = c.message(
        "alice@example.org",
        &["bob@example.net"],
        &header,
        b"Hi\r\n",
    );
    assert!(outbound(&r), "{r:?}");
    c.quit_nc();
    c.smtp_connect("192.0.2.66");
    let r = c.message(
        "mallory@example.com",
        &["bob@example.net"],
        &header,
        b"Hi\r\n",
    );
    assert!(!outbound(&r), "a login leaked into the next session: {r:?}");
    // 4. Forged verdicts in every legal spelling of our id go, whatever else happens; others
    // stay; ours is added. On a parse failure (a 1500-octet line) and an oversized message ours
    // says permerror.
    let forged = [
        ("Authentication-Results", "mx.test.example; x-hashcash=pass"),
        ("Authentication-Results", "other.example; x-hashcash=pass"),
        (
            "Authentication-Results",
            "(relayed) mx.test.example; dkim=pass",
        ),
        (
            "Authentication-Results",
            "\"MX.Test.Example\" 1; x-hashcash=pass",
        ),
        (
            "Authentication-Results",
            " (a (nested) comment)mx.test.example;none",
        ),
    ];
    let long = "y".repeat(1500);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases: [Case; 3] = [
        ("ok", header.to_vec(), b"Hello\r\n".to_vec()),
        (
            "unreadable",
            [&header[..], &[("X-Long", long.as_str())]].concat(),
            b"Hi\r\n".to_vec(),
        ),
        ("too large", header.to_vec(), vec![b'z'; 200_000]),
    ];
    for (what, fields, body) in cases {
        c.quit_nc();
        c.smtp_connect("192.0.2.66");
        let all: Vec<(&str, &str)> = [&forged[..], &fields[..]].concat();
        let r = c.message("mallory@example.com", &["bob@example.net"], &all, &body);
        assert_eq!(r.action, 'c', "{what}: {r:?}");
        let mut removed: Vec<u32> = r
            .changed
            .iter()
            .filter(|(_, n, v)| n == "Authentication-Results" && v.is_empty())
            .map(|(i, _, _)| *i)
            .collect();
        // Removed highest first (the MTA renumbers after each removal).
        assert!(
            removed.windows(2).all(|w| w[0] > w[1]),
            "{what}: {removed:?}"
        );
        removed.sort_unstable();
        assert_eq!(removed, [1, 3, 4, 5], "{what}: {r:?}");
        let ours = r.added_named("Authentication-Results");
        assert_eq!(ours.len(), 2, "{what}: {r:?}");
        if what != "ok" {
            assert!(
                ours.iter().all(|v| v.contains("=permerror")),
                "{what}: {ours:?}"
            );
        }
    }
    c.quit();
    let mut m = m;
    m.terminate();
    assert!(
        m.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        m.log()
    );
}

/// With keys from the DNS (the README's own configuration) the milter stops on SIGTERM with
/// exit 0; a world-writable socket is warned about at start-up.
#[test]
fn milter_with_dns_keys_stops_cleanly_and_warns_of_open_sockets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent.local_addr().unwrap().to_string();
    let mut m = Milter::start_unix(
        dir,
        "milter-dns",
        &[
            "--inbound-only",
            "--no-spent",
            "--dns-server",
            &dns,
            "--dns-timeout",
            "1",
        ],
    );
    assert!(
        m.log().contains("WARNING: --socket-mode 666"),
        "{}",
        m.log()
    );
    m.terminate();
    let status = m.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", m.log());
    assert!(!m.log().contains("panicked"), "{}", m.log());
}

/// The header fields of a raw message as the MTA hands them to a milter (name, value with its
/// folding), and the body.
fn split_message(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().unwrap();
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (n, v) = line.split_once(':').unwrap();
            fields.push((n.to_owned(), v.trim_start().to_owned()));
        }
    }
    (fields, body.replace('\n', "\r\n").into_bytes())
}

/// With --reject-below: a stamp lifted into a message with the same body but other header
/// fields pays nothing; a message refused because one recipient's stamp is spent burns none of
/// its other stamps; the verdict names no hidden recipient.
#[test]
fn milter_refuses_whole_burns_nothing_and_names_no_hidden_recipient() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_key, keys) = signing_key(dir);
    let spent = dir.join("spent.redb");
    let common = [
        "--keys",
        &keys,
        "--authserv-id",
        "mx.test.example",
        "--inbound-only",
        "--sender-auth",
        "off",
    ];
    let strict = Milter::start(
        dir,
        "milter-strict",
        &[
            &common[..],
            &[
                "--min-bits",
                "8",
                "--reject-below",
                "8",
                "--spent",
                spent.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    let port: u16 = strict.addr.rsplit(':').next().unwrap().parse().unwrap();
    let msg = "From: alice@example.org\r\nTo: bob@example.net\r\nCc: dave@example.net\r\n\
               Subject: lunch\r\nMessage-ID: <m1@example.org>\r\n\r\nAt noon?\r\n";
    let stamped = pipe(
        {
            let mut c = pennyblack();
            c.args(["stamp", "--alg", "sha1", "--bits", "8"]);
            c
        },
        msg.as_bytes(),
    );
    assert!(stamped.status.success());
    let (fields, body) = split_message(&stamped.stdout);
    let as_refs = |f: &[(String, String)]| -> Vec<(String, String)> { f.to_vec() };
    let send = |rcpts: &[&str], fields: &[(String, String)], body: &[u8]| {
        let mut c = proto::Client::connect(port);
        c.smtp_connect("192.0.2.66");
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = c.message("alice@example.org", rcpts, &refs, body);
        c.quit();
        r
    };
    // 1. Carol keeps the body and Bob's stamp, and writes her own header fields.
    let mut lifted: Vec<(String, String)> = fields
        .iter()
        .filter(|(n, v)| n == "X-Hashcash" && v.contains(":bob@example.net:"))
        .cloned()
        .collect();
    lifted.extend(
        [
            ("From", "ceo@example.org"),
            ("To", "bob@example.net"),
            ("Subject", "URGENT: wire 10k"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned())),
    );
    let r = send(&["bob@example.net"], &lifted, &body);
    assert_eq!(r.action, 'y', "a lifted stamp paid: {r:?}");
    // 2. The genuine message to Bob alone passes (the lifted copy burnt nothing).
    let r = send(&["bob@example.net"], &as_refs(&fields), &body);
    assert_eq!(r.action, 'c', "{r:?}");
    // 3. Again, to Bob and Dave: Bob's stamp is spent now, so the message is refused whole...
    let r = send(
        &["bob@example.net", "dave@example.net"],
        &as_refs(&fields),
        &body,
    );
    assert_eq!(r.action, 'y', "{r:?}");
    assert!(r.text.contains("1 of 2"), "{r:?}");
    // 4. ...and that refusal burnt nothing: to Dave alone it passes.
    let r = send(&["dave@example.net"], &as_refs(&fields), &body);
    assert_eq!(
        r.action, 'c',
        "Dave's stamp was burnt by a refused message: {r:?}"
    );
    // 5. A Bcc recipient at the same receiver: the verdict names only Bob, and says nothing of
    // the other (not even that there is one).
    let bcc = pipe(
        {
            let mut c = pennyblack();
            c.args(["stamp", "--alg", "sha1", "--bits", "8", "--only-rcpt"])
                .args(["--rcpt", "bob@example.net", "--rcpt", "secret@example.net"]);
            c
        },
        b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nHi\r\n",
    );
    let (bf, bb) = split_message(&bcc.stdout);
    let r = send(&["bob@example.net", "secret@example.net"], &bf, &bb);
    assert_eq!(r.action, 'c', "{r:?}");
    let ar = r.added_named("Authentication-Results").join("\n");
    assert!(
        ar.contains("x-hashcash=pass") && ar.contains("header.resource=bob@example.net"),
        "{ar}"
    );
    assert!(
        !ar.contains("bcc.") && !ar.contains("recipient 2") && !ar.contains("secret"),
        "{ar}"
    );
    assert_eq!(ar.matches("x-hashcash=").count(), 1, "{ar}");
}

/// The ticket service gone after the milter started: a message whose recipient only a ticket
/// pays is tempfailed (451, even under `--reject-with reject`), and burns nothing: with the
/// service back, the same message is accepted, its ticket cancelled.
#[test]
fn a_ticket_service_that_cannot_answer_tempfails_and_burns_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_key, keys) = signing_key(dir);
    let td_dir = dir.join("ticketd");
    std::fs::create_dir(&td_dir).unwrap();
    let mut d = crate::ticketd::Ticketd::start(&td_dir, "30d");
    let alice = td_dir.join("alice.token");
    let mx = td_dir.join("mx.token");
    std::fs::write(&alice, d.account("alice", "sender")).unwrap();
    std::fs::write(&mx, d.receiver("mx", &["example.net"])).unwrap();
    let wallet = dir.join("wallet");
    let out = pennyblack()
        .args(["ticket", "buy", "1", "--wallet"])
        .arg(&wallet)
        .args(["--ticket-server", &d.url, "--ticket-token-file"])
        .arg(&alice)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let msg = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: tea\r\n\
               Message-ID: <t1@example.org>\r\n\r\nAt four?\r\n";
    let stamped = pipe(
        {
            let mut c = pennyblack();
            c.args(["stamp", "--bits", "8", "--wallet"]).arg(&wallet);
            c
        },
        msg.as_bytes(),
    );
    assert!(stamped.status.success(), "{stamped:?}");
    let (fields, body) = split_message(&stamped.stdout);
    assert!(
        fields.iter().any(|(n, _)| n == "X-Postage-Ticket"),
        "{fields:?}"
    );
    let spent = dir.join("spent.redb");
    let milter = Milter::start(
        dir,
        "milter-tickets",
        &[
            "--keys",
            &keys,
            "--authserv-id",
            "mx.test.example",
            "--inbound-only",
            "--sender-auth",
            "off",
            "--reject-below",
            "16",
            "--reject-with",
            "reject",
            "--spent",
            spent.to_str().unwrap(),
            "--ticket-server",
            &d.url,
            "--ticket-token-file",
            mx.to_str().unwrap(),
            "--ticket-timeout",
            "2s",
        ],
    );
    let port: u16 = milter.addr.rsplit(':').next().unwrap().parse().unwrap();
    let send = || {
        let mut c = proto::Client::connect(port);
        c.smtp_connect("192.0.2.66");
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = c.message("alice@example.org", &["bob@example.net"], &refs, &body);
        c.quit();
        r
    };
    d.kill();
    let r = send();
    assert_eq!(r.action, 'y', "{r:?}");
    assert!(r.text.starts_with("451"), "{r:?}");
    d.restart();
    let r = send();
    assert_eq!(r.action, 'c', "{r:?}\n{}", milter.log());
    let ar = r.added_named("Authentication-Results").join("\n");
    assert!(ar.contains("x-postage-ticket=pass"), "{ar}");
    // And once accepted, the same message again is a replay.
    let r = send();
    assert_eq!(r.action, 'y', "{r:?}");
}

/// A replay is told apart: the same stamped message a second time is refused with a reply of
/// its own (550 5.7.1 "postage already spent" by default, 451 with --replay-with tempfail), never
/// "postage required" (which has the sender's MTA retry for days); an unpaid message still gets
/// 451 "postage required". Every refusal is logged with its reason, the queue id, the client and
/// the sender, and each unpaid recipient's reason.
#[test]
fn a_replay_gets_its_own_reply_and_every_refusal_its_reason_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_key, keys) = signing_key(dir);
    let msg = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: tea\r\n\
               Message-ID: <r1@example.org>\r\n\r\nAt four?\r\n";
    let stamped = pipe(
        {
            let mut c = pennyblack();
            c.args(["stamp", "--alg", "sha1", "--bits", "8"]);
            c
        },
        msg.as_bytes(),
    );
    assert!(stamped.status.success());
    let (fields, body) = split_message(&stamped.stdout);
    let (plain_fields, plain_body) = split_message(msg.as_bytes());
    for (extra, replay_reply) in [
        (&[][..], "550 5.7.1 postage already spent"),
        (
            &["--replay-with", "tempfail"][..],
            "451 4.7.1 postage already spent",
        ),
    ] {
        let spent = dir.join(format!("spent-{}.redb", extra.len()));
        let name = format!("milter-replay-{}", extra.len());
        let m = Milter::start(
            dir,
            &name,
            &[
                &[
                    "--keys",
                    keys.as_str(),
                    "--authserv-id",
                    "mx.test.example",
                    "--inbound-only",
                    "--sender-auth",
                    "off",
                    "--min-bits",
                    "8",
                    "--reject-below",
                    "8",
                    "--spent",
                    spent.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        );
        let port: u16 = m.addr.rsplit(':').next().unwrap().parse().unwrap();
        let send = |qid: &str, fields: &[(String, String)], body: &[u8]| {
            let mut c = proto::Client::connect(port);
            c.smtp_connect("192.0.2.77");
            c.macros(b'M', &[("i", qid)]);
            let refs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let r = c.message("alice@example.org", &["bob@example.net"], &refs, body);
            c.quit();
            r
        };
        let r = send("Q1", &fields, &body);
        assert_eq!(r.action, 'c', "{r:?}\n{}", m.log());
        let r = send("Q2", &fields, &body);
        assert_eq!(r.action, 'y', "{r:?}");
        assert!(r.text.starts_with(replay_reply), "{r:?}");
        assert!(!r.text.contains("postage required"), "{r:?}");
        let r = send("Q3", &plain_fields, &plain_body);
        assert_eq!(r.action, 'y', "{r:?}");
        assert!(
            r.text
                .starts_with("451 4.7.1 postage required [v=PB1; bits=8"),
            "{r:?}"
        );
        let log = m.log();
        let line = |qid: &str| -> String {
            log.lines()
                .find(|l| l.contains(&format!(": {qid}: inbound")))
                .unwrap_or_else(|| panic!("no line for {qid}: {log}"))
                .to_owned()
        };
        for (qid, words) in [
            (
                "Q1",
                &["deliver (checked)", "x-hashcash=pass", "dkim=none"][..],
            ),
            ("Q2", &["(replayed)", "<bob@example.net> spent"][..]),
            (
                "Q3",
                &["(postage_required)", "<bob@example.net> no_stamp"][..],
            ),
        ] {
            let l = line(qid);
            assert!(
                l.contains("from <alice@example.org> client 192.0.2.77"),
                "{l}"
            );
            for w in words {
                assert!(l.contains(w), "{qid} lacks {w:?}: {l}");
            }
            assert!(!l.contains("dkim/overall"), "{l}");
        }
        let mut m = m;
        m.terminate();
        assert!(m.wait_exit(std::time::Duration::from_secs(30)).success());
    }
}
