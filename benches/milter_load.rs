//! Milter load: `pennyblack milter` checking inbound mail (DKIM verification, stamps, the spent
//! store) beside OpenDKIM 2.11 verifying the same DKIM signatures, on the same messages, through
//! one milter-protocol client (the MTA's side, version 6, negotiating as Postfix does).
//!
//! `cargo bench --bench milter_load` (or `contrib/milter-load`, which installs OpenDKIM first).
//! Environment: `PENNYBLACK_LOAD_MESSAGES` (default 5000) messages per run,
//! `PENNYBLACK_LOAD_REPEATS` (default 2) runs of each configuration, `PENNYBLACK_OPENDKIM`
//! (default `opendkim`) the OpenDKIM binary.
//!
//! Every message is distinct (about 4 KB), DKIM-signed (RSA-2048, relaxed/relaxed) and stamped
//! (SHA-256, 8 bits) by the library, as `pennyblack stamp --bits 8 --alg sha256 --domain
//! example.org --sign load:KEY` makes them. Each run starts a fresh filter process (pennyblack
//! with an empty spent store, so every stamp is new to it), sends every message over 1 or 8
//! concurrent connections, one connection per message (Postfix keeps one milter connection per
//! SMTP session), over a Unix socket or TCP loopback, and reports messages per second, the
//! filter process's CPU time per message (utime + stime from /proc) and the latency of each
//! message from connect to the final reply. Every reply is checked (dkim=pass from both,
//! x-hashcash=pass from pennyblack): the benchmark fails on a wrong verdict, never on a time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pennyblack::dkim::{Canon, SignRequest, SigningKey};
use pennyblack::mail::Message;
use pennyblack::postage::stamp_fields;
use pennyblack::{Algorithm, MintRequest, Minter};

const PENNYBLACK: &str = env!("CARGO_BIN_EXE_pennyblack");
const DOMAIN: &str = "example.org";
const SELECTOR: &str = "load";
const AUTHSERV_ID: &str = "mx.test";
const CLIENT_IP: &str = "192.0.2.66";
const FROM: &str = "alice@example.org";
const RCPT: &str = "bob@example.net";

type Res<T> = Result<T, String>;

fn main() {
    if let Err(e) = run() {
        eprintln!("milter_load: {e}");
        std::process::exit(1);
    }
}

