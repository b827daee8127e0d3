//! The Redis spent store against a real `redis-server` on a loopback port (installed by
//! `.ci/run`; each test starts and stops its own server). Missing is a failure, not a skip.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pennyblack::spent::RedisStore;
use pennyblack::{
    FileStore, MemoryStore, MintRequest, Minter, Policy, SpentStore, Verifier, VerifyError,
};

use crate::support::pennyblack;

struct Redis {
    child: Child,
    port: u16,
    /// Its working folder: replication writes an RDB file there, which a server started in
    /// the same folder would load.
    _dir: tempfile::TempDir,
}

/// A free port no other test of this process was given: the kernel's choice of a free port can
/// be made twice by parallel tests before either server binds it.
fn unique_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 20_000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(|_| Vec::new())
    }

    /// A server with more options; `extra(port)` may name the port again (e.g. as the TLS one).
    fn start_with(extra: impl Fn(u16) -> Vec<String>) -> Redis {
        // A port picked by the kernel may be taken again before the server binds it (tests run
        // in parallel): a server that exits at once is started again on another port.
        for _ in 0..5 {
            let port = unique_port();
            // A configuration file (not an option) must come first.
            let mut more = extra(port);
            let conf: Vec<String> = match more.first() {
                Some(f) if !f.starts_with("--") => vec![more.remove(0)],
                _ => Vec::new(),
            };
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new("redis-server")
                .current_dir(dir.path())
                .args(conf)
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--dir", dir.path().to_str().unwrap()])
                .args(["--port", &port.to_string()])
                .args(more)
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("these tests need redis-server (`bash .ci/run` installs it): {e}")
                });
            let started = Instant::now();
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // it could not bind: try another port
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Connected, and to this server: it is still running a moment later.
                    std::thread::sleep(Duration::from_millis(20));
                    if child.try_wait().unwrap().is_none() {
                        return Redis {
                            child,
                            port,
                            _dir: dir,
                        };
                    }
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "redis-server did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server could not start on a free port in 5 tries");
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
    fn store(&self) -> RedisStore {
        RedisStore::open(&self.url(), Duration::from_secs(2)).unwrap()
    }
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn key(i: u32) -> [u8; 32] {
    let mut k = [7u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}

#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn set_nx_semantics() {
    let redis = Redis::start();
    let s = redis.store();
    let t = now();
    assert!(s.spend(&key(1), t + 100, t).unwrap());
    assert!(!s.spend(&key(1), t + 100, t).unwrap());
    assert_eq!(
        s.spend_many(
            &[(key(2), t + 100), (key(3), t + 100), (key(2), t + 100)].map(Into::into),
            t
        )
        .unwrap(),
        vec![true, true, false]
    );
    assert_eq!(s.len().unwrap(), 3);
    // a second client sees the same set
    assert!(!redis.store().spend(&key(3), t + 100, t).unwrap());
    // All or nothing: a refused batch records nothing fresh, and keeps its spent entry as long
    // as it asks.
    let batch = [(key(1), t + 5000), (key(4), t + 5000)].map(Into::into);
    assert_eq!(s.spend_if_all_fresh(&batch, t).unwrap(), [false, true]);
    assert_eq!(s.len().unwrap(), 3, "key 4 not recorded");
    let name: String = std::iter::once("pennyblack:spent:".to_owned())
        .chain(key(1).iter().map(|b| format!("{b:02x}")))
        .collect();
    let o = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "TTL", &name])
        .output()
        .expect("redis-cli");
    let ttl: i64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(ttl > 4000, "the refusal extended the entry: {ttl}");
}

