//! The `pennyblack` binary as a user runs it: output, messages and exit codes.

use std::process::Output;

use crate::support::pennyblack;

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = pennyblack();
    cmd.args(args);
    crate::support::pipe(cmd, stdin)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}
fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mint(args: &[&str]) -> String {
    let o = run(&[&["mint"], args].concat(), b"");
    assert_eq!(code(&o), 0, "{}", err(&o));
    out(&o)
}

#[test]
fn mint_prints_one_stamp_per_resource_of_each_version() {
    let s = mint(&["--bits", "10", "a@example.org", "b@example.org"]);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("2:sha256:6:16:") && lines[0].contains(":a@example.org:"),
        "{s}"
    );
    assert!(lines[1].contains(":b@example.org:"));
    assert!(mint(&["--alg", "sha1", "--bits", "10", "a@example.org"]).starts_with("1:10:"));
    assert!(
        mint(&[
            "--alg",
            "blake3",
            "--parts",
            "4",
            "--bits",
            "10",
            "a@example.org"
        ])
        .starts_with("2:blake3:8:4:")
    );
    let h = mint(&[
        "-X",
        "--alg",
        "sha1",
        "-b",
        "8",
        "-x",
        "a=1;b",
        "a@example.org",
    ]);
    assert!(
        h.starts_with("X-Hashcash: 1:8:") && h.contains(":a=1;b:"),
        "{h}"
    );
    assert_eq!(
        mint(&["--alg", "sha1", "-b", "8", "-z", "12", "x"])
            .split(':')
            .nth(2)
            .unwrap()
            .len(),
        12
    );
    assert!(
        mint(&["--alg", "sha1", "-b", "8", "--date", "250101", "x"]).starts_with("1:8:250101:x::")
    );
}

#[test]
fn mint_refuses_bad_input_with_exit_3_and_prints_nothing() {
    for args in [
        &["mint", "a:b"][..],
        &["mint", "bad resource"],
        &["mint", "--bits", "300", "x"],
        &["mint", "--alg", "sha1", "--parts", "2", "x"],
        &["mint", "--parts", "65", "x"],
        &["mint", "--ext", "a b", "x"],
        &["mint", "--date", "251301", "x"],
        &["mint", "--threads", "0", "x"],
        &["mint", "-z", "7", "x"],
        &["mint"],
        &["mint", "--alg", "md5", "x"],
        &["frobnicate"],
        // a later resource is bad: nothing is minted for the good one either
        &["mint", "--bits", "8", "ok@example.org", "a:b"],
    ] {
        let o = run(args, b"");
        assert_eq!(code(&o), 3, "{args:?}: {}", err(&o));
        assert!(out(&o).is_empty(), "{args:?}");
        assert!(!err(&o).is_empty(), "{args:?}");
    }
    let o = run(&["mint", "a:b"], b"");
    assert!(err(&o).contains("':'"), "{}", err(&o));
}

