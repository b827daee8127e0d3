//! SPF and DMARC (`check --client-ip --helo --mail-from`) against a real DNS server on loopback
//! (dnsmasq, `zone.rs`) publishing SPF records, DKIM keys made with `pennyblack keygen` and
//! `_dmarc` records; and a cross-check of every case with an independent implementation,
//! authheaders (Python: pyspf for SPF, dkimpy for DKIM, its own DMARC), through the same DNS
//! server (`tests/peers/authheaders_check.py`). Where the two differ, the case says who is
//! right by the RFC, and why. `.ci/run` installs dnsmasq and authheaders; without them these
//! tests fail, they never skip.
//!
//! The zone (client 192.0.2.10 is authorised by every SPF record, 198.51.100.66 by none):
//!
//! | name                          | record                                            |
//! |-------------------------------|---------------------------------------------------|
//! | `_dmarc.example.org`          | `p=reject; sp=quarantine; np=reject`              |
//! | `_dmarc.strict.example.org`   | `p=reject; adkim=s`                               |
//! | `_dmarc.example.com`          | `p=quarantine`                                    |
//! | `_dmarc.strict.example.com`   | `p=reject; aspf=s`                                |
//! | `_dmarc.mid.example.net`      | `p=quarantine` (and none for example.net)         |
//! | `_dmarc.multi.example.org`    | two records, `p=reject` and `p=reject; adkim=s`   |
//! | `_dmarc.tempfail.example.org` | never answered                                    |
//! | SPF `ip4:192.0.2.10 -all`     | example.org, example.com, bounces.example.com, strict.example.com, mx.example.com, example.net |
//! | DKIM `s1`                     | example.org, example.net (Ed25519)                |
//! | A                             | sub.example.org (exists; nx.example.org does not) |

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::{dkimpy, peer, pennyblack, pipe};
use crate::zone::{Records, Zone};

/// Authorised by every SPF record of the zone.
const GOOD: &str = "192.0.2.10";
/// Authorised by none.
const BAD: &str = "198.51.100.66";

/// Who signs a message.
#[derive(Clone, Copy, Debug)]
enum Sign {
    Unsigned,
    /// `d=example.org` (pennyblack stamp).
    Org,
    /// `d=example.net` (pennyblack stamp): a third party for every From domain but example.net.
    Net,
    /// `d=example.org` by pennyblack, then `d=example.net` by dkimpy above it.
    NetAboveOrg,
}

/// The keys, the zone and the messages of these tests.
struct World {
    dir: tempfile::TempDir,
    zone: Zone,
}