/// N threads verify M distinct stamps plus a replay of each, against every store: every
/// fresh stamp is accepted exactly once and every replay refused.
#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn load_every_store_accepts_each_stamp_once() {
    const THREADS: usize = 4;
    const STAMPS: usize = 400;
    let minter = Minter::new();
    let stamps: Vec<String> = (0..STAMPS)
        .map(|i| {
            minter
                .mint(&MintRequest::hashcash(format!("load{i}@example.org"), 2))
                .unwrap()
                .to_string()
        })
        .collect();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn SpentStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "file",
            Arc::new(FileStore::open(dir.path().join("spent.redb")).unwrap()),
        ),
        ("redis", Arc::new(redis.store())),
    ];
    for (name, store) in stores {
        let accepted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (store, stamps) = (store.clone(), &stamps);
                    s.spawn(move || {
                        let v = Verifier::new(Policy::new(2, ["*@example.org"])).with_store(store);
                        // each thread walks all stamps twice (fresh, then replay), from its own offset, in batches
                        let order: Vec<&str> = (0..2 * STAMPS)
                            .map(|i| stamps[(i + t * STAMPS / THREADS) % STAMPS].as_str())
                            .collect();
                        let mut ok = 0;
                        for batch in order.chunks(32) {
                            for verdict in v.check_batch(batch).unwrap() {
                                match verdict.result() {
                                    Ok(()) => ok += 1,
                                    Err(VerifyError::Spent) => {}
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        }
                        ok
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(
            accepted, STAMPS,
            "{name}: each stamp accepted exactly once across {THREADS} threads"
        );
    }
}

#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn cli_shares_one_spent_set_and_races_have_one_winner() {
    let redis = Redis::start();
    let url = redis.url();
    for round in 0..3 {
        let stamp = pennyblack::mint(&MintRequest::hashcash(format!("r{round}@example.org"), 4))
            .unwrap()
            .to_string();
        let codes = crate::support::race_verify(url.as_ref(), &stamp, 3);
        assert_eq!(codes, vec![0, 1, 1], "round {round}");
    }
}

/// Stop the server in the middle of a stream: fail closed by default (exit 3, a clear error),
/// or open with `--spent-unavailable accept`, said in every verdict after the outage.
#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn outage_mid_stream_fails_closed_or_open_as_asked() {
    let minter = Minter::new();
    for accept in [false, true] {
        let mut redis = Redis::start();
        let mut cmd = pennyblack();
        cmd.args([
            "verify",
            "--bits",
            "1",
            "-r",
            "*@example.org",
            "--batch",
            "4",
            "--redis-timeout",
            "1",
        ])
        .args(["--spent", &redis.url()]);
        if accept {
            cmd.args(["--spent-unavailable", "accept"]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mint = |i: usize| {
            minter
                .mint(&MintRequest::hashcash(
                    format!("o{accept}{i}@example.org"),
                    1,
                ))
                .unwrap()
                .to_string()
        };
        for i in 0..4 {
            writeln!(stdin, "{}", mint(i)).unwrap();
        }
        let mut line = String::new();
        for _ in 0..4 {
            line.clear();
            out.read_line(&mut line).unwrap();
            assert!(line.starts_with("valid (1.00 bits): "), "{line}");
        }
        redis.stop();
        for i in 4..8 {
            let _ = writeln!(stdin, "{}", mint(i));
        }
        drop(stdin);
        let rest: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        if accept {
            assert_eq!(status.code(), Some(2), "{err}");
            assert_eq!(rest.len(), 4);
            assert!(
                rest.iter().all(|l| l.contains("spent store unavailable")),
                "{rest:?}"
            );
        } else {
            assert_eq!(status.code(), Some(3));
            assert!(
                rest.is_empty(),
                "nothing after the outage is reported valid: {rest:?}"
            );
            assert!(
                err.contains("spent-stamp store") && err.contains("redis://"),
                "{err}"
            );
        }
    }
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = pennyblack()
        .args([
            "verify",
            "--bits",
            "1",
            "--redis-timeout",
            "1",
            "--spent",
            &format!("redis://127.0.0.1:{port}/0"),
            "1:1:250101:x::a:b",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis://127.0.0.1"));
    // --spent-unavailable accept covers a store that cannot even be opened: checked without a
    // replay check, said on standard error and in the verdict (exit 2).
    let stamp = a_stamp();
    let out = verify_with(
        &format!("redis://127.0.0.1:{port}/0"),
        &["--redis-timeout", "500ms", "--spent-unavailable", "accept"],
        &stamp,
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not checked: spent"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--spent-unavailable accept"));
}

/// A receiver whose clock lags Redis's (within the grace) checks a stamp twice: the entry it
/// writes is kept (its lifetime is relative to its own clock, never a time Redis considers
/// past), so the second check is refused.
#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn a_lagging_clock_never_writes_an_entry_redis_drops_at_once() {
    let redis = Redis::start();
    let real = now();
    // Dated 3.5 days ago; the checker's clock says 1 day ago; validity 1 day, grace 2 days:
    // inside the checker's window, yet its end (date + validity + grace) is already past for
    // Redis.
    let date = real - 84 * 3600;
    let stamp = Minter::new()
        .mint(
            &MintRequest::hashcash("bob@example.org", 8)
                .date(pennyblack::StampDate::from_unix(date, 12).unwrap()),
        )
        .unwrap()
        .to_string();
    let check = || {
        pennyblack()
            .args(["verify", "--bits", "8", "-r", "bob@example.org"])
            .args(["--validity", "1d", "--grace", "2d"])
            .args(["--now", &(real - 86_400).to_string()])
            .args(["--spent", &redis.url(), &stamp])
            .output()
            .unwrap()
    };
    let first = check();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let second = check();
    assert_eq!(
        second.status.code(),
        Some(1),
        "a spent stamp accepted again: {}",
        String::from_utf8_lossy(&second.stdout)
    );
}

/// A TCP relay to Redis that holds back the first reply after `delay_next` is set: the client
/// times out after its command reached Redis, and sends it again on a new connection.
struct SlowRelay {
    port: u16,
    delay_next: Arc<std::sync::atomic::AtomicBool>,
}

impl SlowRelay {
    fn start(to: u16, hold: Duration) -> SlowRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_next = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&delay_next);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                    return;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                });
                let flag = Arc::clone(&flag);
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match std::io::Read::read(&mut s_read, &mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if flag.swap(false, Ordering::SeqCst) {
                            std::thread::sleep(hold);
                        }
                        if c_write.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowRelay { port, delay_next }
    }
}

