//! Helpers shared by the integration tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use time::{Date, Month, PrimitiveDateTime, Time};

/// `YYMMDD[hhmm[ss]]` (UTC, 20YY) as Unix seconds.
pub fn utc(digits: &str) -> i64 {
    let p = |i: usize| -> u8 { digits.get(i..i + 2).map_or(0, |s| s.parse().unwrap()) };
    let date = Date::from_calendar_date(
        2000 + i32::from(p(0)),
        Month::try_from(p(2).max(1)).unwrap(),
        p(4).max(1),
    )
    .unwrap();
    PrimitiveDateTime::new(date, Time::from_hms(p(6), p(8), p(10)).unwrap())
        .assume_utc()
        .unix_timestamp()
}

/// The `pennyblack` binary built for these tests.
#[cfg(feature = "cli")]
pub fn pennyblack() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pennyblack"));
    c.env_remove("PENNYBLACK_SPENT");
    c.env_remove("PENNYBLACK_REDIS_PASSWORD");
    c
}

/// The data folder.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The real `hashcash` 1.22, which the interop tests need. Its absence is a failure, not a skip:
/// `.ci/run` installs it (`apt-get install hashcash`).
pub fn hashcash() -> Command {
    let found = Command::new("hashcash").arg("-V").output();
    match found {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout).contains("1.22")
                || String::from_utf8_lossy(&o.stderr).contains("1.22") =>
        {
            Command::new("hashcash")
        }
        _ => panic!(
            "the interop tests need the real `hashcash` 1.22 on PATH (Debian package `hashcash`); \
             run `bash .ci/run`, which installs it"
        ),
    }
}

/// The first stamp in the hashcash known-answer table that starts with `start`.
pub fn kat_stamp(start: &str) -> String {
    let text = std::fs::read_to_string(data("hashcash-kat.tsv")).unwrap();
    text.lines()
        .map(|l| l.split('\t').next().unwrap())
        .find(|s| s.starts_with(start))
        .unwrap_or_else(|| panic!("no stamp starting with {start:?} in hashcash-kat.tsv"))
        .to_owned()
}

/// Python with dkimpy (and pynacl for Ed25519), from the virtual environment `.ci/run` makes
/// (`.venv`), or `$PENNYBLACK_PYTHON`. Missing is a failure, not a skip.
pub fn dkimpy() -> Command {
    let python = std::env::var_os("PENNYBLACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the DKIM interop tests need dkimpy and pynacl in {} (run `bash .ci/run`, which makes it)",
        python.display()
    );
    Command::new(python)
}

/// Perl with Mail::DKIM and Net::DNS::Resolver::Mock (Debian libmail-dkim-perl,
/// libnet-dns-resolver-mock-perl). Missing is a failure, not a skip.
pub fn mail_dkim() -> Command {
    let ok = Command::new("perl")
        .args([
            "-MMail::DKIM::Verifier",
            "-MMail::DKIM::Signer",
            "-MNet::DNS::Resolver::Mock",
            "-e1",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the DKIM interop tests need Mail::DKIM (run `bash .ci/run`, which installs it)"
    );
    Command::new("perl")
}

/// A peer script in `tests/peers/`.
pub fn peer(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// Runs `cmd` with `input` on its standard input and collects everything it prints.
pub fn pipe(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A child that fails early closes its input; its exit status and stderr say why.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// Starts `n` `pennyblack verify` processes at once on the same `stamp` and spent store
/// (`spent`: a file or a redis:// URL) and returns their exit codes, sorted.
#[cfg(feature = "cli")]
pub fn race_verify(spent: &std::ffi::OsStr, stamp: &str, n: usize) -> Vec<i32> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            pennyblack()
                .args(["verify", "--bits", "4", "-r", "*@example.org", "--spent"])
                .arg(spent)
                .arg(stamp)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    codes.sort();
    codes
}

/// The reference `argon2` command line tool (Debian package `argon2`, phc-winner-argon2), which
/// the live Argon2id interop test needs. Missing is a failure, not a skip: `.ci/run` installs
/// it. It reads at most 127 bytes of password from standard input.
pub fn argon2_cli() -> Command {
    let usage = Command::new("argon2").arg("-h").output();
    let ok = usage.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("-id"));
    assert!(
        ok,
        "the Argon2id interop test needs the `argon2` tool with Argon2id on PATH (Debian package \
         `argon2`); run `bash .ci/run`, which installs it"
    );
    Command::new("argon2")
}

/// Python with argon2-cffi, from the virtual environment `.ci/run` makes (`.venv`), or
/// `$PENNYBLACK_PYTHON`. Missing is a failure, not a skip.
pub fn argon2_cffi() -> Command {
    let python = std::env::var_os("PENNYBLACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "from argon2.low_level import hash_secret_raw, Type"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Argon2id interop test needs argon2-cffi in {} (run `bash .ci/run`, which installs it)",
        python.display()
    );
    Command::new(python)
}