/// Resources from standard input: one stamp per line in the same order, blank lines skipped,
/// small stamps minted many at once; a bad line stops with its line number, after the stamps
/// of the lines before it (in earlier batches) were written.
#[test]
fn mint_reads_resources_from_stdin_in_order() {
    let names: Vec<String> = (0..300).map(|i| format!("user{i}@example.org")).collect();
    let input = format!("{}\n\n", names.join("\n"));
    for args in [
        &["mint", "-b", "6", "-q"][..],
        &["mint", "-b", "6", "-q", "-"],
    ] {
        let o = run(args, input.as_bytes());
        assert_eq!(code(&o), 0, "{}", err(&o));
        let text = out(&o);
        let stamps: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(stamps.len(), names.len());
        for (stamp, name) in stamps.iter().zip(&names) {
            let s: pennyblack::Stamp = stamp.parse().unwrap();
            assert_eq!(s.resource(), name);
        }
        // Every one verifies, once.
        let v = run(
            &[
                "verify",
                "--min-bits",
                "6",
                "-r",
                "*@example.org",
                "--no-spent",
            ],
            out(&o).as_bytes(),
        );
        assert_eq!(out(&v).matches("valid").count(), names.len(), "{}", out(&v));
    }
    let o = run(&["mint", "-b", "4", "-q"], b"ok@example.org\nbad:one\n");
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("line 2"), "{}", err(&o));
    assert!(out(&o).is_empty(), "one batch: checked before any work");
    let o = run(&["mint", "-q", "x@example.org", "-"], b"");
    assert_eq!(code(&o), 3, "`-` mixed with resources");
    // Only ASCII white space is trimmed; bytes that are not UTF-8 are named by line.
    let o = run(
        &["mint", "-q"],
        "ok@example.org\na@x.org\u{a0}\n".as_bytes(),
    );
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("line 2"), "{}", err(&o));
    let o = run(&["mint", "-q"], b"ok@example.org\n\xff\xfe\n");
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("line 2: not UTF-8"), "{}", err(&o));
    // A grace that could read a two-digit year in two centuries is refused.
    let o = run(&["verify", "--grace", "20000d", "--no-spent", "x"], b"");
    assert_eq!(code(&o), 3, "{}", err(&o));
}

#[test]
fn deadline_exceeded_is_an_error() {
    let o = run(
        &[
            "mint",
            "--alg",
            "sha1",
            "--bits",
            "60",
            "--deadline",
            "200ms",
            "x",
        ],
        b"",
    );
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("did not finish"), "{}", err(&o));
}

#[test]
fn help_teaches_with_examples() {
    for cmd in [&["--help"][..], &["mint", "--help"], &["verify", "--help"]] {
        let o = run(cmd, b"");
        assert_eq!(code(&o), 0);
        assert!(
            out(&o).contains("xample") || out(&o).contains("Exit codes"),
            "{cmd:?}"
        );
    }
    assert!(out(&run(&["verify", "--help"], b"")).contains("Exit status"));
}

#[test]
fn verify_exit_codes_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spent.redb");
    let db = db.to_str().unwrap();
    let s = mint(&["--bits", "10", "bob@example.org"]);
    let s = s.trim();
    let full = [
        "verify",
        "--spent",
        db,
        "--bits",
        "10",
        "-r",
        "bob@example.org",
    ];
    let o = run(&[&full[..], &[s]].concat(), b"");
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert!(
        out(&o).starts_with("valid (10.00 bits): 2:sha256:"),
        "{}",
        out(&o)
    );
    // replay
    let o = run(&[&full[..], &[s]].concat(), b"");
    assert_eq!(code(&o), 1);
    assert!(out(&o).starts_with("invalid (spent"), "{}", out(&o));
    // not fully checked: no bits / no resource / no spent store
    let s2 = mint(&["--bits", "10", "bob@example.org"]);
    for args in [
        &[
            "verify",
            "--no-spent",
            "--bits",
            "10",
            "-r",
            "bob@example.org",
        ][..],
        &["verify", "--no-spent", "-r", "bob@example.org"],
        &["verify", "--no-spent", "--bits", "10"],
    ] {
        let o = run(&[args, &[s2.trim()]].concat(), b"");
        assert_eq!(code(&o), 2, "{args:?} {}", out(&o));
        assert!(out(&o).contains("not checked"));
    }
    // too few bits
    let o = run(
        &[
            "verify",
            "--no-spent",
            "--bits",
            "11",
            "-r",
            "bob@example.org",
            s2.trim(),
        ],
        b"",
    );
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("insufficient work"));
}