/// A reply slower than the timeout makes the store send the batch again; the keys the first
/// attempt already wrote are recognised as its own, so fresh stamps are still fresh (and a
/// real replay is still refused).
#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn a_slow_reply_never_marks_a_fresh_stamp_spent() {
    let redis = Redis::start();
    let relay = SlowRelay::start(redis.port, Duration::from_millis(900));
    let url = format!("redis://127.0.0.1:{}/0", relay.port);
    let store = RedisStore::open(&url, Duration::from_millis(300)).unwrap();
    let t = now();
    relay
        .delay_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let fresh = store
        .spend_many(&[(key(40), t + 100), (key(41), t + 100)].map(Into::into), t)
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the first reply was not held back"
    );
    assert_eq!(
        fresh,
        [true, true],
        "a retry turned fresh stamps into spent ones"
    );
    assert!(!store.spend(&key(40), t + 100, t).unwrap());
    assert!(!redis.store().spend(&key(41), t + 100, t).unwrap());
    // Nor a spent one into a fresh one: a stamp spent under its legacy key (an earlier build's)
    // stays spent when the reply is lost and the batch sent again.
    let legacy = key(42);
    assert!(store.spend(&legacy, t + 100, t).unwrap());
    relay
        .delay_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let upgraded = pennyblack::spent::Spend {
        key: key(43),
        legacy: Some(legacy),
        date: None,
        keep_until: t + 100,
    };
    assert_eq!(store.spend_many(&[upgraded], t).unwrap(), [false]);
}

