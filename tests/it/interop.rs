//! Live interop with the real `hashcash` 1.22, both directions, bits 8 to 20. `.ci/run` installs
//! hashcash; without it these tests fail (they never skip).

use pennyblack::{FixedClock, MintRequest, Minter, Policy, StampDate, Verifier};

use crate::support::{hashcash, utc};

fn hashcash_check(args: &[&str], stamp: &str) -> i32 {
    let out = hashcash()
        .args(["-c", "-q"])
        .args(args)
        .arg(stamp)
        .output()
        .expect("run hashcash");
    out.status.code().expect("hashcash exited by signal")
}

#[test]
#[ignore = "needs the real hashcash 1.22: run `bash .ci/run`, or `cargo test -- --include-ignored` with it installed"]
fn hashcash_mints_we_verify() {
    for bits in 8..=20u32 {
        let res = format!("interop{bits}@example.org");
        let out = hashcash()
            .args(["-m", "-q", "-b", &bits.to_string(), &res])
            .output()
            .unwrap();
        assert!(out.status.success());
        let stamp = String::from_utf8(out.stdout).unwrap();
        let v = pennyblack::verify(&stamp, &Policy::new(bits, [&res]));
        assert!(v.is_valid(), "{stamp}: {:?}", v.result());
        assert_eq!(v.value, f64::from(bits));
        // One bit more than it claims is refused.
        let v = pennyblack::verify(&stamp, &Policy::new(bits + 1, [&res]));
        assert!(!v.is_valid());
    }
}

#[test]
#[ignore = "needs the real hashcash 1.22: run `bash .ci/run`, or `cargo test -- --include-ignored` with it installed"]
fn we_mint_hashcash_verifies_and_detects_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hashcash.sdb");
    let db = db.to_str().unwrap();
    let minter = Minter::new();
    for bits in 8..=20u32 {
        let res = format!("interop{bits}@example.org");
        let stamp = minter
            .mint(&MintRequest::hashcash(&res, bits).ext("pb=1;x"))
            .unwrap()
            .to_string();
        let b = bits.to_string();
        assert_eq!(
            hashcash_check(&["-d", "-f", db, "-b", &b, "-r", &res], &stamp),
            0,
            "{stamp}"
        );
        // hashcash's own double-spend database refuses it the second time
        assert_eq!(
            hashcash_check(&["-d", "-f", db, "-b", &b, "-r", &res], &stamp),
            1,
            "{stamp}"
        );
        // and it does not take it for more than it is
        let more = (bits + 1).to_string();
        assert_ne!(hashcash_check(&["-y", "-b", &more, "-r", &res], &stamp), 0);
    }
}

/// Same verdicts for expiry, future dates, resources and bits, on stamps we mint, under one clock
/// (`-t`/`-u` for hashcash, a fixed clock for us), including the 2-, 4- and 8-digit dates that
/// hashcash checks but never mints.
#[test]
#[ignore = "needs the real hashcash 1.22: run `bash .ci/run`, or `cargo test -- --include-ignored` with it installed"]
fn same_verdicts_on_our_stamps() {
    let cases = [
        // (stamp date, now, bits claimed, bits required, pattern)
        ("250101", "250115000000", 10, 10, "a@example.org"), // fresh
        ("250101", "250130000000", 10, 10, "a@example.org"), // inside grace
        ("250101", "250131000000", 10, 10, "a@example.org"), // expired: 28d + 2d
        ("250101", "241229000000", 10, 10, "a@example.org"), // future beyond 2d grace
        ("250101", "241230000000", 10, 10, "a@example.org"), // future within grace
        ("250101", "250102000000", 10, 11, "a@example.org"), // insufficient
        ("250101", "250102000000", 10, 10, "b@example.org"), // wrong resource
        ("250101", "250102000000", 10, 10, "*@example.org"), // wildcard
        ("250101", "250102000000", 10, 10, "*@*.example.org"), // label count differs
        ("25", "250102000000", 9, 9, "a@example.org"),
        ("2501", "250102000000", 9, 9, "a@example.org"),
        ("25010112", "250101130000", 9, 9, "a@example.org"),
        ("2501011230", "250101123100", 9, 9, "a@example.org"),
        ("250101123045", "250101123100", 9, 9, "a@example.org"),
        ("24", "250101000000", 9, 9, "a@example.org"), // expired a year ago
    ];
    let minter = Minter::new();
    for (date, now, claimed, required, pattern) in cases {
        let req =
            MintRequest::hashcash("a@example.org", claimed).date(StampDate::parse(date).unwrap());
        let stamp = minter.mint(&req).unwrap().to_string();
        let ours = Verifier::new(Policy::new(required, [pattern]))
            .with_clock(FixedClock(utc(now)))
            .check(&stamp)
            .unwrap();
        let theirs = hashcash_check(
            &[
                "-y",
                "-u",
                "-t",
                now,
                "-b",
                &required.to_string(),
                "-r",
                pattern,
            ],
            &stamp,
        );
        assert_eq!(
            ours.is_valid(),
            theirs == 0,
            "{stamp} at {now} -b {required} -r {pattern}: hashcash exit {theirs}, ours {:?}",
            ours.result()
        );
    }
}