#[test]
fn verify_reads_stdin_headers_and_garbage() {
    let a = mint(&["-X", "--alg", "sha1", "-b", "8", "a@example.org"]);
    let b = mint(&["--alg", "blake3", "-b", "8", "b@example.org"]);
    let mut input = format!("{a}\n  x-hashcash:   {b}\n\n").into_bytes();
    let o = run(
        &["verify", "--no-spent", "-b", "8", "-r", "*@example.org"],
        &input,
    );
    assert_eq!(code(&o), 2, "{}", out(&o));
    assert_eq!(out(&o).lines().count(), 2);
    input.extend_from_slice(b"1:8:\xff\xfe:x::a:b\n");
    let o = run(
        &["verify", "--no-spent", "-b", "8", "-r", "*@example.org"],
        &input,
    );
    assert_eq!(code(&o), 1);
    let last = out(&o).lines().last().unwrap().to_owned();
    assert!(last.starts_with("invalid (malformed"), "{last}");
    // nothing to verify is a usage error
    let o = run(&["verify", "--no-spent"], b"\n\n");
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("no stamps"));
}

#[test]
fn verify_json_and_injected_clock() {
    let s = mint(&[
        "--alg",
        "sha1",
        "-b",
        "8",
        "--date",
        "250101",
        "a@example.org",
    ]);
    let o = run(
        &[
            "verify",
            "--json",
            "--no-spent",
            "-b",
            "8",
            "-r",
            "a@example.org",
            "--now",
            "2025-03-01T00:00:00Z",
            s.trim(),
        ],
        b"",
    );
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(v["reason"], "expired");
    assert_eq!(v["valid"], false);
    assert_eq!(v["version"], 1);
    let o = run(
        &[
            "verify",
            "--json",
            "--no-spent",
            "-b",
            "8",
            "-r",
            "a@example.org",
            "--now",
            "1735776000",
            s.trim(),
        ],
        b"",
    );
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["value_bits"], 8.0);
    assert_eq!(v["unchecked"], serde_json::json!(["spent"]));
    // a v0 stamp from the hashcash table verifies from the command line too
    let v0 = crate::support::kat_stamp("0:250101:v0@example.org:");
    let o = run(
        &[
            "verify",
            "--no-spent",
            "-b",
            "8",
            "-r",
            "v0@example.org",
            "--now",
            "1735776000",
            &v0,
        ],
        b"",
    );
    assert_eq!(code(&o), 2, "{}", out(&o));
}

#[test]
fn verify_refuses_bad_options_and_stores_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, b"not a database").unwrap();
    for args in [
        &["verify", "--validity", "soon", "x"][..],
        &["verify", "--now", "yesterday", "x"],
        &[
            "verify",
            "--spent",
            garbage.to_str().unwrap(),
            "1:8:250101:x::a:b",
        ],
        &["verify", "--spent", "/x", "--no-spent", "1:8:250101:x::a:b"],
    ] {
        let o = run(args, b"");
        assert_eq!(code(&o), 3, "{args:?}: {}", err(&o));
        assert!(out(&o).is_empty());
    }
}

