//! Argon2id stamps through the `pennyblack` binary: minting with --memory/--passes/--lanes,
//! receivers' cost flags (--min-value, --min-memory, --max-memory, --max-parts, --max-work) in
//! `verify` and `check`, usage errors, and a 4 GiB stamp refused in a process that could not
//! even allocate it.

use std::process::{Command, Output};

use crate::support::{pennyblack, pipe};

/// The stamps' date, and the clock of every check (a day later).
const DATE: &str = "261127";
const NOW: &str = "2026-11-28T00:00:00Z";

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = pennyblack();
    cmd.args(args);
    pipe(cmd, stdin)
}

fn code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {}", err(o)))
}
fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .replace("\r\n\t", " ")
        .replace("\n\t", " ")
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One Argon2id stamp from `pennyblack mint -a argon2id ARGS` for Bob, dated [`DATE`].
fn mint(args: &[&str]) -> String {
    let o = run(
        &[
            &["mint", "-a", "argon2id", "--date", DATE],
            args,
            &["bob@example.org"],
        ]
        .concat(),
        b"",
    );
    assert_eq!(code(&o), 0, "{args:?}: {}", err(&o));
    out(&o).trim().to_owned()
}

/// 64 KiB, two passes, two lanes, four parts of 3 bits: worth 5, estimated 912 us to check
/// (4 x (20 us + 2 lanes x 40 us + 64 KiB x 2 passes x 1 us)).
fn small_stamp() -> String {
    let s = mint(&[
        "--memory", "64KiB", "--passes", "2", "--lanes", "2", "-b", "5", "-p", "4",
    ]);
    assert!(
        s.starts_with(&format!("2:argon2id-m64-t2-p2:3:4:{DATE}:bob@example.org:")),
        "{s}"
    );
    s
}

/// `mint -a argon2id` makes stamps that `verify` takes by their own family's minimum: exit 0
/// when fully checked, 2 without a spent store, 1 with the reason when the minimum, the memory
/// floor (1 MiB by default), the parts or the work budget refuse it. The default parameters
/// (1 MiB, one pass, one lane) pass the default bounds.
#[test]
fn mint_argon2id_then_verify_by_its_own_minimum() {
    let s = small_stamp();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spent.redb");
    let verify = |extra: &[&str]| {
        let o = run(
            &[
                &["verify", "-r", "bob@example.org", "--now", NOW],
                extra,
                &[s.as_str()],
            ]
            .concat(),
            b"",
        );
        (code(&o), out(&o))
    };
    let (c, o) = verify(&[
        "--spent",
        db.to_str().unwrap(),
        "--min-value",
        "argon2id=5",
        "--min-memory",
        "64KiB",
    ]);
    assert_eq!(c, 0, "{o}");
    assert!(
        o.starts_with("valid (5.00 bits): 2:argon2id-m64-t2-p2:"),
        "{o}"
    );
    for (extra, exit, says) in [
        (
            &["argon2id=5", "64KiB"][..],
            2,
            "valid (5.00 bits; not checked: spent)",
        ),
        (&["argon2id=6", "64KiB"], 1, "insufficient work"),
        (
            &["argon2id=5", "1MiB"],
            1,
            "memory (KiB) 64 is outside the policy's minimum 1024",
        ),
        (
            &["argon2id=5", "64KiB", "--max-memory", "32KiB"],
            1,
            "memory (KiB) 64 is outside the policy's maximum 32",
        ),
        (
            &["argon2id=5", "64KiB", "--max-parts", "2"],
            1,
            "parts 4 is outside the policy's maximum 2",
        ),
        (
            &["argon2id=5", "64KiB", "--max-work", "911us"],
            1,
            "over the verification budget: this stamp would cost about 912 us",
        ),
        (
            &["argon2id=5", "64KiB", "--max-work", "912us"],
            2,
            "valid (5.00 bits;",
        ),
    ] {
        let args = [
            &[
                "--no-spent",
                "--min-value",
                extra[0],
                "--min-memory",
                extra[1],
            ][..],
            &extra[2..],
        ]
        .concat();
        let (c, o) = verify(&args);
        assert_eq!(c, exit, "{args:?}: {o}");
        assert!(o.contains(says), "{args:?}: {o}");
    }
    // Without --min-memory the floor is 1 MiB.
    let (c, o) = verify(&["--no-spent", "--min-value", "argon2id=5"]);
    assert_eq!(c, 1, "{o}");
    assert!(o.contains("outside the policy's minimum 1024"), "{o}");
    // The default parameters.
    let d = mint(&["-b", "3", "-p", "1"]);
    assert!(
        d.starts_with(&format!("2:argon2id-m1024-t1-p1:3:1:{DATE}:")),
        "{d}"
    );
    let o = run(
        &[
            "verify",
            "--no-spent",
            "--min-value",
            "argon2id=3",
            "-r",
            "bob@example.org",
            "--now",
            NOW,
            &d,
        ],
        b"",
    );
    assert_eq!(code(&o), 2, "{}", out(&o));
    assert!(out(&o).starts_with("valid (3.00 bits;"), "{}", out(&o));
}

