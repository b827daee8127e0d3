//! The RFC 7208 SPF test suite (`rfc7208-tests.yml`, openspf.org release 2014.04, shipped in
//! the pyspf 2.0.14 sdist on PyPI; `.ci/run` fetches it and names it in
//! `$PENNYBLACK_SPF_SUITE`) against `pennyblack spf`. Every scenario's zone is served by a real
//! DNS server on loopback (`tests/peers/spf_suite_dns.py`, built on dnslib, one port per
//! scenario), which also runs pyspf on the same zones and writes a manifest of every test with
//! the suite's answers and pyspf's. Missing peers fail the test, they never skip it.
//!
//! Three checks, every failing case listed (not just the first):
//! 1. our result is one the suite allows, for the identity it names (helo when MAIL FROM is
//!    empty);
//! 2. where the suite allows several results, ours is pyspf's, except the entries of
//!    [`DIFFERS_FROM_PYSPF`], each with its reason;
//! 3. (separate, so it can be relaxed on its own) our explanation is the suite's where it gives
//!    one: "DEFAULT" there means no exp= text (`"explanation": null`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{peer, pennyblack};

/// SHA-256 of `test/rfc7208-tests.yml` in the pyspf 2.0.14 sdist (the same pin as `.ci/run`).
const SUITE_SHA256: &str = "901f561a6e2b1c1590a40a61b1ac7601226fd7045a7aae591a4d25421358d6f9";

/// `--dns-timeout` for every check: the suite's TIMEOUT names never answer.
const DNS_TIMEOUT: &str = "1";

/// Checks run at once.
const PARALLEL: usize = 4;

/// Tests (by name: unique in the suite) where the suite allows several results and ours may
/// differ from pyspf's, with the reason. An entry whose test agrees with pyspf fails the test
/// too, so that none outlives its reason.
const DIFFERS_FROM_PYSPF: &[(&str, &str)] = &[(
    "multispf1",
    "two identical v=spf1 TXT records: a permerror by RFC 7208 4.5 (ours); dnspython merges \
     identical records into one answer, so pyspf sees one record and says fail",
)];

/// Tests whose explanation may differ from the suite's in letter case only, with the reason.
const EXPLANATION_CASE_DIFFERS: &[(&str, &str)] = &[(
    "v-macro-ip6",
    "the suite wants the %{ir} nibbles of CAFE:BABE::1 in upper case, as pyspf keeps the case \
     of the address it was given; RFC 7208 7.4's own example of %{ir} is lower case, as ours",
)];

/// The suite file: `$PENNYBLACK_SPF_SUITE`, else where `.ci/run` puts it.
fn suite() -> PathBuf {
    let path = std::env::var_os("PENNYBLACK_SPF_SUITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/spf-suite/rfc7208-tests.yml")
        });
    assert!(
        path.is_file(),
        "the SPF suite test needs rfc7208-tests.yml from the pyspf sdist at {} (or \
         $PENNYBLACK_SPF_SUITE); run `bash .ci/run`, which fetches it",
        path.display()
    );
    path
}

/// Python with dnslib, pyspf, dnspython and PyYAML: the `.venv` that `.ci/run` makes, or
/// `$PENNYBLACK_PYTHON`.
fn python() -> Command {
    let python = std::env::var_os("PENNYBLACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import dnslib, spf, dns.resolver, yaml"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the SPF suite test needs dnslib, pyspf, dnspython and PyYAML in {} (run `bash .ci/run`, \
         which installs them)",
        python.display()
    );
    Command::new(python)
}

/// The suite's DNS servers, killed when dropped, and the manifest they wrote.
struct Servers {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    manifest: Value,
    _dir: tempfile::TempDir,
}

