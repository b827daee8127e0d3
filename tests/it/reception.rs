//! The receiving side's holes, each an attack that worked against earlier builds: binding
//! checks that cost a receiver seconds of CPU outside every budget, and a co-recipient's
//! doctored copy (a `Reply-To:` of hers) that still passed DKIM and the stamp binding. The
//! replay's own reply is tested at the milter protocol in `milter.rs`, hidden stamps' costs in
//! `policy.rs`.

use std::sync::Arc;

use pennyblack::bind::{BindVersion, Binding, BindingSource};
use pennyblack::dkim::{KeyFile, VerifyOptions};
use pennyblack::mail::Message;
use pennyblack::postage::{BindingView, CheckLimits, check_message};
use pennyblack::{Algorithm, MemoryStore, MintRequest, Minter, Policy, ResourcePattern, Verifier};

use crate::support::{pennyblack, pipe};

/// The worst message for binding checks that fits the parser: a header of about 1 MiB of
/// covered fields (To lines of 900 octets), 1,001 recipients (Postfix's default limit), and a
/// stamp for each, bound under every version-1 mask in turn and under version-2 masks. Earlier
/// builds re-read and re-canonicalized the covered fields for every stamp: about 1,000 times
/// the header (17 s of CPU in `check`). Now the header is canonicalized once and each distinct
/// mask hashed once: at most 65 times the covered fields, whatever the number of stamps.
#[test]
fn binding_checks_cost_one_pass_per_mask_not_one_per_stamp() {
    let rcpts: Vec<String> = (0..1001).map(|i| format!("r{i:04}@example.net")).collect();
    let mut head = String::from("From: alice@example.org\r\nSubject: s\r\n");
    let pad = "x".repeat(880);
    for i in 0..1000 {
        head.push_str(&format!("To: \"{pad}\" <t{i:04}@example.net>\r\n"));
    }
    let covered = head.len() as u64;
    let body = "Hello.\r\n";
    let plain = Message::parse(format!("{head}\r\n{body}").into_bytes()).unwrap();
    let view = BindingView::new(&plain);
    let minter = Minter::new().threads(1);
    let mut stamps = String::new();
    for (i, r) in rcpts.iter().enumerate() {
        let b = if i % 2 == 0 {
            view.binding(BindVersion::V1, (i / 2 % 64) as u32)
        } else {
            Binding::of(&view)
        };
        let req = MintRequest::hashcash(r.as_str(), 0).ext(b.add_to_ext(""));
        let stamp = minter.mint(&req).unwrap();
        stamps.push_str(&format!("X-Hashcash: {stamp}\r\n"));
    }
    let msg = Message::parse(format!("{stamps}{head}\r\n{body}").into_bytes()).unwrap();
    let policy = Policy {
        resources: rcpts
            .iter()
            .map(|r| ResourcePattern::address(r.as_str()))
            .collect(),
        max_message_work: std::time::Duration::from_secs(3600),
        ..Policy::default()
    };
    let verifier = Verifier::new(policy).with_store(MemoryStore::new());
    let v = check_message(
        &msg,
        &verifier,
        &KeyFile::default(),
        &VerifyOptions::default(),
        &CheckLimits::default(),
    )
    .unwrap();
    assert_eq!(v.stamps.len(), 1001);
    assert!(
        v.stamps.iter().all(|s| s.verdict.is_valid()),
        "{:?}",
        v.stamps.iter().find(|s| !s.verdict.is_valid())
    );
    assert_eq!(v.unpaid_recipients(0).len(), 0);
    assert!(
        v.binding_bytes <= 65 * covered,
        "{} bytes hashed for {covered} bytes of covered fields",
        v.binding_bytes
    );
    assert!(v.binding_bytes >= covered, "{}", v.binding_bytes);
}