/// `verify -b 20` sets a minimum for the hash families only: an Argon2id stamp, genuine as it
/// is, is refused (exit 1) as an algorithm the policy does not accept, and the output says so.
#[test]
fn verify_with_bits_only_does_not_accept_argon2id() {
    let s = small_stamp();
    let o = run(
        &[
            "verify",
            "--no-spent",
            "-b",
            "20",
            "--min-memory",
            "64KiB",
            "-r",
            "bob@example.org",
            "--now",
            NOW,
            &s,
        ],
        b"",
    );
    assert_eq!(code(&o), 1, "{}", out(&o));
    assert!(
        out(&o).contains("algorithm argon2id is not accepted"),
        "{}",
        out(&o)
    );
}

/// Argon2id flags out of place or out of range, and bad --min-value and size arguments, are
/// usage errors: exit 3, nothing on standard output, a message on standard error.
#[test]
fn argon2id_flags_misused_are_usage_errors() {
    for (args, says) in [
        (
            &["mint", "-a", "sha256", "--memory", "1MiB", "x"][..],
            "--memory, --passes and --lanes apply to --alg argon2id only",
        ),
        (
            &["mint", "-a", "sha1", "--passes", "2", "x"],
            "apply to --alg argon2id only",
        ),
        (
            &["mint", "--lanes", "2", "x"],
            "apply to --alg argon2id only",
        ),
        (
            &[
                "mint", "-a", "argon2id", "--memory", "15KiB", "--lanes", "2", "x",
            ],
            "at least 8 KiB per lane",
        ),
        (
            &["mint", "-a", "argon2id", "--lanes", "0", "x"],
            "--lanes 1-255",
        ),
        (
            &["mint", "-a", "argon2id", "--passes", "1000", "x"],
            "--passes 1-999",
        ),
        (
            &["mint", "-a", "argon2id", "--memory", "5GiB", "x"],
            "at most 4 GiB",
        ),
        (
            &["mint", "-a", "argon2id", "--memory", "1XB", "x"],
            "unknown unit",
        ),
        (&["verify", "--min-value", "nosuch=3", "x"], "nosuch"),
        (&["verify", "--min-value", "argon2id", "x"], "ALG=VALUE"),
        (
            &["verify", "--min-value", "argon2id=263", "x"],
            "not a value in bits",
        ),
        (&["verify", "--max-memory", "lots", "x"], "lots"),
        (&["check", "--min-value", "md5=3"], "md5"),
    ] {
        let o = run(args, b"");
        assert_eq!(code(&o), 3, "{args:?}: {}", err(&o));
        assert!(out(&o).is_empty(), "{args:?}: {}", out(&o));
        assert!(err(&o).contains(says), "{args:?}: {}", err(&o));
    }
}