fn env_usize(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn run() -> Res<()> {
    let n = env_usize("PENNYBLACK_LOAD_MESSAGES", 5000)?.max(1);
    let repeats = env_usize("PENNYBLACK_LOAD_REPEATS", 2)?.max(1);
    let opendkim = std::env::var("PENNYBLACK_OPENDKIM").unwrap_or_else(|_| "opendkim".into());
    let opendkim_version = Command::new(&opendkim)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .ok_or_else(|| {
            format!(
                "{opendkim} -V failed: OpenDKIM is needed (Debian: apt-get install opendkim, or run contrib/milter-load)"
            )
        })?;
    let tmp = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let dir = tmp.path();

    // The key, made as a user would make it.
    let key_file = dir.join("load.pem");
    let out = Command::new(PENNYBLACK)
        .args([
            "keygen",
            "--alg",
            "rsa",
            "--selector",
            SELECTOR,
            "--domain",
            DOMAIN,
        ])
        .arg("--out")
        .arg(&key_file)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("running {PENNYBLACK} keygen: {e}"))?;
    if !out.status.success() {
        return Err("pennyblack keygen failed".into());
    }
    // `SELECTOR._domainkey.DOMAIN RECORD`: pennyblack's --keys file and OpenDKIM's
    // TestPublicKeys file have the same form.
    let keys_file = dir.join("keys.txt");
    std::fs::write(&keys_file, &out.stdout).map_err(|e| e.to_string())?;
    let key = SigningKey::from_file(&key_file).map_err(|e| format!("the key: {e}"))?;

    // n messages for the runs and one more for the checks before them.
    let t0 = Instant::now();
    let msgs = make_messages(n + 1, &key)?;
    let avg_size = msgs.iter().map(|m| m.size).sum::<usize>() / msgs.len();
    eprintln!(
        "{} messages stamped and signed in {:.1} s (average {avg_size} bytes)",
        msgs.len(),
        t0.elapsed().as_secs_f64()
    );
    let (check_msg, msgs) = msgs.split_last().expect("n + 1 messages");

    let filters = [
        Filter::Pennyblack { spent: true },
        Filter::OpenDkim,
        Filter::Pennyblack { spent: false },
    ];
    let ctx = Ctx {
        dir,
        keys: &keys_file,
        opendkim: &opendkim,
    };

    // Functional checks first, on both transports: the verdicts this benchmark exists for.
    for filter in filters {
        for transport in [Transport::Unix, Transport::Tcp] {
            let proc = ctx.start(filter, transport, "check")?;
            let reply = send_message(&proc.addr, check_msg, "CHECK")
                .map_err(|e| format!("{} over {}: {e}", filter.name(), transport.name()))?;
            let ar = reply.added_named("Authentication-Results");
            if !filter.passes(&reply) {
                return Err(format!(
                    "{} over {} did not pass the check message: {reply:?}\nits log:\n{}",
                    filter.name(),
                    transport.name(),
                    proc.log()
                ));
            }
            eprintln!(
                "check {} over {}: {}",
                filter.name(),
                transport.name(),
                ar.join(" | ").replace(['\n', '\r'], "")
            );
        }
    }

    let tick = clock_ticks();
    let load_before = loadavg();
    let cpu = cpu_model();
    let commit = git_commit();
    let mut rows: Vec<Row> = Vec::new();
    for rep in 0..repeats {
        for transport in [Transport::Unix, Transport::Tcp] {
            for conns in [1usize, 8] {
                // The filters alternate, in the other order on every other repetition.
                let mut order = filters.to_vec();
                if rep % 2 == 1 {
                    order.reverse();
                }
                for filter in order {
                    let proc = ctx.start(filter, transport, &format!("r{rep}"))?;
                    let row = measure(&proc, filter, transport, conns, rep + 1, msgs, tick)?;
                    eprintln!("{}", row.line());
                    rows.push(row);
                }
            }
        }
    }

    println!();
    println!("CPU: {cpu} ({} cores online)", online_cpus());
    println!("commit: {commit}");
    println!("load average (1, 5, 15 min) before the runs: {load_before}");
    println!("OpenDKIM: {opendkim_version}");
    println!(
        "{n} messages a run, average {avg_size} bytes, DKIM rsa-sha256 (2048) relaxed/relaxed, one sha256 stamp of 8 bits; one connection per message"
    );
    println!("latency: connect to the final reply; CPU: the filter process's utime + stime");
    println!();
    println!("{}", Row::header());
    for r in &rows {
        println!("{}", r.line());
    }
    println!();
    println!("by configuration, each run in order (run 1 / run 2 / ...), then the median:");
    println!(
        "{:<22} {:<9} {:>5}  {:<24} {:<24} {:<24} {:<24}",
        "filter", "transport", "conns", "msgs/s", "CPU ms/msg", "p50 ms", "p99 ms"
    );
    for transport in [Transport::Unix, Transport::Tcp] {
        for conns in [1usize, 8] {
            for filter in filters {
                let runs: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.filter == filter && r.transport == transport && r.conns == conns)
                    .collect();
                let med = Row::median(&runs);
                let cell = |f: fn(&Row) -> f64, decimals: usize| {
                    let each: Vec<String> = runs
                        .iter()
                        .map(|r| format!("{:.*}", decimals, f(r)))
                        .collect();
                    format!("{} ({:.*})", each.join(" / "), decimals, f(&med))
                };
                println!(
                    "{:<22} {:<9} {:>5}  {:<24} {:<24} {:<24} {:<24}",
                    filter.name(),
                    transport.name(),
                    conns,
                    cell(|r| r.rate, 0),
                    cell(|r| r.cpu_ms, 2),
                    cell(|r| r.p50_ms, 2),
                    cell(|r| r.p99_ms, 1)
                );
            }
        }
    }
    println!("load average (1, 5, 15 min) at the end: {}", loadavg());
    Ok(())
}