/// Keys for example.org in a folder: an Ed25519 key and the key file publishing it.
fn keys(dir: &std::path::Path) -> (String, String) {
    let pem = dir.join("ed.pem");
    let out = pennyblack()
        .args(["keygen", "--selector", "ed", "--domain", "example.org"])
        .args(["--alg", "ed25519", "--out"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, &out.stdout).unwrap();
    (
        pem.to_str().unwrap().to_owned(),
        keys.to_str().unwrap().to_owned(),
    )
}

/// `check` of `msg` for Bob against `spent`: exit status and the verdict fields, unfolded.
fn check_for_bob(keys: &str, spent: &std::path::Path, msg: &[u8]) -> (i32, String) {
    let mut c = pennyblack();
    c.args(["check", "--bits", "8", "--verdict-only", "--keys", keys])
        .args(["--rcpt", "bob@example.net", "--spent"])
        .arg(spent);
    let o = pipe(c, msg);
    let text = String::from_utf8_lossy(&o.stdout)
        .replace("\r\n\t", " ")
        .replace("\n\t", " ");
    (o.status.code().unwrap(), text)
}

/// Eve, in Cc, re-sends her copy of Alice's signed and stamped message to Bob's MX before
/// Alice's copy arrives, with fields of her own added where Alice's message had none: her
/// `Reply-To:` (Bob's replies would go to her), `In-Reply-To:`, a MIME structure. Earlier
/// builds reported `dkim=pass` and `x-hashcash=pass` for it, and then refused Alice's genuine
/// message as spent. Now the stamp's binding and the signature cover those fields present or
/// absent: the copy fails both, burns nothing, and Alice's message passes.
#[test]
fn a_co_recipients_doctored_copy_fails_and_burns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, keys) = keys(dir.path());
    let msg = "From: alice@example.org\r\nTo: bob@example.net\r\nCc: eve@example.net\r\n\
               Subject: the contract\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\
               Message-ID: <c1@example.org>\r\n\r\nPlease sign and send it back.\r\n";
    let mut c = pennyblack();
    c.args([
        "stamp",
        "--bits",
        "8",
        "--alg",
        "sha1",
        "--domain",
        "example.org",
    ])
    .args(["--sign", &format!("ed:{pem}")]);
    let stamped = pipe(c, msg.as_bytes());
    assert!(
        stamped.status.success(),
        "{}",
        String::from_utf8_lossy(&stamped.stderr)
    );
    let genuine = String::from_utf8(stamped.stdout).unwrap();
    let (top, rest) = genuine.split_once("Subject: ").unwrap();
    for added in [
        "Reply-To: eve@example.net\r\n",
        "Sender: eve@example.net\r\n",
        "In-Reply-To: <earlier@example.net>\r\n",
        "References: <earlier@example.net>\r\n",
        "MIME-Version: 1.0\r\nContent-Type: text/html\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        "Mail-Followup-To: eve@example.net\r\n",
    ] {
        let doctored = format!("{top}{added}Subject: {rest}");
        let spent = dir.path().join("spent.redb");
        let (code, ar) = check_for_bob(&keys, &spent, doctored.as_bytes());
        assert_eq!(code, 1, "{added}: {ar}");
        assert!(ar.contains("dkim=fail"), "{added}: {ar}");
        assert!(
            ar.contains("x-hashcash=fail (bound to another message"),
            "{added}: {ar}"
        );
    }
    // Nothing was burnt: Alice's own copy passes, signature and stamp.
    let spent = dir.path().join("spent.redb");
    let (code, ar) = check_for_bob(&keys, &spent, genuine.as_bytes());
    assert_eq!(code, 0, "{ar}");
    assert!(ar.contains("dkim=pass"), "{ar}");
    assert!(ar.contains("x-hashcash=pass"), "{ar}");
    // What relays add (trace fields) breaks neither, on a fresh store.
    let relayed = format!(
        "Received: from mx.example.org by mx.example.net; Mon, 7 Dec 2026 10:00:01 +0000\r\n{genuine}"
    );
    let (code, ar) = check_for_bob(&keys, &dir.path().join("fresh.redb"), relayed.as_bytes());
    assert_eq!(code, 0, "{ar}");
    // A receiver demanding full bindings refuses a version-1 binding (earlier releases' stamps,
    // under which Eve's Reply-To would have passed) and accepts today's.
    let view_msg = Message::parse(msg.as_bytes().to_vec()).unwrap();
    let old = Binding::of_v1(&BindingView::new(&view_msg));
    let old_stamp = Minter::new()
        .mint(&MintRequest::hashcash("bob@example.net", 8).ext(old.add_to_ext("")))
        .unwrap();
    let old_msg = format!("X-Hashcash: {old_stamp}\r\n{msg}");
    for (flag, code) in [(None, 0), (Some("--require-full-binding"), 1)] {
        let mut c = pennyblack();
        c.args(["check", "--bits", "8", "--verdict-only", "--keys", &keys])
            .args(["--rcpt", "bob@example.net", "--no-spent"])
            .args(flag);
        let o = pipe(c, old_msg.as_bytes());
        let out = String::from_utf8_lossy(&o.stdout).replace("\r\n\t", " ");
        // Without a store the best is neutral (exit 2); refused it is a fail (exit 1).
        let want = if code == 0 { 2 } else { 1 };
        assert_eq!(o.status.code(), Some(want), "{flag:?}: {out}");
        if code == 1 {
            assert!(out.contains("every field a reader sees"), "{out}");
        }
    }
    let mut c = pennyblack();
    c.args(["check", "--bits", "8", "--verdict-only", "--keys", &keys])
        .args([
            "--rcpt",
            "bob@example.net",
            "--no-spent",
            "--require-full-binding",
        ]);
    let o = pipe(c, genuine.as_bytes());
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The reception engine judges `check` as the milter: with --reject-below its JSON carries the
/// decision, a replay is told apart from an unpaid message, and each unpaid recipient's reason
/// is named.
#[test]
fn check_prints_the_decision_and_tells_a_replay_from_unpaid_postage() {
    let dir = tempfile::tempdir().unwrap();
    let msg = "From: alice@example.org\r\nTo: bob@example.net, carol@example.net\r\n\
               Subject: s\r\nMessage-ID: <d1@example.org>\r\n\r\nHi.\r\n";
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "8", "--alg", "sha1", "--only-rcpt"])
        .args(["--rcpt", "bob@example.net"]);
    let stamped = pipe(c, msg.as_bytes());
    assert!(stamped.status.success());
    let spent = dir.path().join("spent.redb");
    let judge = |rcpts: &[&str]| -> (i32, serde_json::Value) {
        let mut c = pennyblack();
        c.args(["check", "--bits", "8", "--reject-below", "8", "--json"])
            .args(["--keys", "/dev/null", "--spent"])
            .arg(&spent);
        for r in rcpts {
            c.args(["--rcpt", r]);
        }
        let o = pipe(c, &stamped.stdout);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code().unwrap(), v)
    };
    // Carol has no stamp: postage required, the requirement stated, nothing recorded.
    let (code, v) = judge(&["bob@example.net", "carol@example.net"]);
    assert_eq!(code, 1, "{v}");
    let d = &v["decision"];
    assert_eq!(d["action"], "refuse", "{v}");
    assert_eq!(d["reason"], "postage_required", "{v}");
    assert!(
        d["reply"]
            .as_str()
            .unwrap()
            .starts_with("451 4.7.1 postage required [v=PB1; bits=8"),
        "{v}"
    );
    assert_eq!(d["unpaid"][0]["recipient"], "carol@example.net", "{v}");
    assert_eq!(d["unpaid"][0]["reason"], "no_stamp", "{v}");
    // Bob alone: delivered, and his stamp spent.
    let (code, v) = judge(&["bob@example.net"]);
    assert_eq!(
        (code, &v["decision"]["action"]),
        (0, &serde_json::json!("deliver")),
        "{v}"
    );
    // The same again: a replay, refused for good, not "postage required".
    let (code, v) = judge(&["bob@example.net"]);
    assert_eq!(code, 1, "{v}");
    let d = &v["decision"];
    assert_eq!(d["reason"], "replayed", "{v}");
    assert!(
        d["reply"]
            .as_str()
            .unwrap()
            .starts_with("550 5.7.1 postage already spent"),
        "{v}"
    );
    assert_eq!(d["unpaid"][0]["reason"], "spent", "{v}");
}