/// `check` on a message without DKIM signatures that carries an Argon2id stamp for Bob
/// reports x-hashcash by the policy: pass with Argon2id's own minimum met (exit 0); fail with
/// the reason when the value is short, when only --bits is given (not accepted), below the
/// memory floor or over the work budget (exit 1); neutral without any minimum (exit 2).
#[test]
fn check_reports_an_argon2id_stamp_per_the_policy() {
    let s = small_stamp();
    let msg = format!(
        "X-Hashcash: {s}\r\nFrom: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHi\r\n"
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, (extra, exit, says)) in [
        (
            &["--min-value", "argon2id=5", "--min-memory", "64KiB"][..],
            0,
            "x-hashcash=pass",
        ),
        (
            &["--min-value", "argon2id=6", "--min-memory", "64KiB"],
            1,
            "x-hashcash=fail (insufficient work",
        ),
        (
            &["--bits", "8", "--min-memory", "64KiB"],
            1,
            "x-hashcash=fail (algorithm argon2id is not accepted",
        ),
        (
            &["--min-value", "argon2id=5"],
            1,
            "64 is outside the policy's minimum 1024",
        ),
        (
            &[
                "--min-value",
                "argon2id=5",
                "--min-memory",
                "64KiB",
                "--max-work",
                "100us",
            ],
            1,
            "x-hashcash=fail (over the verification budget",
        ),
        (&["--min-memory", "64KiB"], 2, "x-hashcash=neutral"),
    ]
    .into_iter()
    .enumerate()
    {
        let db = dir.path().join(format!("{i}.redb"));
        let o = run(
            &[
                &[
                    "check",
                    "--verdict-only",
                    "--keys",
                    "/dev/null",
                    "--rcpt",
                    "bob@example.org",
                    "--now",
                    NOW,
                    "--spent",
                    db.to_str().unwrap(),
                ],
                extra,
            ]
            .concat(),
            msg.as_bytes(),
        );
        assert_eq!(code(&o), exit, "{extra:?}: {}{}", out(&o), err(&o));
        assert!(out(&o).contains(says), "{extra:?}: {}", out(&o));
        assert!(out(&o).contains("dkim=none"), "{extra:?}: {}", out(&o));
    }
}

/// `pennyblack ARGS` in an address space of at most 2 GiB (`ulimit -v`): an Argon2id
/// evaluation of 4 GiB cannot allocate its memory there and aborts the process.
fn in_2_gib(args: &[&str]) -> Output {
    Command::new("sh")
        .args([
            "-c",
            "ulimit -v 2097152 && exec \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_pennyblack"),
        ])
        .args(args)
        .env_remove("PENNYBLACK_SPENT")
        .output()
        .unwrap()
}

/// A stamp naming 4 GiB is refused by the default memory bound before any evaluation: in a
/// process limited to 2 GiB of address space, `verify` answers (exit 1, the bound named)
/// instead of failing to allocate. The control shows the limit would catch an evaluation: with
/// the bound and the budget raised, the same process tries to evaluate and is aborted.
#[test]
fn a_4_gib_stamp_is_refused_in_a_process_that_could_not_allocate_it() {
    let stamp =
        format!("2:argon2id-m4194304-t1-p1:8:1:{DATE}:bob@example.org::AAAAAAAAAAAAAAAA:C0");
    let base = [
        "verify",
        "--no-spent",
        "--min-value",
        "argon2id=8",
        "-r",
        "bob@example.org",
        "--now",
        NOW,
    ];
    let o = in_2_gib(&[&base[..], &[stamp.as_str()]].concat());
    assert_eq!(code(&o), 1, "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("memory (KiB) 4194304 is outside the policy's maximum 16384"),
        "{}",
        out(&o)
    );
    let raised = [
        "--max-memory",
        "4GiB",
        "--max-work",
        "1h",
        "--max-message-work",
        "1h",
        stamp.as_str(),
    ];
    let o = in_2_gib(&[&base[..], &raised[..]].concat());
    assert_eq!(o.status.code(), None, "not aborted: {}{}", out(&o), err(&o));
    assert!(err(&o).contains("memory allocation"), "{}", err(&o));
}