/// What is being measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Filter {
    Pennyblack { spent: bool },
    OpenDkim,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Filter::Pennyblack { spent: true } => "pennyblack",
            Filter::Pennyblack { spent: false } => "pennyblack --no-spent",
            Filter::OpenDkim => "opendkim",
        }
    }

    /// Whether the filter's answer says what it must: DKIM passed (and, from pennyblack, the
    /// stamp paid; with --no-spent, its 8 bits of work found but its spending not checked).
    fn passes(self, r: &Reply) -> bool {
        if r.action != 'c' && r.action != 'a' {
            return false;
        }
        // Only the fields of our authserv-id.
        let ar: Vec<&str> = r
            .added_named("Authentication-Results")
            .into_iter()
            .filter(|v| v.trim_start().starts_with(AUTHSERV_ID))
            .collect();
        match self {
            Filter::OpenDkim => ar
                .iter()
                .any(|v| v.contains("dkim=pass") && v.contains("header.d=example.org")),
            Filter::Pennyblack { spent: true } => {
                ar.iter().any(|v| v.contains("dkim=pass"))
                    && ar.iter().any(|v| v.contains("x-hashcash=pass"))
            }
            // Without a store a stamp's work is checked but it is not called paid: neutral,
            // "not checked: spent".
            Filter::Pennyblack { spent: false } => {
                ar.iter().any(|v| v.contains("dkim=pass"))
                    && ar.iter().any(|v| {
                        v.contains("x-hashcash=neutral (8.00 bits")
                            && v.contains("not checked: spent")
                    })
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Unix,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
        }
    }
}

/// Where a filter listens.
#[derive(Clone, Debug)]
enum Addr {
    Unix(PathBuf),
    Tcp(u16),
}

impl Addr {
    fn connect(&self) -> std::io::Result<Stream> {
        match self {
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Addr::Tcp(port) => {
                let s = TcpStream::connect(("127.0.0.1", *port))?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
        }
    }
}

struct Ctx<'a> {
    dir: &'a Path,
    keys: &'a Path,
    opendkim: &'a str,
}

impl Ctx<'_> {
    /// Starts `filter` afresh (pennyblack with an empty spent store) on `transport`, and waits
    /// until it accepts connections.
    fn start(&self, filter: Filter, transport: Transport, tag: &str) -> Res<Proc> {
        let name = format!(
            "{}-{}-{tag}",
            match filter {
                Filter::Pennyblack { spent: true } => "pb",
                Filter::Pennyblack { spent: false } => "pbns",
                Filter::OpenDkim => "odk",
            },
            transport.name()
        );
        let addr = match transport {
            Transport::Unix => Addr::Unix(self.dir.join(format!("{name}.sock"))),
            Transport::Tcp => Addr::Tcp(free_port()?),
        };
        let log = self.dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = match filter {
            Filter::Pennyblack { spent } => {
                let mut c = Command::new(PENNYBLACK);
                c.arg("milter").arg("--listen").arg(match &addr {
                    Addr::Unix(p) => format!("unix:{}", p.display()),
                    Addr::Tcp(port) => format!("inet:127.0.0.1:{port}"),
                });
                c.arg("--inbound-only").arg("--keys").arg(self.keys);
                if spent {
                    let store = self.dir.join(format!("{name}.spent.redb"));
                    let _ = std::fs::remove_file(&store);
                    c.arg("--spent").arg(store);
                } else {
                    c.arg("--no-spent");
                }
                c.args(["--min-bits", "8", "--sender-auth", "off"]);
                c.args(["--authserv-id", AUTHSERV_ID]);
                c.env_remove("PENNYBLACK_SPENT");
                c
            }
            Filter::OpenDkim => {
                let conf = self.dir.join(format!("{name}.conf"));
                let socket = match &addr {
                    Addr::Unix(p) => format!("local:{}", p.display()),
                    Addr::Tcp(port) => format!("inet:{port}@127.0.0.1"),
                };
                // Verify only, keys from the file (no DNS), results in Authentication-Results.
                let text = format!(
                    "Mode v\nSocket {socket}\nBackground no\nSyslog no\nAuthservID {AUTHSERV_ID}\n\
                     TestPublicKeys {}\nUMask 007\nMinimumKeyBits 1024\n",
                    self.keys.display()
                );
                std::fs::write(&conf, text).map_err(|e| e.to_string())?;
                let mut c = Command::new(self.opendkim);
                c.arg("-f").arg("-x").arg(&conf);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", filter.name()))?;
        let mut proc = Proc { child, addr, log };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                return Err(format!(
                    "{} exited at start ({status}); its log:\n{}",
                    filter.name(),
                    proc.log()
                ));
            }
            if proc.addr.connect().is_ok() {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "{} did not listen within 30 s; its log:\n{}",
                    filter.name(),
                    proc.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proc)
    }
}