fn verify_with(
    spent: &str,
    extra: &[&str],
    stamp: &str,
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut c = pennyblack();
    c.args([
        "verify",
        "--bits",
        "8",
        "-r",
        "bob@example.org",
        "--spent",
        spent,
    ])
    .args(extra)
    .arg(stamp);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn a_stamp() -> String {
    Minter::new()
        .mint(&MintRequest::hashcash("bob@example.org", 8))
        .unwrap()
        .to_string()
}

/// Locations are read strictly: a scheme we do not support is exit 3 naming the supported
/// ones, and nothing that looks like a URL becomes a local file or folder.
#[test]
fn unsupported_schemes_are_refused_and_never_become_files() {
    let dir = tempfile::tempdir().unwrap();
    let stamp = a_stamp();
    for loc in [
        "http://example.org/spent",
        "rediss+tls://127.0.0.1:1/0",
        "reddis://127.0.0.1:1/0",
        "rediss://127.0.0.1:1/0",
        "file:",
    ] {
        let mut c = pennyblack();
        c.current_dir(dir.path()).args([
            "verify",
            "--bits",
            "8",
            "-r",
            "bob@example.org",
            "--spent",
            loc,
            &stamp,
        ]);
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{loc}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        if !loc.starts_with("rediss://") && loc != "file:" {
            assert!(
                err.contains("unsupported scheme") && err.contains("rediss://"),
                "{loc}: {err}"
            );
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a URL became a local path"
    );
}

/// Makes a test CA, a server certificate for 127.0.0.1 and a client certificate, with openssl.
fn test_pki(dir: &std::path::Path) {
    crate::pki::make(dir)
        .unwrap_or_else(|e| panic!("the TLS test needs openssl (`bash .ci/run` installs it): {e}"));
}

/// rediss:// with a CA made by the test and a client certificate the server demands: a stamp is
/// accepted once, then refused; without the CA the connection is refused (exit 3).
#[test]
#[ignore = "needs redis-server and openssl: run `bash .ci/run`, which installs them"]
fn tls_with_a_test_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path());
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let redis = Redis::start_with(|port| {
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--port".into(),
            "0".into(),
            "--tls-cert-file".into(),
            p("server.pem"),
            "--tls-key-file".into(),
            p("server.key"),
            "--tls-ca-cert-file".into(),
            p("ca.pem"),
            "--tls-auth-clients".into(),
            "yes".into(),
        ]
    });
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let tls = [
        "--redis-ca",
        &p("ca.pem"),
        "--redis-cert",
        &p("client.pem"),
        "--redis-key",
        &p("client.key"),
    ];
    let stamp = a_stamp();
    let first = verify_with(&url, &tls, &stamp, &[]);
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let again = verify_with(&url, &tls, &stamp, &[]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("spent"));
    // The system's roots do not know the test CA.
    let untrusted = verify_with(&url, &[], &stamp, &[]);
    assert_eq!(untrusted.status.code(), Some(3), "{untrusted:?}");
}

