//! Tickets on mail (issue 20), through the commands a sender and a receiver run, against a real
//! `ticketd` on loopback: `ticket buy` into a wallet (with work and from credits, topping up),
//! `stamp --wallet` paying the recipients the header names with tickets and the others with
//! stamps, `check --ticket-server` checking them offline and cancelling them online (reported in
//! Authentication-Results), `ticket refund` of a wanted message restoring the sender's balance,
//! and the attacks: a ticket lifted into another message or relabelled for another recipient,
//! a second receiver cancelling it, a refund by a stranger or twice.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{pennyblack, pipe};
use crate::ticketd::Ticketd;

const MESSAGE: &[u8] = b"From: alice@example.org\r\n\
To: bob@example.net\r\n\
Cc: carol@example.net\r\n\
Subject: tickets\r\n\
Date: Sat, 05 Dec 2026 12:00:00 +0000\r\n\
Message-ID: <tickets-1@example.org>\r\n\
\r\n\
Paid for with tickets.\r\n";

struct World {
    d: Ticketd,
    dir: PathBuf,
}

impl World {
    fn new(dir: &Path) -> World {
        let d = Ticketd::start(dir, "30d");
        let tokens = [
            ("alice", d.account("alice", "sender")),
            ("mx1", d.receiver("mx1", &["example.net"])),
            ("mx2", d.receiver("mx2", &["example.com"])),
        ];
        for (name, token) in tokens {
            std::fs::write(dir.join(format!("{name}.token")), token).unwrap();
        }
        World {
            d,
            dir: dir.to_owned(),
        }
    }

    fn token(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.token"))
    }

    fn wallet(&self) -> PathBuf {
        self.dir.join("wallet")
    }

    /// `pennyblack ticket ARGS... --ticket-server URL --ticket-token-file NAME.token`.
    fn ticket(&self, as_: &str, args: &[&str], input: &[u8]) -> Output {
        let mut c = pennyblack();
        c.arg("ticket")
            .args(args)
            .args(["--ticket-server", &self.d.url, "--ticket-token-file"])
            .arg(self.token(as_));
        pipe(c, input)
    }

    fn stamp(&self, msg: &[u8], extra: &[&str]) -> Output {
        let mut c = pennyblack();
        c.args(["stamp", "--bits", "8", "--wallet"])
            .arg(self.wallet())
            .args(extra);
        pipe(c, msg)
    }

    /// `check` for `rcpt` as receiver `as_`: (exit code, Authentication-Results fields).
    fn check(&self, as_: &str, rcpt: &str, msg: &[u8]) -> (i32, String) {
        self.check_with(as_, rcpt, msg, &["--no-spent"])
    }

    fn check_with(&self, as_: &str, rcpt: &str, msg: &[u8], extra: &[&str]) -> (i32, String) {
        let mut c = pennyblack();
        c.args(["check", "--bits", "8", "--verdict-only"])
            .args(extra)
            .args(["--rcpt", rcpt, "--ticket-server", &self.d.url])
            .arg("--ticket-token-file")
            .arg(self.token(as_));
        let out = pipe(c, msg);
        (
            out.status.code().unwrap(),
            unfolded(&out.stdout) + &String::from_utf8_lossy(&out.stderr),
        )
    }

    fn sender_balance(&self) -> u64 {
        let out = self.ticket("alice", &["balance", "--json"], b"");
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["balance"].as_u64().unwrap()
    }