/// A filter process, killed when dropped.
struct Proc {
    child: Child,
    addr: Addr,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// utime + stime of the whole process (all its threads), in clock ticks.
    fn cpu_ticks(&self) -> Res<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map_err(|e| format!("/proc/{}/stat: {e}", self.child.id()))?;
        let after = stat
            .rsplit_once(')')
            .map(|(_, s)| s)
            .ok_or("/proc/PID/stat without a command name")?;
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `after` starts at field 3.
        let num = |i: usize| -> Res<u64> {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| "/proc/PID/stat: no utime/stime".to_owned())
        };
        Ok(num(11)? + num(12)?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One timed run.
#[derive(Clone, Debug)]
struct Row {
    filter: Filter,
    transport: Transport,
    conns: usize,
    run: String,
    rate: f64,
    cpu_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Row {
    fn header() -> String {
        format!(
            "{:<22} {:<9} {:>5} {:>6} {:>9} {:>11} {:>8} {:>8}",
            "filter", "transport", "conns", "run", "msgs/s", "CPU ms/msg", "p50 ms", "p99 ms"
        )
    }

    fn line(&self) -> String {
        format!(
            "{:<22} {:<9} {:>5} {:>6} {:>9.0} {:>11.3} {:>8.2} {:>8.2}",
            self.filter.name(),
            self.transport.name(),
            self.conns,
            self.run,
            self.rate,
            self.cpu_ms,
            self.p50_ms,
            self.p99_ms
        )
    }

    fn median(runs: &[&Row]) -> Row {
        let med = |f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(|r| f(r)).collect();
            v.sort_by(f64::total_cmp);
            let m = v.len() / 2;
            if v.len().is_multiple_of(2) {
                (v[m - 1] + v[m]) / 2.0
            } else {
                v[m]
            }
        };
        Row {
            run: "median".into(),
            rate: med(|r| r.rate),
            cpu_ms: med(|r| r.cpu_ms),
            p50_ms: med(|r| r.p50_ms),
            p99_ms: med(|r| r.p99_ms),
            ..runs[0].clone()
        }
    }
}

/// Sends every message to `proc` over `conns` connections at once, one connection per
/// message, and checks every answer.
fn measure(
    proc: &Proc,
    filter: Filter,
    transport: Transport,
    conns: usize,
    run: usize,
    msgs: &[Msg],
    tick: f64,
) -> Res<Row> {
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let cpu0 = proc.cpu_ticks()?;
    let t0 = Instant::now();
    let lats: Vec<Duration> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                s.spawn(|| {
                    let mut lats = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= msgs.len() || failure.lock().unwrap().is_some() {
                            break;
                        }
                        let started = Instant::now();
                        let qid = format!("Q{i:08X}");
                        match send_message(&proc.addr, &msgs[i], &qid) {
                            Ok(reply) if filter.passes(&reply) => lats.push(started.elapsed()),
                            Ok(reply) => {
                                *failure.lock().unwrap() =
                                    Some(format!("message {i} did not pass: {reply:?}"));
                            }
                            Err(e) => *failure.lock().unwrap() = Some(format!("message {i}: {e}")),
                        }
                    }
                    lats
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = proc.cpu_ticks()?;
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(format!(
            "{} over {} with {conns} connection(s): {e}\nits log (end):\n{}",
            filter.name(),
            transport.name(),
            tail(&proc.log(), 20)
        ));
    }
    let mut lats = lats;
    lats.sort();
    let pct = |p: usize| {
        let i = (lats.len() * p).div_ceil(100).saturating_sub(1);
        lats[i.min(lats.len() - 1)].as_secs_f64() * 1e3
    };
    Ok(Row {
        filter,
        transport,
        conns,
        run: run.to_string(),
        rate: msgs.len() as f64 / wall,
        cpu_ms: (cpu1 - cpu0) as f64 / tick * 1e3 / msgs.len() as f64,
        p50_ms: pct(50),
        p99_ms: pct(99),
    })
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// One message, as the MTA hands it to a milter.
struct Msg {
    /// Header fields: name, and the value after the colon (its leading space kept; folded
    /// lines joined by a bare LF, as Postfix and Sendmail pass them).
    fields: Vec<(String, String)>,
    /// The body, CRLF line endings.
    body: Vec<u8>,
    /// The whole message's size.
    size: usize,
}

/// `n` distinct messages of about 4 KB, each stamped for its recipient and signed, on every
/// core.
fn make_messages(n: usize, key: &SigningKey) -> Res<Vec<Msg>> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let now = pennyblack::unix_now();
    let per = n.div_ceil(threads);
    let chunks: Vec<Res<Vec<Msg>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let minter = Minter::new().threads(1);
                    let request = MintRequest::new("-").alg(Algorithm::Sha256).bits(8);
                    let signer = SignRequest {
                        domain: DOMAIN,
                        selector: SELECTOR,
                        key,
                        canon: (Canon::Relaxed, Canon::Relaxed),
                        time: now,
                    };
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let msg = Message::parse(plain_message(i))
                                .map_err(|e| format!("message {i}: {e}"))?;
                            let fields = stamp_fields(
                                &msg,
                                &msg.recipients(),
                                &request,
                                &minter,
                                std::slice::from_ref(&signer),
                            )
                            .map_err(|e| format!("stamping message {i}: {e}"))?;
                            Ok(split(&msg.with_fields_on_top(&fields)))
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a stamping thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(n);
    for c in chunks {
        all.extend(c?);
    }
    Ok(all)
}

/// Message `i` before stamping: plain text, its body about 3 KB of words that differ from
/// message to message.
fn plain_message(i: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "postage",
        "stamp",
        "letter",
        "parcel",
        "sorting",
        "office",
        "route",
        "address",
        "deliver",
        "receipt",
        "courier",
        "envelope",
        "franking",
        "ledger",
        "mailbag",
        "carrier",
        "pigeon",
        "telegraph",
        "bulletin",
        "invoice",
        "quarterly",
        "minutes",
        "agenda",
        "meeting",
    ];
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut word = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        WORDS[(x % WORDS.len() as u64) as usize]
    };
    let mut m = format!(
        "From: Alice Example <{FROM}>\r\nTo: Bob Example <{RCPT}>\r\n\
         Subject: Load test {i}: the {} {}\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <load.{i}@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        word(),
        word()
    );
    let mut body = String::new();
    let mut line = String::new();
    while body.len() < 2900 {
        let w = word();
        if line.len() + w.len() + 1 > 72 {
            body.push_str(&line);
            body.push_str("\r\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    body.push_str(&line);
    body.push_str(&format!("\r\n\r\n-- \r\nmessage {i}\r\n"));
    m.push_str(&body);
    m.into_bytes()
}

/// Splits a message as an MTA passes it to a milter.
fn split(raw: &[u8]) -> Msg {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push('\n');
                last.1.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            fields.push((n.to_owned(), v.to_owned()));
        }
    }
    Msg {
        fields,
        body: body.as_bytes().to_vec(),
        size: raw.len(),
    }
}