fn keygen(dir: &std::path::Path, selector: &str, domain: &str, name: &str) -> String {
    let out = pennyblack()
        .args(["keygen", "--selector", selector, "--domain", domain])
        .args(["--alg", "ed25519", "--out"])
        .arg(dir.join(format!("{name}.pem")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let org = keygen(dir.path(), "s1", "example.org", "org");
        let net = keygen(dir.path(), "s1", "example.net", "net");
        // A key published only in a keys file, never in the DNS.
        let file_only = keygen(dir.path(), "f1", "example.org", "file");
        std::fs::write(dir.path().join("file-keys.txt"), file_only).unwrap();
        let mut r = Records::default();
        r.keys(&org).keys(&net);
        for d in [
            "example.org",
            "example.com",
            "bounces.example.com",
            "strict.example.com",
            "mx.example.com",
            "example.net",
        ] {
            r.txt(d, "v=spf1 ip4:192.0.2.10 -all");
        }
        r.txt(
            "_dmarc.example.org",
            "v=DMARC1; p=reject; sp=quarantine; np=reject",
        )
        .txt("_dmarc.strict.example.org", "v=DMARC1; p=reject; adkim=s")
        .txt("_dmarc.example.com", "v=DMARC1; p=quarantine")
        .txt("_dmarc.strict.example.com", "v=DMARC1; p=reject; aspf=s")
        .txt("_dmarc.mid.example.net", "v=DMARC1; p=quarantine")
        .txt("_dmarc.multi.example.org", "v=DMARC1; p=reject")
        .txt("_dmarc.multi.example.org", "v=DMARC1; p=reject; adkim=s")
        .a("sub.example.org", "192.0.2.20")
        .silent("_dmarc.tempfail.example.org");
        let zone = Zone::start(&r);
        World { dir, zone }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// A message from `from` (the From field's value), stamped for Bob and signed as `sign`
    /// says; `extra_from`, when given, is a second From field put on top after signing.
    fn message(&self, id: &str, from: &str, extra_from: Option<&str>, sign: Sign) -> Vec<u8> {
        let plain = format!(
            "From: {from}\r\nTo: Bob <bob@example.net>\r\nSubject: dmarc {id}\r\n\
             Date: Fri, 27 Nov 2026 07:00:00 +0000\r\nMessage-ID: <{id}@test.example>\r\n\r\n\
             Hello Bob.\r\n"
        );
        let stamp = |msg: &[u8], signer: Option<(&str, &str)>| {
            let mut c = pennyblack();
            c.args(["stamp", "--bits", "8"]);
            if let Some((domain, key)) = signer {
                c.args([
                    "--domain",
                    domain,
                    "--sign",
                    &format!("s1:{}", self.path(key)),
                ]);
            }
            let out = pipe(c, msg);
            assert!(
                out.status.success(),
                "{id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let signed = match sign {
            Sign::Unsigned => stamp(plain.as_bytes(), None),
            Sign::Org => stamp(plain.as_bytes(), Some(("example.org", "org.pem"))),
            Sign::Net => stamp(plain.as_bytes(), Some(("example.net", "net.pem"))),
            Sign::NetAboveOrg => {
                let org = stamp(plain.as_bytes(), Some(("example.org", "org.pem")));
                let mut c = dkimpy();
                c.arg(peer("dkimpy_sign.py")).args([
                    "s1",
                    "example.net",
                    &self.path("net.pem"),
                    "ed25519-sha256",
                    "from:to:subject:date:message-id",
                ]);
                let out = pipe(c, &org);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        };
        match extra_from {
            Some(f) => [format!("From: {f}\r\n").as_bytes(), &signed].concat(),
            None => signed,
        }
    }

    /// `pennyblack check` of `msg` as received from `ip` (HELO `helo`, MAIL FROM `mail_from`),
    /// everything looked up in the zone: the JSON (`--json`), or the Authentication-Results
    /// fields unfolded (`--verdict-only`).
    fn check(&self, msg: &[u8], ip: &str, helo: &str, mail_from: &str, json: bool) -> String {
        let mut c = check_command(json);
        c.args(["--dns-server", &self.zone.server(), "--dns-timeout", "1"])
            .args(["--client-ip", ip, "--helo", helo, "--mail-from", mail_from]);
        let out = pipe(c, msg);
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "check: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .replace("\r\n\t", " ")
            .replace("\n\t", " ")
            .replace("\r\n ", " ")
            .replace("\n ", " ")
    }

    fn check_json(&self, msg: &[u8], ip: &str, helo: &str, mail_from: &str) -> Value {
        let text = self.check(msg, ip, helo, mail_from, true);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// authheaders' verdict on the same message and session, through the same zone.
    fn authheaders(&self, msg: &[u8], ip: &str, helo: &str, mail_from: &str) -> Value {
        let mut c = authheaders();
        c.arg(peer("authheaders_check.py"))
            .args([&self.zone.server(), ip, helo, mail_from]);
        let out = pipe(c, msg);
        assert!(
            out.status.success(),
            "authheaders: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Python with authheaders, pyspf and dnspython, from the virtual environment `.ci/run` makes
/// (`.venv`), or `$PENNYBLACK_PYTHON`. Missing is a failure, not a skip.
/// `pennyblack check` of a message to bob@example.net at 8 bits without a spent store, printing
/// the JSON or only the fields; the caller adds where keys and records come from.
fn check_command(json: bool) -> Command {
    let mut c = pennyblack();
    c.args([
        "check",
        "--bits",
        "8",
        "--no-spent",
        "--rcpt",
        "bob@example.net",
    ])
    .arg(if json { "--json" } else { "--verdict-only" });
    c
}

/// A short message from alice@example.org, stamped and signed with `selector` and `pem`.
fn signed_by(selector: &str, pem: &str) -> Vec<u8> {
    let mut c = pennyblack();
    c.args(["stamp", "--bits", "8", "--domain", "example.org", "--sign"])
        .arg(format!("{selector}:{pem}"));
    pipe(
        c,
        b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nHi\r\n",
    )
    .stdout
}

fn authheaders() -> Command {
    let python = std::env::var_os("PENNYBLACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import authheaders, spf, dkim, nacl, dns.resolver"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the DMARC cross-check needs authheaders, pyspf, dkimpy and pynacl in {} (run `bash .ci/run`, which makes it)",
        python.display()
    );
    Command::new(python)
}

/// One message, one SMTP session, and what both implementations must say of it.
struct Case {
    name: &'static str,
    /// The From field's value.
    from: &'static str,
    /// A second From field, put on top after signing.
    extra_from: Option<&'static str>,
    sign: Sign,
    ip: &'static str,
    helo: &'static str,
    /// Empty: the null reverse-path.
    mail_from: &'static str,
    /// Our SPF result and the domain it is for.
    spf: (&'static str, &'static str),
    /// Our DMARC result, author domain and policy.
    dmarc: (&'static str, &'static str, &'static str),
    /// Whether SPF and DKIM are aligned (in our JSON).
    aligned: (bool, bool),
    /// authheaders' DMARC result and policy (its RFC 7489 mode); its SPF result is ours.
    peer: (&'static str, &'static str),
    /// Why authheaders differs, and who is right; empty when it agrees.
    why: &'static str,
}

fn cases() -> Vec<Case> {
    let c = |name, from, sign, ip, mail_from| Case {
        name,
        from,
        extra_from: None,
        sign,
        ip,
        helo: "mx.example.net",
        mail_from,
        spf: ("", ""),
        dmarc: ("", "", ""),
        aligned: (false, false),
        peer: ("", ""),
        why: "",
    };
    vec![
        Case {
            spf: ("none", "sub.example.org"),
            dmarc: ("pass", "sub.example.org", "quarantine"),
            aligned: (false, true),
            peer: ("pass", "quarantine"),
            // The organisational domain's record (example.org's) applies to its subdomain, with
            // its sp=: found by the tree walk.
            ..c(
                "relaxed DKIM: d=example.org for From sub.example.org",
                "Alice <alice@sub.example.org>",
                Sign::Org,
                BAD,
                "alice@sub.example.org",
            )
        },
        Case {
            spf: ("none", "strict.example.org"),
            dmarc: ("fail", "strict.example.org", "reject"),
            aligned: (false, false),
            peer: ("fail", "reject"),
            ..c(
                "strict DKIM (adkim=s) refuses d=example.org for strict.example.org",
                "alice@strict.example.org",
                Sign::Org,
                BAD,
                "alice@strict.example.org",
            )
        },
        Case {
            spf: ("pass", "bounces.example.com"),
            dmarc: ("pass", "example.com", "quarantine"),
            aligned: (true, false),
            peer: ("pass", "quarantine"),
            ..c(
                "relaxed SPF: MAIL FROM bounces.example.com for From example.com",
                "alice@example.com",
                Sign::Unsigned,
                GOOD,
                "bounce@bounces.example.com",
            )
        },
        Case {
            spf: ("pass", "bounces.example.com"),
            dmarc: ("fail", "strict.example.com", "reject"),
            aligned: (false, false),
            peer: ("fail", "reject"),
            ..c(
                "strict SPF (aspf=s) refuses bounces.example.com for strict.example.com",
                "alice@strict.example.com",
                Sign::Unsigned,
                GOOD,
                "bounce@bounces.example.com",
            )
        },
        Case {
            spf: ("pass", "strict.example.com"),
            dmarc: ("pass", "strict.example.com", "reject"),
            aligned: (true, false),
            peer: ("pass", "reject"),
            ..c(
                "strict SPF (aspf=s) passes the From domain itself",
                "alice@strict.example.com",
                Sign::Unsigned,
                GOOD,
                "bounce@strict.example.com",
            )
        },
        Case {
            spf: ("pass", "example.net"),
            dmarc: ("fail", "example.org", "reject"),
            aligned: (false, false),
            peer: ("fail", "reject"),
            ..c(
                "a third party's signature and SPF pass, unaligned: fail under p=reject",
                "alice@example.org",
                Sign::Net,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            spf: ("pass", "example.net"),
            dmarc: ("fail", "example.com", "quarantine"),
            aligned: (false, false),
            peer: ("fail", "quarantine"),
            ..c(
                "neither aligned under p=quarantine",
                "alice@example.com",
                Sign::Net,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            spf: ("fail", "example.org"),
            dmarc: ("fail", "sub.example.org", "quarantine"),
            aligned: (false, false),
            peer: ("fail", "quarantine"),
            ..c(
                "sp= for an existing subdomain (SPF fail, a third party's signature)",
                "alice@sub.example.org",
                Sign::Net,
                BAD,
                "alice@example.org",
            )
        },
        Case {
            spf: ("pass", "example.net"),
            dmarc: ("fail", "nx.example.org", "reject"),
            aligned: (false, false),
            peer: ("fail", "reject"),
            ..c(
                "np= for a subdomain that does not exist",
                "alice@nx.example.org",
                Sign::Net,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            spf: ("pass", "example.net"),
            dmarc: ("none", "example.net", "none"),
            aligned: (false, false),
            peer: ("none", "none"),
            ..c(
                "no DMARC record: none",
                "alice@example.net",
                Sign::Net,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            spf: ("pass", "example.net"),
            dmarc: ("fail", "deep.mid.example.net", "quarantine"),
            aligned: (false, false),
            peer: ("none", "none"),
            why: "RFC 9989 4.10.1: the tree walk finds _dmarc.mid.example.net above \
                  deep.mid.example.net, and (4.10.2) makes mid.example.net the organisational \
                  domain, to which the SPF domain example.net is not aligned: fail, under the \
                  record's p=quarantine. authheaders' default RFC 7489 mode looks only at the \
                  From domain and its Public Suffix List organisational domain (example.net), \
                  which have no record: none. (Its DMARCbis mode finds the record but aligns by \
                  the Public Suffix List, example.net = example.net: pass; see the test.)",
            ..c(
                "the tree walk finds mid.example.net's record for deep.mid.example.net",
                "alice@deep.mid.example.net",
                Sign::Unsigned,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            extra_from: Some("CEO <ceo@example.org>"),
            spf: ("pass", "example.net"),
            // Two From fields (RFC 5322 allows one): each author domain is judged and the worst
            // verdict kept, example.org's fail under p=reject (RFC 7489 6.6.1 allows that; so
            // does authheaders). Never none, which is what an attacker adding his own From
            // domain wants. (It was a permerror, which no policy acts on: review 18.)
            dmarc: ("fail", "example.org", "reject"),
            aligned: (false, false),
            peer: ("fail", "reject"),
            ..c(
                "two From fields: never none",
                "mallory@example.net",
                Sign::Net,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            spf: ("pass", "example.net"),
            // One From field naming two author domains: as with two From fields, the worst
            // verdict (fail under example.org's reject), as authheaders says too.
            dmarc: ("fail", "example.org", "reject"),
            aligned: (false, false),
            peer: ("fail", "reject"),
            ..c(
                "one From field naming two domains: never none",
                "ceo@example.org, mallory@example.net",
                Sign::Net,
                GOOD,
                "bounce@example.net",
            )
        },
        Case {
            helo: "mx.example.com",
            spf: ("pass", "mx.example.com"),
            dmarc: ("pass", "example.com", "quarantine"),
            aligned: (true, false),
            peer: ("pass", "quarantine"),
            // RFC 7208 2.4: the MAIL FROM identity of the null path is postmaster@HELO, and RFC
            // 7489 4.1 aligns that. (authheaders alone crashes on a null path: the peer script
            // hands it postmaster@HELO, see there.)
            ..c(
                "the null reverse-path: SPF of the HELO identity aligns",
                "alice@example.com",
                Sign::Unsigned,
                GOOD,
                "",
            )
        },
        Case {
            spf: ("pass", "example.org"),
            dmarc: ("none", "multi.example.org", "none"),
            aligned: (false, false),
            peer: ("pass", "reject"),
            why: "two DMARC records at _dmarc.multi.example.org: authheaders treats them as no \
                  record and uses the organisational domain's (example.org, p=reject), where \
                  d=example.org aligns. RFC 7489 6.6.3: the organisational domain is asked only \
                  when the author domain's set is empty (step 3); a set of several ends policy \
                  discovery with DMARC not applied (step 4): none is right.",
            // mail-auth alone took one of the two records (found by the tests of issue 18,
            // mended in sender.rs).
            ..c(
                "two DMARC records at one name: none applies",
                "alice@multi.example.org",
                Sign::Org,
                GOOD,
                "bounce@example.org",
            )
        },
        Case {
            spf: ("pass", "example.org"),
            dmarc: ("temperror", "tempfail.example.org", "none"),
            aligned: (false, false),
            peer: ("temperror", "none"),
            ..c(
                "the DMARC record's server does not answer: temperror",
                "alice@tempfail.example.org",
                Sign::Org,
                GOOD,
                "bounce@example.org",
            )
        },
        Case {
            spf: ("fail", "example.org"),
            dmarc: ("pass", "example.org", "reject"),
            aligned: (false, true),
            peer: ("fail", "reject"),
            why: "two valid signatures, the unaligned d=example.net above the aligned \
                  d=example.org: authheaders verifies only the first DKIM-Signature (check_dkim \
                  calls dkimpy's verify() for index 0), so it sees no aligned pass. RFC 7489 \
                  4.2 (and RFC 9989): one aligned pass of any authentication passes, and RFC \
                  6376 allows several signatures: pass is right.",
            ..c(
                "an unaligned signature above an aligned one: pass",
                "alice@example.org",
                Sign::NetAboveOrg,
                BAD,
                "alice@example.org",
            )
        },
    ]
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: run `bash .ci/run`, which installs them"]
fn spf_and_dmarc_alignment_and_policy_through_a_real_dns_server() {
    let w = World::new();
    for (i, case) in cases().iter().enumerate() {
        let name = case.name;
        let msg = w.message(&format!("m{i}"), case.from, case.extra_from, case.sign);
        let v = w.check_json(&msg, case.ip, case.helo, case.mail_from);
        let (spf, dmarc) = (&v["spf"], &v["dmarc"]);
        assert_eq!(s(&spf["result"]), case.spf.0, "{name}: {v}");
        assert_eq!(s(&spf["domain"]), case.spf.1, "{name}: {v}");
        let identity = if case.mail_from.is_empty() {
            "helo"
        } else {
            "mailfrom"
        };
        assert_eq!(s(&spf["identity"]), identity, "{name}: {v}");
        assert_eq!(s(&dmarc["result"]), case.dmarc.0, "{name}: {v}");
        assert_eq!(s(&dmarc["from_domain"]), case.dmarc.1, "{name}: {v}");
        assert_eq!(s(&dmarc["policy"]), case.dmarc.2, "{name}: {v}");
        assert_eq!(dmarc["spf_aligned"], case.aligned.0, "{name}: {v}");
        assert_eq!(dmarc["dkim_aligned"], case.aligned.1, "{name}: {v}");
        // No single author domain is flagged (the milter's --dmarc-enforce refuses it).
        let ambiguous = case.dmarc.0 == "permerror" && case.dmarc.1.is_empty();
        assert_eq!(dmarc["ambiguous_author"], ambiguous, "{name}: {v}");
        // An error says why; other results need no reason.
        if case.dmarc.0.ends_with("error") {
            assert!(dmarc["reason"].is_string(), "{name}: {v}");
        }
        // The signatures themselves pass (alignment is DMARC's business, not DKIM's), except
        // under a second From field, which fails every signature.
        let dkim = v["dkim"].as_array().unwrap();
        match (case.sign, case.extra_from) {
            (Sign::Unsigned, _) => assert!(dkim.is_empty(), "{name}: {v}"),
            (_, Some(_)) => assert!(dkim.iter().all(|d| d["result"] == "fail"), "{name}: {v}"),
            _ => assert!(dkim.iter().all(|d| d["result"] == "pass"), "{name}: {v}"),
        }

        // A stamp bound to a signature says whether that signature is aligned with From.
        let bound = |st: &&Value| st["bound_to"].is_string();
        for st in v["stamps"].as_array().unwrap().iter().filter(bound) {
            assert_eq!(st["aligned"], case.aligned.1, "{name}: {st}");
        }
        let signer = match (case.sign, case.extra_from) {
            (Sign::Unsigned, _) | (_, Some(_)) => None,
            (Sign::Net, _) => Some("example.net"),
            (Sign::Org | Sign::NetAboveOrg, _) => Some("example.org"),
        };

        // The same verdicts in the Authentication-Results field that holds dkim=.
        let ar = w.check(&msg, case.ip, case.helo, case.mail_from, false);
        let field = ar
            .lines()
            .find(|l| l.contains("dkim="))
            .unwrap_or_else(|| panic!("{name}: no dkim= field: {ar}"));
        let spf_prop = if case.mail_from.is_empty() {
            format!("spf={} smtp.helo={}", case.spf.0, case.helo)
        } else {
            format!("spf={} smtp.mailfrom={}", case.spf.0, case.mail_from)
        };
        assert!(field.contains(&spf_prop), "{name}: {spf_prop}: {field}");
        assert!(
            field.contains(&format!("dmarc={}", case.dmarc.0)),
            "{name}: {field}"
        );
        if !case.dmarc.1.is_empty() {
            assert!(
                field.contains(&format!("header.from={}", case.dmarc.1)),
                "{name}: {field}"
            );
        }
        if let Some(d) = signer {
            let hashcash = ar
                .lines()
                .find(|l| l.contains("x-hashcash="))
                .unwrap_or_else(|| panic!("{name}: no x-hashcash= field: {ar}"));
            let not = if case.aligned.1 { "" } else { "not " };
            let said = format!("signed by {d}, {not}aligned with From");
            assert!(hashcash.contains(&said), "{name}: {said}: {hashcash}");
        }
        if case.dmarc.0 != "none" && case.dmarc.2 != "none" {
            assert!(
                field.contains(&format!("p={}", case.dmarc.2)),
                "{name}: {field}"
            );
        }
    }
}

/// Without --client-ip there is no SMTP session to judge: no spf or dmarc, in the JSON or the
/// field (and nothing is looked up: the keys come from a file).
#[test]
fn without_a_client_ip_there_is_no_spf_or_dmarc() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keygen(dir.path(), "s1", "example.org", "org");
    let keys_file = dir.path().join("keys.txt");
    std::fs::write(&keys_file, keys).unwrap();
    let msg = signed_by("s1", dir.path().join("org.pem").to_str().unwrap());
    for json in [true, false] {
        let mut c = check_command(json);
        c.arg("--keys").arg(&keys_file);
        let out = pipe(c, &msg);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("pass"), "{text}");
        if json {
            let v: Value = serde_json::from_str(text.trim()).unwrap();
            assert!(v.get("spf").is_none() && v.get("dmarc").is_none(), "{v}");
        } else {
            assert!(!text.contains("spf=") && !text.contains("dmarc="), "{text}");
        }
    }
}

/// A bad --client-ip is a usage error (exit 3), not a verdict.
#[test]
fn a_bad_client_ip_is_refused() {
    let mut c = pennyblack();
    c.args(["check", "--no-spent", "--keys", "/dev/null"])
        .args([
            "--client-ip",
            "not-an-ip",
            "--helo",
            "h.example",
            "--mail-from",
            "",
        ]);
    let out = pipe(c, b"From: a@example.org\r\n\r\nhi\r\n");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// --keys and --dns-server together: the DKIM key from the file (its selector is published
/// nowhere else), SPF and DMARC from the DNS.
#[test]
#[ignore = "needs dnsmasq: run `bash .ci/run`, which installs it"]
fn keys_from_a_file_and_sender_checks_from_the_dns() {
    let w = World::new();
    let msg = signed_by("f1", &w.path("file.pem"));
    let mut c = check_command(true);
    c.args(["--keys", &w.path("file-keys.txt")])
        .args(["--dns-server", &w.zone.server(), "--dns-timeout", "1"])
        .args(["--client-ip", GOOD, "--helo", "mx.example.org"])
        .args(["--mail-from", "alice@example.org"]);
    let out = pipe(c, &msg);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["dkim"][0]["result"], "pass", "{v}");
    assert_eq!(v["spf"]["result"], "pass", "{v}");
    assert_eq!(v["dmarc"]["result"], "pass", "{v}");
    assert_eq!(v["dmarc"]["policy"], "reject", "{v}");
    assert_eq!(v["dmarc"]["dkim_aligned"], true, "{v}");
    assert_eq!(v["dmarc"]["spf_aligned"], true, "{v}");
}

#[test]
#[ignore = "needs dnsmasq, dkimpy and authheaders (.venv): run `bash .ci/run`, which installs them"]
fn spf_and_dmarc_agree_with_authheaders_or_the_difference_is_explained() {
    let w = World::new();
    let mut report = String::new();
    for (i, case) in cases().iter().enumerate() {
        let name = case.name;
        let msg = w.message(&format!("x{i}"), case.from, case.extra_from, case.sign);
        let ours = w.check_json(&msg, case.ip, case.helo, case.mail_from);
        let theirs = w.authheaders(&msg, case.ip, case.helo, case.mail_from);
        let (spf, dmarc, policy) = (
            s(&ours["spf"]["result"]),
            s(&ours["dmarc"]["result"]),
            s(&ours["dmarc"]["policy"]),
        );
        report.push_str(&format!(
            "{name}: ours spf={spf} dmarc={dmarc} p={policy}; authheaders {}\n",
            theirs["header"]
        ));
        // SPF is RFC 7208's to the letter: both agree everywhere.
        assert_eq!(theirs["spf"], spf, "{name}: {theirs}");
        // Ours is what the case says (the other test checks the rest of it)...
        assert_eq!((dmarc, policy), (case.dmarc.0, case.dmarc.2), "{name}");
        // ...and so is authheaders', which differs from ours only where the case says why.
        assert_eq!(
            (s(&theirs["dmarc"]), s(&theirs["policy"])),
            case.peer,
            "{name}: {theirs}"
        );
        let differs = case.peer != (dmarc, policy);
        assert_eq!(
            differs,
            !case.why.is_empty(),
            "{name}: a difference needs its reason, an agreement none"
        );
        if name.starts_with("the tree walk") {
            // authheaders' DMARCbis mode: the record found, the alignment still by the PSL.
            assert_eq!(theirs["dmarc_bis"], "pass", "{name}: {theirs}");
        }
    }
    eprintln!("{report}");
}