#[test]
fn bench_measures_every_available_backend() {
    let o = run(
        &[
            "bench",
            "--seconds",
            "0.05",
            "--no-reference",
            "--json",
            "--threads",
            "2",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    let rates = v["rates"].as_array().unwrap();
    for alg in pennyblack::Algorithm::ALL {
        for b in pennyblack::Backend::available(alg) {
            let r = rates
                .iter()
                .find(|r| r["alg"] == alg.name() && r["backend"] == b.name() && r["threads"] == 1)
                .unwrap_or_else(|| panic!("no row for {alg} {b}"));
            assert!(r["per_second"].as_f64().unwrap() > 0.0);
        }
        assert!(
            rates
                .iter()
                .any(|r| r["alg"] == alg.name() && r["threads"] == 2)
        );
    }
    assert!(v["verify_v1_per_second"].as_f64().unwrap() > 0.0);
    // Argon2id at its default parameters is in the default run: no instruction bound, 1 MiB a
    // thread, and a SHA-256 equivalent of its attempt.
    let argon = |t: u64| {
        rates
            .iter()
            .find(|r| r["alg"] == "argon2id-m1024-t1-p1" && r["threads"] == t)
            .unwrap_or_else(|| panic!("no argon2id row on {t} threads"))
    };
    for t in [1, 2] {
        assert!(argon(t)["per_second"].as_f64().unwrap() > 0.0);
        assert!(argon(t)["of_bound"].is_null() && argon(t)["bound_per_second"].is_null());
        assert_eq!(argon(t)["memory_per_thread"], 1 << 20);
    }
    assert_eq!(rates[0]["memory_per_thread"], 0);
    let cost = &v["attempt_cost"][0];
    assert_eq!(cost["alg"], "argon2id-m1024-t1-p1");
    assert!(cost["sha256_attempts"].as_f64().unwrap() > 1.0);
    // Verification: one part and the default stamp of each algorithm, the parallel verifier
    // for Argon2id's, each beside the cost model.
    let verify = v["verify"].as_array().unwrap();
    let row = |alg: &str, parts: u64, threads: u64| {
        verify
            .iter()
            .find(|r| r["alg"] == alg && r["parts"] == parts && r["threads"] == threads)
            .unwrap_or_else(|| panic!("no verify row {alg} {parts} {threads}"))
    };
    for (alg, parts, threads) in [
        ("sha1", 1, 1),
        ("sha256", 16, 1),
        ("blake3", 16, 1),
        ("argon2id-m1024-t1-p1", 1, 1),
        ("argon2id-m1024-t1-p1", 4, 1),
        ("argon2id-m1024-t1-p1", 4, 2),
    ] {
        let r = row(alg, parts, threads);
        assert!(r["per_stamp_s"].as_f64().unwrap() > 0.0);
        assert!(r["estimated_s"].as_f64().unwrap() > 0.0);
        assert!(r["checks"].as_u64().unwrap() >= 1);
    }
    let o = run(&["bench", "--seconds", "0"], b"");
    assert_eq!(code(&o), 3);
}

/// `bench --alg argon2id` takes the Argon2id parameters (refused for the hashes alone) and
/// prints its own table; `--parts` sets the verified stamp's parts.
#[test]
fn bench_measures_argon2id_with_its_parameters() {
    let o = run(
        &[
            "bench",
            "--alg",
            "argon2id",
            "--memory",
            "64KiB",
            "--passes",
            "2",
            "--parts",
            "3",
            "--seconds",
            "0.05",
            "--no-reference",
            "--threads",
            "2",
            "--json",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    let rates = v["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 2, "{rates:?}");
    for r in rates {
        assert_eq!(r["alg"], "argon2id-m64-t2-p1");
        assert_eq!(r["memory_per_thread"], 64 << 10);
    }
    let parts: Vec<u64> = v["verify"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["parts"].as_u64().unwrap())
        .collect();
    assert_eq!(parts, [1, 3, 3]);
    // No SHA-256 row in this run: no attempt-cost comparison.
    assert_eq!(v["attempt_cost"].as_array().unwrap().len(), 0);
    let o = run(
        &[
            "bench",
            "--alg",
            "argon2id",
            "--memory",
            "64KiB",
            "--seconds",
            "0.05",
            "--no-reference",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains("memory-hard") && text.contains("64 KiB") && !text.contains("M hashes/s"),
        "{text}"
    );
    for bad in [
        &["bench", "--alg", "sha256", "--memory", "1MiB"][..],
        &["bench", "--alg", "argon2id", "--memory", "4KiB"],
        &["bench", "--parts", "65"],
    ] {
        assert_eq!(code(&run(bad, b"")), 3, "{bad:?}");
    }
}

/// `calibrate -a argon2id` picks bits from an attempt rate like it does for hashes, counts the
/// minter's re-evaluations, and reports what the chosen stamp costs its receiver.
#[test]
fn calibrate_argon2id_reports_the_receivers_cost() {
    let o = run(
        &[
            "calibrate",
            "--target",
            "10s",
            "-a",
            "argon2id",
            "--rate",
            "1000",
            "--threads",
            "1",
            "--json",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    // 4 parts of 11 bits and 4 re-evaluations: 8196 attempts, 8.2 s; 12 bits would be 16.4 s.
    assert_eq!(v["alg"], "argon2id-m1024-t1-p1");
    assert_eq!(
        (v["bits"].as_u64(), v["parts"].as_u64()),
        (Some(13), Some(4))
    );
    assert_eq!(v["chosen"]["overhead_attempts"], 4.0);
    let r = &v["receiver"];
    // One evaluation a part: one thread's attempt time, 1 ms at 1000 attempts/s.
    assert_eq!(r["per_part_from"], "rate");
    assert!((r["per_part_s"].as_f64().unwrap() - 1e-3).abs() < 1e-12);
    assert!((r["per_stamp_s"].as_f64().unwrap() - 4e-3).abs() < 1e-12);
    assert!(r["estimated_s"].as_f64().unwrap() > 0.0);
    assert!(r["default_policy_refuses"].is_null());
    // 1 MiB parts: 1.044 ms each in the model, 64 of them fit 100 ms.
    assert_eq!(r["default_policy_max_parts"], 64);
    let o = run(
        &[
            "calibrate",
            "--target",
            "1s",
            "-a",
            "argon2id",
            "--memory",
            "64KiB",
            "--rate",
            "20000",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains("attempts/s") && text.contains("receiver:") && text.contains("--min-memory"),
        "{text}"
    );
    // 8 parts of 16 MiB are over the default budget; 6 (16.4 ms each in the model) fit.
    let o = run(
        &[
            "calibrate",
            "--target",
            "2s",
            "-a",
            "argon2id",
            "--memory",
            "16MiB",
            "--parts",
            "8",
            "--rate",
            "120",
            "--json",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    let r = &v["receiver"];
    let why = r["default_policy_refuses"].as_str().unwrap();
    assert!(why.contains("--max-work"), "{why}");
    assert_eq!(r["default_policy_max_parts"], 6);
    assert_eq!(
        code(&run(
            &[
                "calibrate",
                "--target",
                "1s",
                "--memory",
                "1MiB",
                "--rate",
                "1"
            ],
            b""
        )),
        3
    );
}

#[test]
fn calibrate_picks_bits_from_a_given_rate_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plot.svg");
    let o = run(
        &[
            "calibrate",
            "--target",
            "1s",
            "--rate",
            "1000000",
            "--parts",
            "16",
            "--json",
            "--plot",
            svg.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    // 2^19 hashes at 1 M/s: 0.52 s mean; 2^20 would be 1.05 s
    assert_eq!(v["bits"], 19);
    assert_eq!(v["chosen"]["bits_per_part"], 15);
    let (p99, mean) = (
        v["chosen"]["p99_s"].as_f64().unwrap(),
        v["chosen"]["mean_s"].as_f64().unwrap(),
    );
    assert!((1.5..1.8).contains(&(p99 / mean)), "{p99} {mean}");
    let one = v["one_part"]["p99_s"].as_f64().unwrap() / v["one_part"]["mean_s"].as_f64().unwrap();
    assert!((one - 4.605).abs() < 0.01);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("16 parts of 15 bits"));
    for bad in [
        &["calibrate", "--target", "0s", "--rate", "1"][..],
        &[
            "calibrate",
            "--target",
            "1s",
            "--alg",
            "sha1",
            "--parts",
            "2",
            "--rate",
            "1",
        ],
        &["calibrate", "--target", "1s", "--rate", "-5"],
        &["mint", "--backend", "avx2", "--alg", "sha1", "x"],
    ] {
        assert_eq!(code(&run(bad, b"")), 3, "{bad:?}");
    }
}

/// `--no-spent` wins over PENNYBLACK_SPENT (it used to be refused, naming a flag never typed).
#[test]
fn no_spent_wins_over_the_environment() {
    let stamp = mint(&["--alg", "sha1", "--bits", "8", "bob@example.org"]);
    let mut c = pennyblack();
    c.env("PENNYBLACK_SPENT", "/nonexistent/spent.redb").args([
        "verify",
        "--no-spent",
        "--bits",
        "8",
        "-r",
        "bob@example.org",
        stamp.trim(),
    ]);
    let o = c.output().unwrap();
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(out(&o).contains("not checked: spent"), "{}", out(&o));
}

/// The man page and completions come from the same definitions as --help.
#[test]
fn man_page_and_completions() {
    let o = run(&["man"], b"");
    assert_eq!(code(&o), 0);
    let page = out(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH pennyblack 1"),
        "{page:.200}"
    );
    for sub in ["mint", "verify", "stamp", "check", "spent", "keygen"] {
        assert!(page.contains(&format!("COMMAND {sub}")), "{sub}");
    }
    assert!(
        page.contains("\\-\\-require\\-binding"),
        "flags of subcommands are in it"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell], b"");
        assert_eq!(code(&o), 0, "{shell}");
        assert!(out(&o).contains("verify"), "{shell}");
    }
}

/// hashcash folds long stamp fields: `verify` joins a field's continuation lines, so a folded
/// field given whole verifies, beside bare stamps and unfolded fields.
#[test]
fn verify_joins_folded_stamp_fields() {
    let a = mint(&["--alg", "sha1", "--bits", "8", "bob@example.org"]);
    let b = mint(&["--alg", "sha1", "--bits", "8", "bob@example.org"]);
    let (a, b) = (a.trim(), b.trim());
    let input = format!(
        "X-Hashcash: {}\r\n\t{}\r\n{b}\r\nx-hashcash:{a}\r\n",
        &a[..20],
        &a[20..]
    );
    let o = run(
        &[
            "verify",
            "--no-spent",
            "--bits",
            "8",
            "-r",
            "bob@example.org",
        ],
        input.as_bytes(),
    );
    let text = out(&o);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.starts_with("valid")), "{text}");
    assert_eq!(code(&o), 2, "{text}");
}

/// The systemd units in contrib/ (the milter, and a daily purge timer) pass
/// `systemd-analyze verify`, run with this build's binary in place of /usr/local/bin/pennyblack.
#[test]
#[ignore = "needs systemd-analyze (Debian systemd): run `bash .ci/run`, which installs it"]
fn contrib_systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let contrib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let names = [
        "pennyblack-milter.service",
        "pennyblack-purge.service",
        "pennyblack-purge.timer",
    ];
    for n in names {
        let text = std::fs::read_to_string(contrib.join(n)).unwrap();
        assert!(
            text.contains("/usr/local/bin/pennyblack") || n.ends_with(".timer"),
            "{n}"
        );
        let text = text.replace(
            "/usr/local/bin/pennyblack",
            env!("CARGO_BIN_EXE_pennyblack"),
        );
        std::fs::write(dir.path().join(n), text).unwrap();
    }
    let o = std::process::Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args(["verify", "--man=no"])
        .args(names)
        .output()
        .expect("systemd-analyze (Debian systemd; `bash .ci/run` installs it)");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `stamp --deadline`: a stamp that takes too long is exit 3 and nothing is written.
#[test]
fn stamp_deadline_is_an_error_and_writes_nothing() {
    let o = run(
        &["stamp", "--bits", "60", "--deadline", "300ms"],
        b"From: a@example.org\r\nTo: b@example.org\r\n\r\nhi\r\n",
    );
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(o.stdout.is_empty());
    assert!(err(&o).contains("did not finish within"), "{}", err(&o));
}

/// Ctrl-C (SIGINT) during a mint cancels it cleanly: exit 3, "cancelled", nothing printed on
/// standard output (and the progress line, on a terminal, is cleared first).
#[test]
fn sigint_cancels_a_mint_cleanly() {
    let child = pennyblack()
        .args(["mint", "--bits", "60", "bob@example.org"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(err(&o).contains("cancelled"), "{}", err(&o));
    assert!(o.stdout.is_empty());
}

/// `calibrate --parts 1 --plot` compares one part with 16 (it drew two identical curves), and a
/// measured rate is the median of several samples, their spread reported.
#[test]
fn calibrate_samples_and_plots_one_part_against_many() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p.svg");
    let o = run(
        &[
            "calibrate",
            "--target",
            "2s",
            "--parts",
            "1",
            "--rate",
            "1e8",
            "--plot",
            svg.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.contains("1 part of") && plot.contains("16 parts of"),
        "{plot:.300}"
    );
    let o = run(
        &[
            "calibrate",
            "--target",
            "1s",
            "--seconds",
            "0.5",
            "--alg",
            "sha1",
        ],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        err(&o).contains("samples:") && err(&o).contains("spread"),
        "{}",
        err(&o)
    );
}

/// One vocabulary: the receiving minimum is --min-bits in verify and check (as in the milter),
/// with hashcash's --bits and -b kept; timeouts take durations or bare seconds; -s is --spent
/// only.
#[test]
fn one_flag_vocabulary() {
    let stamp = mint(&["--alg", "sha1", "--bits", "8", "bob@example.org"]);
    for flag in ["--min-bits", "--bits", "-b"] {
        let o = run(
            &[
                "verify",
                "--no-spent",
                flag,
                "8",
                "-r",
                "bob@example.org",
                stamp.trim(),
            ],
            b"",
        );
        assert_eq!(code(&o), 2, "{flag}: {}", err(&o));
    }
    let o = run(&["bench", "-s", "1"], b"");
    assert_eq!(code(&o), 3, "-s is not --seconds");
    for t in ["2", "500ms", "2s"] {
        let o = run(&["check", "--dns-timeout", t, "--help"], b"");
        assert_eq!(code(&o), 0, "{t}");
    }
    let o = run(&["check", "--dns-timeout", "0", "--keys", "/dev/null"], b"");
    assert_eq!(code(&o), 3);
}

/// Without `--features equix` the command line refuses to mint Equi-X stamps and reports the
/// ones it is given as unsupported, naming the build that would take them.
#[cfg(not(feature = "equix"))]
#[test]
fn equix_needs_its_feature() {
    let o = run(
        &["mint", "-a", "equix", "--bits", "4", "bob@example.org"],
        b"",
    );
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(
        err(&o).contains("equix stamps need a build with --features equix"),
        "{}",
        err(&o)
    );
    let stamp = "2:equix:4:4:261127:bob@example.org::oQrybfJppEL/YBZS:\
        AAAAAAAAAALeVUFwijinnxIXOR92hQH2,AAAAAAAAAAUdxIHJI4j81bZBIOuTgvv7,\
        AAAAAAAAAAnBM01O+RXRtjRlO7wmf83a,AAAAAAAAABhZBbwjfg8xeG1b77UbAAq5";
    let o = run(
        &[
            "verify",
            "--no-spent",
            "--now",
            "2026-11-27T12:00:00Z",
            "-r",
            "bob@example.org",
            "--min-value",
            "equix=4",
            stamp,
        ],
        b"",
    );
    assert_eq!(code(&o), 1);
    assert!(
        (out(&o) + &err(&o)).contains("equix stamps need a build with --features equix"),
        "{}{}",
        out(&o),
        err(&o)
    );
}

/// The milter states its requirement in the postage policy syntax (values 1 to 128): a value
/// outside it is refused at start, never stated in refusals no sender's software can read.
#[cfg(feature = "milter")]
#[test]
fn the_milter_refuses_a_requirement_it_could_not_state() {
    let o = run(
        &[
            "milter",
            "--listen",
            "inet:127.0.0.1:0",
            "--reject-below",
            "0",
        ],
        b"",
    );
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(err(&o).contains("not in 1..=128"), "{}", err(&o));
    let o = run(
        &[
            "milter",
            "--listen",
            "inet:127.0.0.1:0",
            "--no-spent",
            "--reject-below",
            "16",
            "--min-value",
            "argon2id=200",
        ],
        b"",
    );
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(err(&o).contains("a value is 1 to 128"), "{}", err(&o));
}