// --- The milter protocol, the MTA's side (version 6), adapted from tests/it/milter/proto.rs:
// negotiation as Postfix offers it (every action, every protocol flag), and the steps the filter
// asked to skip or not to answer honoured.

const SMFIP_NOCONNECT: u32 = 0x1;
const SMFIP_NOHELO: u32 = 0x2;
const SMFIP_NOMAIL: u32 = 0x4;
const SMFIP_NORCPT: u32 = 0x8;
const SMFIP_NOBODY: u32 = 0x10;
const SMFIP_NOHDRS: u32 = 0x20;
const SMFIP_NOEOH: u32 = 0x40;
const SMFIP_NR_HDR: u32 = 0x80;
const SMFIP_NODATA: u32 = 0x200;
const SMFIP_NR_CONN: u32 = 0x1000;
const SMFIP_NR_HELO: u32 = 0x2000;
const SMFIP_NR_MAIL: u32 = 0x4000;
const SMFIP_NR_RCPT: u32 = 0x8000;
const SMFIP_NR_DATA: u32 = 0x10000;
const SMFIP_NR_EOH: u32 = 0x40000;
const SMFIP_NR_BODY: u32 = 0x80000;
const SMFIP_HDR_LEADSPC: u32 = 0x100000;
/// Every protocol flag of version 6 (SMFIP_NOCONNECT ... SMFIP_HDR_LEADSPC).
const OFFERED_PROTOCOL: u32 = 0x1F_FFFF;
/// Every action (SMFIF_ADDHDRS ... SMFIF_SETSYMLIST).
const OFFERED_ACTIONS: u32 = 0x1FF;

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// What the filter answered at the end of a message.
#[derive(Debug, Default)]
struct Reply {
    /// Fields added or inserted: (name, value).
    added: Vec<(String, String)>,
    /// The final action: `c` continue, `a` accept, `y` reply code, `r` reject, `t` tempfail,
    /// `d` discard.
    action: char,
    /// The text of a `y`.
    text: String,
}