    fn wallet_holds(&self) -> u64 {
        let mut c = pennyblack();
        c.args(["ticket", "balance", "--json", "--wallet"])
            .arg(self.wallet())
            .args(["--ticket-server", &self.d.url, "--ticket-token-file"])
            .arg(self.token("alice"));
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["wallet"]["tickets"].as_u64().unwrap()
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// The message with its header fields unfolded (still a valid message: no line is long).
fn unfolded(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
}

fn ticket_fields(msg: &[u8]) -> Vec<String> {
    unfolded(msg)
        .lines()
        .filter(|l| l.starts_with("X-Postage-Ticket:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn tickets_are_bought_attached_cancelled_and_refunded() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::new(tmp.path());
    let wallet = w.wallet();
    let wallet_arg = wallet.to_str().unwrap();

    // Buying with work: three stamps minted for alice@ISSUER at the price.
    let out = w.ticket("alice", &["buy", "3", "--wallet", wallet_arg], b"");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("bought 3 ticket(s)"), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(&wallet).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(w.wallet_holds(), 3);
    // Topping up to 3 buys nothing.
    let out = w.ticket(
        "alice",
        &["buy", "3", "--top-up", "--wallet", wallet_arg],
        b"",
    );
    assert!(text(&out).contains("bought 0 ticket(s)"), "{}", text(&out));
    // A receiver's token cannot buy.
    let out = w.ticket("mx1", &["buy", "1", "--wallet", wallet_arg], b"");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(w.wallet_holds(), 3);

    // Stamping: To and Cc get tickets; the Bcc recipient a stamp with a hidden resource.
    let out = w.stamp(MESSAGE, &["--rcpt", "dave@example.net"]);
    assert!(out.status.success(), "{}", text(&out));
    let stamped = unfolded(&out.stdout).into_bytes();
    let fields = ticket_fields(&stamped);
    assert_eq!(fields.len(), 2, "{}", String::from_utf8_lossy(&stamped));
    assert!(fields.iter().any(|f| f.contains("rcpt=bob@example.net;")));
    assert!(fields.iter().any(|f| f.contains("rcpt=carol@example.net;")));
    let hashcash: Vec<_> = String::from_utf8_lossy(&stamped)
        .lines()
        .filter(|l| l.starts_with("X-Hashcash:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(hashcash.len(), 1, "{hashcash:?}");
    assert!(!hashcash[0].contains("dave"), "{hashcash:?}");
    assert_eq!(w.wallet_holds(), 1);

    // The receiver checks and cancels: pass, and a retry of the same check passes again.
    for _ in 0..2 {
        let (code, ar) = w.check("mx1", "bob@example.net", &stamped);
        assert_eq!(code, 0, "{ar}");
        assert!(ar.contains("x-postage-ticket=pass"), "{ar}");
        assert!(ar.contains("smtp.rcpt=bob@example.net"), "{ar}");
        assert!(ar.contains("header.iss=tickets.example.org"), "{ar}");
    }
    // With a spent store the receiver records the ticket as the message is accepted: the
    // service repeats the cancel (same recipient, same message), but a second delivery of the
    // message is a replay.
    let spent = tmp.path().join("spent.redb");
    let spent_args = ["--spent", spent.to_str().unwrap()];
    let (code, ar) = w.check_with("mx1", "bob@example.net", &stamped, &spent_args);
    assert_eq!(code, 0, "{ar}");
    let (code, ar) = w.check_with("mx1", "bob@example.net", &stamped, &spent_args);
    assert_eq!(code, 1, "{ar}");
    assert!(ar.contains("x-postage-ticket=fail (a replay"), "{ar}");
    // Another receiver (example.com's) cannot cancel bob's ticket: not its domain.
    let (code, ar) = w.check("mx2", "bob@example.net", &stamped);
    assert_eq!(code, 1, "{ar}");
    assert!(ar.contains("x-postage-ticket=fail"), "{ar}");
    assert!(ar.contains("domain"), "{ar}");

    // Lifted into another message (another body): refused offline, never cancelled.
    let lifted = String::from_utf8_lossy(&stamped).replace("Paid for with tickets.", "Buy now!");
    let (code, ar) = w.check("mx1", "carol@example.net", lifted.as_bytes());
    assert_eq!(code, 1, "{ar}");
    assert!(ar.contains("bound to another message"), "{ar}");
    // Bob's ticket relabelled for carol (her own removed): the service refuses the proof.
    let bob_field = fields.iter().find(|f| f.contains("rcpt=bob@")).unwrap();
    let carol_field = fields.iter().find(|f| f.contains("rcpt=carol@")).unwrap();
    let relabelled = String::from_utf8_lossy(&stamped)
        .replace(&format!("{carol_field}\r\n"), "")
        .replace(
            bob_field.as_str(),
            &bob_field.replace("rcpt=bob@example.net", "rcpt=carol@example.net"),
        );
    assert_eq!(ticket_fields(relabelled.as_bytes()).len(), 1);
    let (code, ar) = w.check("mx1", "carol@example.net", relabelled.as_bytes());
    assert_eq!(code, 1, "{ar}");
    assert!(ar.contains("x-postage-ticket=fail"), "{ar}");
    assert!(ar.contains("not bound to this recipient"), "{ar}");
    // Carol's own ticket is still good (the refused attempts changed nothing).
    let (code, ar) = w.check("mx1", "carol@example.net", &stamped);
    assert_eq!(code, 0, "{ar}");

    // "This was wanted": the receiver that cancelled bob's ticket refunds it, once.
    let before = w.sender_balance();
    let out = w.ticket("mx2", &["refund", "--rcpt", "bob@example.net"], &stamped);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stranger's refund: {}",
        text(&out)
    );
    let out = w.ticket("mx1", &["refund", "--rcpt", "bob@example.net"], &stamped);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("refunded"), "{}", text(&out));
    assert_eq!(w.sender_balance(), before + 1);
    let out = w.ticket("mx1", &["refund", "--rcpt", "bob@example.net"], &stamped);
    assert_eq!(out.status.code(), Some(1), "twice: {}", text(&out));
    assert_eq!(w.sender_balance(), before + 1);
    // The refunded credit buys a ticket without work.
    let out = w.ticket(
        "alice",
        &["buy", "1", "--from-balance", "--wallet", wallet_arg],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.sender_balance(), before);
    assert_eq!(w.wallet_holds(), 2);

    // A dry wallet: the recipients without a ticket get stamps, said on standard error.
    let msg3 = String::from_utf8_lossy(MESSAGE)
        .replace("tickets-1@", "tickets-3@")
        .replace(
            "Cc: carol@example.net\r\n",
            "Cc: carol@example.net, frank@example.net\r\n",
        );
    let out = w.stamp(msg3.as_bytes(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held 2 of the 3 ticket(s) wanted"),
        "{}",
        text(&out)
    );
    assert_eq!(ticket_fields(&out.stdout).len(), 2);
    assert_eq!(w.wallet_holds(), 0);
}

/// A check whose ticket service is down fails clearly (exit 3) rather than passing or failing
/// the message; a damaged or world-readable wallet is refused and stamping takes nothing.
#[test]
fn a_missing_service_or_a_bad_wallet_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = tmp.path().join("t.token");
    std::fs::write(&token, "x").unwrap();
    let mut c = pennyblack();
    c.args([
        "check",
        "--bits",
        "8",
        "--no-spent",
        "--rcpt",
        "bob@example.net",
    ])
    .args(["--ticket-server", &format!("http://127.0.0.1:{port}")])
    .arg("--ticket-token-file")
    .arg(&token);
    let out = pipe(c, MESSAGE);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("--ticket-server"), "{}", text(&out));

    let wallet = tmp.path().join("wallet");
    std::fs::write(&wallet, "").unwrap();
    std::fs::set_permissions(&wallet, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "8", "--wallet"]).arg(&wallet);
    let out = pipe(c, MESSAGE);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
}

/// `ticket buy --top-up --every` runs in the background and keeps the wallet filled: what
/// stamping takes is bought again, and SIGINT stops it cleanly.
#[test]
fn a_background_buyer_keeps_the_wallet_topped_up() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::new(tmp.path());
    let buyer = pennyblack()
        .args([
            "ticket", "buy", "2", "--top-up", "--every", "300ms", "--wallet",
        ])
        .arg(w.wallet())
        .args(["--ticket-server", &w.d.url, "--ticket-token-file"])
        .arg(w.token("alice"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |n: u64| {
        let start = std::time::Instant::now();
        while w.wallet_holds() != n {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "the wallet never held {n}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for(2);
    let out = w.stamp(MESSAGE, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ticket_fields(&unfolded(&out.stdout).into_bytes()).len(), 2);
    // Taken, then bought again in the background.
    wait_for(2);
    let pid = buyer.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = buyer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    // One line per purchase, none for the rounds that had nothing to buy.
    assert_eq!(said.matches("bought 2 ticket(s)").count(), 2, "{said}");
    assert!(!said.contains("bought 0"), "{said}");
}