/// AUTH with ACL users: a wrong password is exit 3 and never printed; the password from a file
/// or the environment works and is not needed on the command line.
#[test]
#[ignore = "needs redis-server: run `bash .ci/run`, which installs it"]
fn acl_users_and_passwords_that_are_never_printed() {
    let redis = Redis::start_with(|_| {
        [
            "--user",
            "default",
            "off",
            "--user",
            "alice",
            "on",
            ">s3cret-pw",
            "~*",
            "&*",
            "+@all",
        ]
        .map(String::from)
        .to_vec()
    });
    let stamp = a_stamp();
    let wrong = format!("redis://alice:wr0ng-pw@127.0.0.1:{}/0", redis.port);
    let o = verify_with(&wrong, &[], &stamp, &[]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains("wr0ng-pw"), "the password was printed: {all}");
    assert!(all.contains("alice:***@"), "{all}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret-pw\n").unwrap();
    let user_only = format!("redis://alice@127.0.0.1:{}/0", redis.port);
    let o = verify_with(
        &user_only,
        &["--redis-password-file", file.to_str().unwrap()],
        &stamp,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = verify_with(
        &user_only,
        &[],
        &stamp,
        &[("PENNYBLACK_REDIS_PASSWORD", "s3cret-pw")],
    );
    assert_eq!(o.status.code(), Some(1), "spent: {o:?}");
    // Not in --help either, where clap would show the environment's value.
    let help = pennyblack()
        .args(["verify", "--help"])
        .env("PENNYBLACK_SPENT", "redis://alice:s3cret-pw@h/0")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret-pw"));
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian redis-tools, installed with redis-server)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A 3-primary Redis Cluster: every key is accepted once and refused again, whichever node its
/// slot lands on (all three hold some).
#[test]
#[ignore = "needs redis-server and redis-cli: run `bash .ci/run`, which installs them"]
fn a_three_primary_cluster_refuses_replays_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let nodes: Vec<Redis> = (0..3)
        .map(|i| {
            let d = d.clone();
            Redis::start_with(move |port| {
                vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    format!("{d}/nodes-{i}-{port}.conf"),
                    "--dir".into(),
                    d.clone(),
                ]
            })
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addrs.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    redis_cli(nodes[0].port, &create);
    let started = Instant::now();
    while !nodes
        .iter()
        .all(|n| redis_cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cluster did not form"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("redis+cluster://{}", addrs.join(","));
    let store = RedisStore::open(&url, Duration::from_secs(2)).unwrap();
    let t = now();
    let items: Vec<pennyblack::spent::Spend> =
        (1000..1300).map(|i| (key(i), t + 100).into()).collect();
    assert!(store.spend_many(&items, t).unwrap().iter().all(|&f| f));
    assert!(store.spend_many(&items, t).unwrap().iter().all(|&f| !f));
    for n in &nodes {
        let size: u64 = redis_cli(n.port, &["dbsize"]).trim().parse().unwrap();
        assert!(size > 0, "node {} holds no key", n.port);
    }
    // Through the command line as well.
    let stamp = a_stamp();
    assert_eq!(verify_with(&url, &[], &stamp, &[]).status.code(), Some(0));
    assert_eq!(verify_with(&url, &[], &stamp, &[]).status.code(), Some(1));
}

/// Sentinel: a stream of checks through `redis+sentinel://`, a failover in the middle. Stamps
/// recorded (and replicated) before the switch stay refused after it, fresh ones are accepted
/// on the new primary, and during the switch the store fails closed (errors, never a verdict
/// without a check).
#[test]
#[ignore = "needs redis-server and redis-cli: run `bash .ci/run`, which installs them"]
fn sentinel_failover_in_the_middle_of_a_stream() {
    let primary = Redis::start();
    let p = primary.port;
    let replica =
        Redis::start_with(move |_| vec!["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor svc 127.0.0.1 {p} 1\nsentinel down-after-milliseconds svc 1000\n\
             sentinel failover-timeout svc 10000\n"
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_owned();
    let sentinel = Redis::start_with(move |_| vec![conf.clone(), "--sentinel".into()]);
    let url = format!("redis+sentinel://127.0.0.1:{}/svc", sentinel.port);
    let started = Instant::now();
    let store = loop {
        match RedisStore::open(&url, Duration::from_secs(1)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(20), "{e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let t = now();
    let before: Vec<pennyblack::spent::Spend> =
        (2000..2100).map(|i| (key(i), t + 100).into()).collect();
    assert!(store.spend_many(&before, t).unwrap().iter().all(|&f| f));
    // Replicated before the switch (WAIT on the primary), then the failover.
    assert_eq!(redis_cli(p, &["wait", "1", "5000"]).trim(), "1");
    assert!(redis_cli(sentinel.port, &["sentinel", "failover", "svc"]).contains("OK"));
    let started = Instant::now();
    let mut next = 3000;
    let mut after_switch = false;
    while !after_switch {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the store never followed the new primary"
        );
        let fresh: Vec<pennyblack::spent::Spend> = (next..next + 10)
            .map(|i| (key(i), t + 100).into())
            .collect();
        next += 10;
        // Accepted: fresh keys are fresh (on whichever primary took them). Failing closed while
        // the switch happens is allowed; accepting without a check is not.
        if let Ok(r) = store.spend_many(&fresh, t) {
            assert!(r.iter().all(|&f| f), "{r:?}");
        }
        after_switch = redis_cli(replica.port, &["role"]).starts_with("master");
        std::thread::sleep(Duration::from_millis(100));
    }
    // On the new primary: what was recorded before is still spent; new keys are fresh.
    let started = Instant::now();
    let again = loop {
        match store.spend_many(&before, t) {
            Ok(r) => break r,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(30), "{e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(
        again.iter().all(|&f| !f),
        "a stamp was accepted twice across the failover"
    );
    assert!(store.spend(&key(9999), t + 100, t).unwrap());
}