impl Reply {
    fn added_named(&self, name: &str) -> Vec<&str> {
        self.added
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct Client {
    s: Stream,
    /// The protocol flags the filter asked for.
    flags: u32,
}

impl Client {
    fn connect(addr: &Addr) -> Res<Client> {
        let s = addr.connect().map_err(|e| format!("connect: {e}"))?;
        let timeout = Some(Duration::from_secs(60));
        match &s {
            Stream::Unix(u) => u.set_read_timeout(timeout),
            Stream::Tcp(t) => t.set_read_timeout(timeout),
        }
        .map_err(|e| e.to_string())?;
        let mut c = Client { s, flags: 0 };
        let mut data = Vec::with_capacity(12);
        data.extend_from_slice(&6u32.to_be_bytes());
        data.extend_from_slice(&OFFERED_ACTIONS.to_be_bytes());
        data.extend_from_slice(&OFFERED_PROTOCOL.to_be_bytes());
        c.send(b'O', &data)?;
        let (cmd, d) = c.read()?;
        if cmd != b'O' || d.len() < 12 {
            return Err(format!("option negotiation answered {:?}", cmd as char));
        }
        c.flags = u32::from_be_bytes(d[8..12].try_into().expect("4 bytes")) & OFFERED_PROTOCOL;
        Ok(c)
    }

    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    fn send(&mut self, cmd: u8, data: &[u8]) -> Res<()> {
        let mut p = Vec::with_capacity(data.len() + 5);
        p.extend_from_slice(&((data.len() + 1) as u32).to_be_bytes());
        p.push(cmd);
        p.extend_from_slice(data);
        self.s
            .write_all(&p)
            .map_err(|e| format!("sending {:?}: {e}", cmd as char))
    }

    fn read(&mut self) -> Res<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.s
            .read_exact(&mut len)
            .map_err(|e| format!("reading a reply: {e}"))?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > 1 << 20 {
            return Err(format!("a reply of {len} bytes"));
        }
        let mut p = vec![0u8; len];
        self.s
            .read_exact(&mut p)
            .map_err(|e| format!("reading a reply: {e}"))?;
        Ok((p[0], p[1..].to_vec()))
    }

    /// The answer to one step before the end: `None` to go on, else the message's end.
    fn step(&mut self, what: &str, no_reply: u32) -> Res<Option<Reply>> {
        if self.has(no_reply) {
            return Ok(None);
        }
        let (cmd, data) = self.read()?;
        match cmd {
            b'c' => Ok(None),
            b's' if what == "body" => Ok(Some(Reply {
                action: 's',
                ..Reply::default()
            })),
            b'a' | b'r' | b't' | b'd' | b'y' => Ok(Some(Reply {
                action: cmd as char,
                text: String::from_utf8_lossy(&data).into_owned(),
                ..Reply::default()
            })),
            other => Err(format!("{what}: unexpected reply {:?}", other as char)),
        }
    }

    fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) -> Res<()> {
        let mut d = vec![stage];
        for (k, v) in pairs {
            d.extend_from_slice(k.as_bytes());
            d.push(0);
            d.extend_from_slice(v.as_bytes());
            d.push(0);
        }
        self.send(b'D', &d)
    }