/// The engine as a library user calls it: the message, its envelope, a receiver's
/// configuration; one decision out.
#[test]
fn the_engine_judges_without_any_protocol() {
    use pennyblack::reception::{Action, Content, Envelope, Inbound, Reason, judge};
    let msg = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nHi.\r\n";
    let stamp = Minter::new()
        .mint(
            &MintRequest::new("bob@example.net")
                .alg(Algorithm::Sha256)
                .bits(8)
                .parts(1),
        )
        .unwrap();
    let stamped = format!("X-Hashcash: {stamp}\r\n{msg}");
    let mut inb = Inbound::new(
        "mx.example.net",
        Arc::new(KeyFile::default()),
        Policy {
            min_bits: Some(8),
            ..Policy::default()
        },
    );
    inb.store = Some(Arc::new(MemoryStore::new()));
    inb.reject_below = Some(8);
    let env = Envelope {
        sender: "alice@example.org".into(),
        recipients: vec!["bob@example.net".into()],
        client: Some("192.0.2.1".parse().unwrap()),
        ..Envelope::default()
    };
    let d = judge(&inb, &env, Content::Message(stamped.clone().into_bytes()));
    assert!(matches!(d.action, Action::Deliver { .. }), "{d:?}");
    assert!(
        d.fields.iter().any(|f| f.contains("x-hashcash=pass")),
        "{d:?}"
    );
    assert!(
        d.log.contains("from <alice@example.org> client 192.0.2.1"),
        "{}",
        d.log
    );
    let d = judge(&inb, &env, Content::Message(stamped.into_bytes()));
    assert_eq!(d.reason, Reason::Replayed, "{d:?}");
    assert!(d.log.contains("<bob@example.net> spent"), "{}", d.log);
    let d = judge(&inb, &env, Content::Message(msg.as_bytes().to_vec()));
    assert_eq!(d.reason, Reason::PostageRequired, "{d:?}");
    assert!(
        matches!(&d.action, Action::Refuse(r) if r.code == 451),
        "{d:?}"
    );
    assert!(d.log.contains("<bob@example.net> no_stamp"), "{}", d.log);
}

