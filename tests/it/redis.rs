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
}

impl Redis {
    fn start() -> Redis {
        // A port picked by the kernel may be taken again before the server binds it (tests run
        // in parallel): a server that exits at once is started again on another port.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--port", &port.to_string()])
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
                        return Redis { child, port };
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
}