    /// One SMTP session of one message, as Postfix runs it; returns the filter's answer.
    fn message(&mut self, m: &Msg, qid: &str) -> Res<Reply> {
        if !self.has(SMFIP_NOCONNECT) {
            self.macros(
                b'C',
                &[
                    ("j", AUTHSERV_ID),
                    ("{daemon_name}", "smtpd"),
                    ("v", "Postfix 3.7"),
                    ("_", "client.example [192.0.2.66]"),
                ],
            )?;
            let mut d = b"client.example\0".to_vec();
            d.push(b'4');
            d.extend_from_slice(&25000u16.to_be_bytes());
            d.extend_from_slice(CLIENT_IP.as_bytes());
            d.push(0);
            self.send(b'C', &d)?;
            if let Some(r) = self.step("connect", SMFIP_NR_CONN)? {
                return Ok(r);
            }
        }
        if !self.has(SMFIP_NOHELO) {
            self.send(b'H', b"client.example\0")?;
            if let Some(r) = self.step("helo", SMFIP_NR_HELO)? {
                return Ok(r);
            }
        }
        if !self.has(SMFIP_NOMAIL) {
            self.macros(b'M', &[("i", qid), ("{mail_addr}", FROM)])?;
            self.send(b'M', format!("<{FROM}>\0").as_bytes())?;
            if let Some(r) = self.step("mail", SMFIP_NR_MAIL)? {
                return Ok(r);
            }
        }
        if !self.has(SMFIP_NORCPT) {
            self.macros(b'R', &[("{rcpt_addr}", RCPT)])?;
            self.send(b'R', format!("<{RCPT}>\0").as_bytes())?;
            if let Some(r) = self.step("rcpt", SMFIP_NR_RCPT)? {
                return Ok(r);
            }
        }
        if !self.has(SMFIP_NODATA) {
            self.send(b'T', b"")?;
            if let Some(r) = self.step("data", SMFIP_NR_DATA)? {
                return Ok(r);
            }
        }
        if !self.has(SMFIP_NOHDRS) {
            let lead = self.has(SMFIP_HDR_LEADSPC);
            for (n, v) in &m.fields {
                let v = if lead {
                    v.as_str()
                } else {
                    v.strip_prefix(' ').unwrap_or(v)
                };
                let mut d = Vec::with_capacity(n.len() + v.len() + 2);
                d.extend_from_slice(n.as_bytes());
                d.push(0);
                d.extend_from_slice(v.as_bytes());
                d.push(0);
                self.send(b'L', &d)?;
                if let Some(r) = self.step("header", SMFIP_NR_HDR)? {
                    return Ok(r);
                }
            }
        }
        if !self.has(SMFIP_NOEOH) {
            self.send(b'N', b"")?;
            if let Some(r) = self.step("end of header", SMFIP_NR_EOH)? {
                return Ok(r);
            }
        }
        if !self.has(SMFIP_NOBODY) {
            for chunk in m.body.chunks(65535) {
                match self.step_body(chunk)? {
                    None => {}
                    Some(r) if r.action == 's' => break,
                    Some(r) => return Ok(r),
                }
            }
        }
        self.macros(b'E', &[("i", qid)])?;
        self.send(b'E', b"")?;
        let mut reply = Reply::default();
        let strs = |d: &[u8]| -> Vec<String> {
            d.split(|&b| b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        loop {
            let (cmd, data) = self.read()?;
            match cmd {
                b'h' => {
                    let f = strs(&data);
                    if f.len() >= 2 {
                        reply.added.push((f[0].clone(), f[1].clone()));
                    }
                }
                b'i' if data.len() > 4 => {
                    let f = strs(&data[4..]);
                    if f.len() >= 2 {
                        reply.added.push((f[0].clone(), f[1].clone()));
                    }
                }
                // Progress, header changes, quarantine, recipient changes: nothing to keep.
                b'p' | b'm' | b'q' | b'+' | b'-' | b'2' | b'e' | b'b' | b'i' => {}
                b'c' | b'a' | b'r' | b't' | b'd' | b'y' => {
                    reply.action = cmd as char;
                    reply.text = String::from_utf8_lossy(&data).into_owned();
                    return Ok(reply);
                }
                other => {
                    return Err(format!(
                        "unexpected end-of-message reply {:?}",
                        other as char
                    ));
                }
            }
        }
    }

    fn step_body(&mut self, chunk: &[u8]) -> Res<Option<Reply>> {
        self.send(b'B', chunk)?;
        self.step("body", SMFIP_NR_BODY)
    }

    fn quit(mut self) {
        let _ = self.send(b'Q', b"");
    }
}

/// One message on a connection of its own.
fn send_message(addr: &Addr, m: &Msg, qid: &str) -> Res<Reply> {
    let mut c = Client::connect(addr)?;
    let r = c.message(m, qid)?;
    c.quit();
    Ok(r)
}

// --- The machine.

fn free_port() -> Res<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("a free port: {e}"))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} (with uncommitted changes)")
            } else {
                c
            }
        }
        None => "unknown".into(),
    }
}