impl Servers {
    fn start() -> Servers {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.json");
        let mut child = python()
            .arg(peer("spf_suite_dns.py"))
            .arg(suite())
            .arg(&manifest)
            .args(["--timeout", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut servers = Servers {
            child,
            stderr: Some(stderr),
            manifest: Value::Null,
            _dir: dir,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        if !line.starts_with("ready") {
            let _ = servers.child.kill();
            let _ = servers.child.wait();
            let err = servers.stderr.take().unwrap().join().unwrap_or_default();
            panic!("spf_suite_dns.py did not get ready (printed {line:?}): {err}");
        }
        eprintln!("spf_suite_dns.py: {}", line.trim());
        servers.manifest =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).expect("manifest.json");
        servers
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test of the suite, as the manifest gives it.
struct Case<'a> {
    t: &'a Value,
}

impl Case<'_> {
    fn s(&self, field: &str) -> &str {
        self.t[field].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.s("name")
    }
    fn expected(&self) -> Vec<&str> {
        self.t["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }
    fn pyspf(&self) -> &str {
        self.t["pyspf"]["result"].as_str().unwrap_or("?")
    }
    fn describe(&self, ours: &Ours) -> String {
        format!(
            "{} / {} (spec {}): ours {} {:?} identity {}, expected {:?} explanation {:?}, pyspf {} \
             {:?}; client {} helo {:?} mail from {:?} port {}",
            self.s("scenario"),
            self.name(),
            self.s("spec"),
            ours.result,
            ours.explanation,
            ours.identity,
            self.expected(),
            self.t["explanation"].as_str(),
            self.pyspf(),
            self.t["pyspf"]["explanation"].as_str().unwrap_or_default(),
            self.s("host"),
            self.s("helo"),
            self.s("mailfrom"),
            self.t["port"],
        )
    }
}

/// What `pennyblack spf --json` said.
struct Ours {
    result: String,
    identity: String,
    explanation: Option<String>,
}

fn check(case: &Case) -> Ours {
    let mut cmd = pennyblack();
    // `--flag=value`: some helo and sender values of the suite would read as options
    cmd.arg("spf")
        .arg(format!("--client-ip={}", case.s("host")))
        .arg(format!("--helo={}", case.s("helo")));
    if !case.s("mailfrom").is_empty() {
        cmd.arg(format!("--mail-from={}", case.s("mailfrom")));
    }
    if let Some(r) = case.t["receiver"].as_str() {
        cmd.arg(format!("--receiver={r}"));
    }
    cmd.arg(format!("--dns-server=127.0.0.1:{}", case.t["port"]))
        .arg(format!("--dns-timeout={DNS_TIMEOUT}"))
        .arg("--json");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    match line.and_then(|l| serde_json::from_str::<Value>(l).ok()) {
        Some(v) if v["result"].is_string() => Ours {
            result: v["result"].as_str().unwrap().to_owned(),
            identity: v["identity"].as_str().unwrap_or("?").to_owned(),
            explanation: v["explanation"].as_str().map(str::to_owned),
        },
        _ => Ours {
            result: format!(
                "no JSON result (exit {:?}: {} {})",
                out.status.code(),
                stdout.split_whitespace().collect::<Vec<_>>().join(" "),
                String::from_utf8_lossy(&out.stderr)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            identity: "?".into(),
            explanation: None,
        },
    }
}

#[test]
#[ignore = "needs the RFC 7208 suite (pyspf sdist), dnslib, pyspf and dnspython (.venv): run `bash .ci/run`, which fetches and installs them"]
fn rfc7208_suite_through_real_dns() {
    let started = Instant::now();
    let servers = Servers::start();
    let m = &servers.manifest;
    assert_eq!(
        m["suite_sha256"].as_str(),
        Some(SUITE_SHA256),
        "not the pinned rfc7208-tests.yml (pyspf 2.0.14): {}",
        m["suite"]
    );
    let cases: Vec<Case> = m["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Case { t })
        .collect();
    assert!(!cases.is_empty(), "the manifest lists no test");

    // every check, PARALLEL at a time
    let next = AtomicUsize::new(0);
    let mut ours: Vec<Option<Ours>> = (0..cases.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= cases.len() {
                            return done;
                        }
                        done.push((i, check(&cases[i])));
                    }
                })
            })
            .collect();
        for w in workers {
            for (i, o) in w.join().unwrap() {
                ours[i] = Some(o);
            }
        }
    });
    let ours: Vec<Ours> = ours.into_iter().map(Option::unwrap).collect();

    let allow: BTreeSet<&str> = DIFFERS_FROM_PYSPF.iter().map(|(n, _)| *n).collect();
    let mut wrong_result = Vec::new();
    let mut unlike_pyspf = Vec::new();
    let mut wrong_explanation = Vec::new();
    let mut stale_allowance = Vec::new();
    for (case, o) in cases.iter().zip(&ours) {
        let expected = case.expected();
        let identity = if case.s("mailfrom").is_empty() {
            "helo"
        } else {
            "mailfrom"
        };
        if !expected.contains(&o.result.as_str()) || o.identity != identity {
            wrong_result.push(case.describe(o));
        }
        if expected.len() > 1 {
            let same = o.result == case.pyspf();
            if !same && !allow.contains(case.name()) {
                unlike_pyspf.push(case.describe(o));
            }
            if same && allow.contains(case.name()) {
                stale_allowance.push(case.describe(o));
            }
        }
        if let Some(want) = case.t["explanation"].as_str() {
            let fine = match want {
                "DEFAULT" => o.explanation.is_none(),
                text if EXPLANATION_CASE_DIFFERS
                    .iter()
                    .any(|(n, _)| *n == case.name()) =>
                {
                    o.explanation
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(text))
                }
                text => o.explanation.as_deref() == Some(text),
            };
            if !fine {
                wrong_explanation.push(case.describe(o));
            }
        }
    }
    for name in &allow {
        assert!(
            cases
                .iter()
                .any(|c| c.name() == *name && c.expected().len() > 1),
            "DIFFERS_FROM_PYSPF names {name}, which is no test with several allowed results"
        );
    }
    let report = |title: &str, list: &[String]| {
        if !list.is_empty() {
            eprintln!("\n{title}: {}", list.len());
            for l in list {
                eprintln!("  {l}");
            }
        }
    };
    report("results the suite does not allow", &wrong_result);
    report(
        "results unlike pyspf's where the suite allows several (and not in DIFFERS_FROM_PYSPF)",
        &unlike_pyspf,
    );
    report(
        "DIFFERS_FROM_PYSPF entries that agree with pyspf now (remove them)",
        &stale_allowance,
    );
    report("explanations unlike the suite's", &wrong_explanation);
    eprintln!(
        "\n{} tests of {} scenarios in {:.1} s: {} results wrong, {} unlike pyspf, {} explanations wrong",
        cases.len(),
        m["scenarios"],
        started.elapsed().as_secs_f64(),
        wrong_result.len(),
        unlike_pyspf.len() + stale_allowance.len(),
        wrong_explanation.len()
    );
    assert!(
        wrong_result.is_empty() && unlike_pyspf.is_empty() && stale_allowance.is_empty(),
        "SPF results: see the list above"
    );
    // Explanations (exp=): a separate assertion, so it can be relaxed alone.
    assert!(
        wrong_explanation.is_empty(),
        "SPF explanations: see the list above"
    );
}