/// hashcash accepts a ':' in a resource at mint time and so mints a stamp nobody can parse back;
/// we refuse it up front.
#[test]
#[ignore = "needs the real hashcash 1.22: run `bash .ci/run`, or `cargo test -- --include-ignored` with it installed"]
fn colon_in_resource_is_refused_where_hashcash_is_lax() {
    let out = hashcash()
        .args(["-m", "-q", "-b", "8", "a:b"])
        .output()
        .unwrap();
    assert!(out.status.success(), "hashcash mints it");
    let minted = String::from_utf8(out.stdout).unwrap();
    assert!(
        pennyblack::verify(&minted, &Policy::new(8, ["a:b"]))
            .result()
            .is_err()
    );
    let err = pennyblack::mint(&MintRequest::hashcash("a:b", 8)).unwrap_err();
    assert!(matches!(err, pennyblack::MintError::BadResource(_)));
}

/// Version 1 stamps that `stamp` binds to their message (`bind=` in the extension), in clear and
/// in hidden (Bcc) form, are still hashcash stamps: `hashcash -c` accepts each for its resource.
#[cfg(feature = "cli")]
#[test]
#[ignore = "needs the real hashcash 1.22: run `bash .ci/run`, or `cargo test -- --include-ignored` with it installed"]
fn bound_and_hidden_stamps_pass_hashcash() {
    let msg = "From: a@example.org\r\nTo: bob@example.org\r\n\r\nHello\r\n";
    let out = crate::support::pipe(
        {
            let mut c = crate::support::pennyblack();
            c.args(["stamp", "--alg", "sha1", "--bits", "12"])
                .args(["--rcpt", "hidden@example.net"]);
            c
        },
        msg.as_bytes(),
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap().replace("\r\n\t", "");
    let stamps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("X-Hashcash: "))
        .collect();
    assert_eq!(stamps.len(), 2, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hashcash.sdb");
    let db = db.to_str().unwrap();
    for stamp in stamps {
        let resource = stamp.split(':').nth(3).unwrap();
        assert!(
            stamp.split(':').nth(4).unwrap().starts_with("bind="),
            "{stamp}"
        );
        assert!(
            resource == "bob@example.org" || resource.starts_with("bcc."),
            "{stamp}"
        );
        let check = |s: &str| hashcash_check(&["-d", "-f", db, "-b", "12", "-r", resource], s);
        assert_eq!(check(stamp), 0, "{stamp}");
        // And the binding is part of what hashcash hashes: a changed digest is refused.
        let tampered = stamp.replacen("bind=", "bind=x", 1);
        assert_eq!(check(&tampered), 1, "{tampered}");
    }
}