/// `check` used as a delivery filter: a verdict forged in our name (a field below claiming our
/// authserv-id, in any spelling RFC 8601 allows) is dropped, so a reader cannot take it for
/// ours; another host's verdict stays, and the message is otherwise as it came.
#[test]
fn check_drops_verdicts_forged_in_our_name() {
    let msg = "Authentication-Results: (ours?) MX.Example.NET; x-hashcash=pass\r\n\
               Authentication-Results: \"mx.example.net\"; dkim=pass\r\n\
               Authentication-Results: relay.example.org; dkim=pass\r\n\
               From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nHi.\r\n";
    let mut c = pennyblack();
    c.args(["check", "--bits", "8", "--keys", "/dev/null", "--no-spent"])
        .args([
            "--rcpt",
            "bob@example.net",
            "--authserv-id",
            "mx.example.net",
        ]);
    let o = pipe(c, msg.as_bytes());
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        !out.contains("(ours?)") && !out.contains("\"mx.example.net\""),
        "{out}"
    );
    assert!(out.contains("relay.example.org; dkim=pass"), "{out}");
    assert!(
        out.ends_with(
            "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nHi.\r\n"
        ),
        "{out}"
    );
    assert_eq!(
        out.matches("Authentication-Results: mx.example.net;")
            .count(),
        2,
        "{out}"
    );
}

/// Our own signature over a message to 1,000 recipients, each with a stamp (every stamp field
/// listed in `h=`, and oversigned): it verifies at our own receivers. With `h=` bounded at 256
/// names, a message to more than about 225 recipients was a permerror there, so its stamps were
/// tied to no domain.
#[test]
fn our_signature_over_a_thousand_stamps_verifies() {
    use pennyblack::dkim::keys::KeyKind;
    use pennyblack::dkim::{Canon, SignRequest, SigningKey};
    let key = SigningKey::generate(KeyKind::Ed25519, 0).unwrap();
    let record = key.public_record().unwrap();
    let keys = KeyFile::parse(&format!("s1._domainkey.example.org {record}\n")).unwrap();
    let rcpts: Vec<String> = (0..1000).map(|i| format!("r{i:04}@example.net")).collect();
    let msg = format!(
        "From: alice@example.org\r\nTo: {}\r\nSubject: s\r\n\r\nHi.\r\n",
        rcpts[..3].join(", ")
    );
    let msg = Message::parse(msg.into_bytes()).unwrap();
    let keyed = [("s1".to_owned(), key)];
    let signers = SignRequest::each(
        "example.org",
        &keyed,
        (Canon::Relaxed, Canon::Relaxed),
        1_000,
    );
    let req = MintRequest::hashcash("-", 0);
    let fields =
        pennyblack::postage::stamp_fields(&msg, &rcpts, &req, &Minter::new(), &signers).unwrap();
    let signed = Message::parse(msg.with_fields_on_top(&fields)).unwrap();
    let results = pennyblack::dkim::verify(
        &signed,
        &keys,
        &VerifyOptions {
            now: 2_000,
            ..VerifyOptions::default()
        },
    );
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].status,
        pennyblack::dkim::DkimStatus::Pass,
        "{:?}",
        results[0].status
    );
    assert!(results[0].covers("x-hashcash") > 1000);
}
