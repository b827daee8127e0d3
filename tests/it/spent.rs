//! The durable spent store: survives reopening, is atomic across threads, expires entries.

use std::sync::Arc;

use pennyblack::spent::Spend;
use pennyblack::{FileStore, MemoryStore, SpentStore};

fn key(i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}

fn spends(items: &[([u8; 32], i64)]) -> Vec<Spend> {
    items.iter().map(|&i| i.into()).collect()
}

/// Records `key(k)` dated `date`, kept until `keep`: whether it was fresh.
fn spend_dated(store: &dyn SpentStore, k: u32, date: i64, keep: i64, now: i64) -> bool {
    let item = Spend {
        key: key(k),
        legacy: None,
        date: Some(date),
        keep_until: keep,
    };
    store.spend_many(&[item], now).unwrap()[0]
}

fn exercise(store: &dyn SpentStore) {
    assert!(store.spend(&key(1), 100, 10).unwrap());
    assert!(!store.spend(&key(1), 100, 10).unwrap());
    assert!(!store.spend(&key(1), 100, 99).unwrap());
    // An entry past its time still counts until it is purged.
    assert!(!store.spend(&key(1), 200, 150).unwrap());
    assert_eq!(store.purge(300).unwrap(), 1);
    assert!(store.is_empty().unwrap());
    // Dated entries, in hours of their own (the file store drops an hour at once): a refusal
    // that asks for a longer time keeps the entry that long.
    let hour = 3600;
    assert!(spend_dated(store, 1, 0, 100 * hour, 10));
    assert!(!spend_dated(store, 1, 0, 100 * hour, 10));
    assert!(!spend_dated(store, 1, 0, 200 * hour, 150 * hour));
    assert!(spend_dated(store, 2, 2 * hour, 50 * hour, 10));
    assert_eq!(store.len().unwrap(), 2);
    assert_eq!(store.purge(60 * hour).unwrap(), 1);
    assert_eq!(
        store.purge(199 * hour).unwrap(),
        0,
        "the refusal at 150 kept key 1 until 200"
    );
    assert_eq!(store.len().unwrap(), 1);
    assert_eq!(store.purge(200 * hour).unwrap(), 1);
    assert!(
        spend_dated(store, 2, 2 * hour, 50 * hour, 10),
        "purged: fresh again"
    );
    // A refused batch records nothing fresh, and keeps its spent entry as long as it asks.
    let item = |k, keep| Spend {
        key: key(k),
        legacy: None,
        date: Some(2 * hour),
        keep_until: keep,
    };
    let batch = [item(2, 400 * hour), item(3, 400 * hour)];
    assert_eq!(store.spend_if_all_fresh(&batch, 10).unwrap(), [false, true]);
    assert_eq!(store.purge(300 * hour).unwrap(), 0, "kept until 400h");
    assert!(!spend_dated(store, 2, 2 * hour, 50 * hour, 10));
}

/// A legacy key (an earlier build's) makes a stamp spent; the new key is recorded too. (The
/// file store looks legacy keys up only in files an earlier build wrote: see its unit test.)
#[test]
fn memory_store_honours_legacy_keys() {
    let store = MemoryStore::new();
    assert!(store.spend(&key(7), 1000, 10).unwrap());
    let upgraded = Spend {
        key: key(8),
        legacy: Some(key(7)),
        date: None,
        keep_until: 1000,
    };
    assert_eq!(store.spend_many(&[upgraded], 10).unwrap(), [false]);
    assert!(!store.spend(&key(8), 1000, 10).unwrap());
}

#[test]
fn memory_and_file_stores_agree() {
    exercise(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    exercise(&FileStore::open(dir.path().join("a/b/spent.redb")).unwrap());
}

#[test]
fn file_store_keeps_entries_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spent.redb");
    {
        let s = FileStore::open(&path).unwrap();
        for i in 0..100 {
            assert!(s.spend(&key(i), 1000, 0).unwrap());
        }
    }
    let s = FileStore::open(&path).unwrap();
    assert_eq!(s.len().unwrap(), 100);
    for i in 0..100 {
        assert!(!s.spend(&key(i), 1000, 0).unwrap());
    }
}

#[test]
fn racing_threads_spend_each_key_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<dyn SpentStore>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(FileStore::open(dir.path().join("spent.redb")).unwrap()),
    ];
    for store in stores {
        let wins: u32 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let store = &store;
                    s.spawn(move || {
                        (0..50)
                            .filter(|&i| store.spend(&key(i), 1000, 0).unwrap())
                            .count() as u32
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 50);
    }
}

#[test]
fn a_file_that_is_not_a_store_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, b"this is not a redb file at all, just some text").unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, pennyblack::Error::Store(_)), "{err}");
}

#[test]
fn batches_are_fresh_once_and_expired_entries_are_purged_as_we_go() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::open(dir.path().join("spent.redb")).unwrap();
    let mem = MemoryStore::new();
    for store in [&file as &dyn SpentStore, &mem] {
        let r = store
            .spend_many(&spends(&[(key(1), 100), (key(2), 100), (key(1), 100)]), 10)
            .unwrap();
        assert_eq!(r, vec![true, true, false]);
        assert_eq!(
            store
                .spend_many(&spends(&[(key(2), 100), (key(3), 100)]), 10)
                .unwrap(),
            vec![false, true]
        );
    }
    // Ten hours of stamp dates, ten entries each, all expiring at 50: each later check drops
    // up to four whole hours, so all are gone after three, without a purge.
    let hour = 3600;
    let items: Vec<Spend> = (0..100)
        .map(|i| Spend {
            key: key(100 + i),
            legacy: None,
            date: Some(i64::from(i / 10) * hour),
            keep_until: 50,
        })
        .collect();
    file.spend_many(&items, 10).unwrap();
    assert_eq!(file.stats(60).unwrap().expired, 100);
    assert_eq!(file.stats(60).unwrap().hours, 11);
    let mut left = vec![];
    for i in 0..3 {
        file.spend(&key(500 + i), 1000, 60).unwrap();
        left.push(file.stats(60).unwrap().expired);
    }
    assert_eq!(left, [60, 20, 0]);
    assert_eq!(file.stats(60).unwrap().entries, 3 + 3);
}

/// Two `pennyblack verify` processes racing on the same stamp and store: exactly one wins.
#[test]
fn racing_processes_accept_a_stamp_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spent.redb");
    for round in 0..5 {
        let stamp = pennyblack::mint(&pennyblack::MintRequest::hashcash(
            format!("race{round}@example.org"),
            4,
        ))
        .unwrap()
        .to_string();
        let codes = crate::support::race_verify(db.as_os_str(), &stamp, 2);
        assert_eq!(codes, vec![0, 1], "round {round}");
    }
}

/// A process that keeps the file open (as the milter does) does not lock others out: while this
/// test holds a `FileStore`, `pennyblack verify` on the same file runs at once, refuses what the
/// holder spent, and what it accepts is spent for the holder.
#[test]
fn a_process_holding_the_file_does_not_lock_others_out() {
    use pennyblack::{FileStore, FixedClock, Policy, Verifier};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spent.redb");
    let mint = |r: &str| {
        pennyblack::mint(&pennyblack::MintRequest::hashcash(r, 4))
            .unwrap()
            .to_string()
    };
    let (ours, theirs) = (mint("held@example.org"), mint("cli@example.org"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let holder = Verifier::new(Policy::new(4, ["*@example.org"]))
        .with_clock(FixedClock(now))
        .with_store(FileStore::open(&db).unwrap());
    assert!(holder.check(&ours).unwrap().is_valid());
    // An older build waited up to 10 s for the holder here and then failed with exit 3.
    let verify = |stamp: &str| {
        let out = crate::support::pennyblack()
            .args(["verify", "--bits", "4", "-r", "*@example.org", "--spent"])
            .arg(&db)
            .arg(stamp)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = verify(&ours);
    assert_eq!(
        code,
        Some(1),
        "the holder's stamp is spent for the CLI too: {err}"
    );
    assert_eq!(verify(&theirs).0, Some(0));
    assert_eq!(
        holder.check(&theirs).unwrap().result(),
        Err(pennyblack::VerifyError::Spent)
    );
}

/// A verifier killed with SIGKILL in the middle of a stream loses no stamp it reported accepted,
/// and leaves a file that opens.
#[test]
fn sigkill_mid_stream_loses_no_acknowledged_stamp() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spent.redb");
    let minter = pennyblack::Minter::new();
    let mut accepted: Vec<String> = Vec::new();
    for round in 0..5 {
        let stamps: Vec<String> = (0..3000)
            .map(|i| {
                minter
                    .mint(&pennyblack::MintRequest::hashcash(
                        format!("k{round}x{i}@example.org"),
                        1,
                    ))
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut child = crate::support::pennyblack()
            .args([
                "verify",
                "--bits",
                "1",
                "-r",
                "*@example.org",
                "--batch",
                "8",
                "--spent",
            ])
            .arg(&db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            for s in stamps {
                if writeln!(stdin, "{s}").is_err() {
                    break; // killed
                }
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut got = 0;
        while got < 200 + 100 * round {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(stamp) = line.trim_end().strip_prefix("valid (1.00 bits): ") {
                accepted.push(stamp.to_owned());
                got += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = feeder.join();
        assert!(got > 0);
        // every acknowledged stamp is still spent
        let store = FileStore::open(&db).unwrap();
        let v = pennyblack::Verifier::new(pennyblack::Policy::new(1, ["*@example.org"]))
            .with_store(store);
        let texts: Vec<&str> = accepted.iter().map(String::as_str).collect();
        for verdict in v.check_batch(&texts).unwrap() {
            assert_eq!(
                verdict.result(),
                Err(pennyblack::VerifyError::Spent),
                "round {round}: {}",
                verdict.stamp()
            );
        }
    }
}

/// A batch large enough to be checked on every core gives, stamp by stamp and in order, the
/// verdicts that checking the same texts one at a time gives: repeats within the batch are
/// accepted once (the first), malformed, short and wrong-resource stamps are refused.
#[test]
fn a_parallel_batch_matches_one_at_a_time() {
    use pennyblack::{FixedClock, MemoryStore, PARALLEL_BATCH, Policy, Verifier};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let verifier = || {
        Verifier::new(Policy::new(6, ["*@example.org"]))
            .with_clock(FixedClock(now))
            .with_store(MemoryStore::new())
    };
    let mut texts: Vec<String> = Vec::new();
    for i in 0..PARALLEL_BATCH + 100 {
        let text = match i % 5 {
            0 => pennyblack::mint(&pennyblack::MintRequest::hashcash(
                format!("u{i}@example.org"),
                6,
            ))
            .unwrap()
            .to_string(),
            1 => texts[i - 1].clone(), // a repeat of the stamp just before
            2 => pennyblack::mint(&pennyblack::MintRequest::hashcash(
                format!("u{i}@elsewhere.org"),
                6,
            ))
            .unwrap()
            .to_string(),
            3 => pennyblack::mint(&pennyblack::MintRequest::hashcash(
                format!("u{i}@example.org"),
                2,
            ))
            .unwrap()
            .to_string(),
            _ => format!("1:6:{i}:not a stamp"),
        };
        texts.push(text);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = verifier().check_batch(&refs).unwrap();
    let single = verifier();
    assert_eq!(batch.len(), texts.len());
    let mut valid = 0;
    for (i, (b, text)) in batch.iter().zip(&texts).enumerate() {
        let s = single.check(text).unwrap();
        assert_eq!(b.stamp(), text.as_str(), "{i}");
        assert_eq!(b.result(), s.result(), "{i}: {text}");
        valid += usize::from(b.is_valid());
    }
    // Exactly the fresh, well-made stamps for example.org: one in five.
    assert_eq!(valid, texts.len().div_ceil(5));
}

/// A store damaged inside its data (random bytes past the header) is a clear error, exit 3,
/// for every command that opens it: never a panic (exit 101), never a replay let through.
#[test]
fn a_damaged_store_is_exit_3_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    {
        let s = FileStore::open(&good).unwrap();
        for batch in 0..6u32 {
            let items: Vec<Spend> = (batch * 50..batch * 50 + 50)
                .map(|i| (key(i), i64::MAX).into())
                .collect();
            s.spend_many(&items, 0).unwrap();
        }
    }
    let original = std::fs::read(&good).unwrap();
    let stamp = pennyblack::mint(&pennyblack::MintRequest::hashcash("bob@example.org", 4))
        .unwrap()
        .to_string();
    let msg =
        format!("X-Hashcash: {stamp}\r\nFrom: a@example.org\r\nTo: bob@example.org\r\n\r\nhi\r\n");
    let mut damaged_seen = 0;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..30 {
        let mut data = original.clone();
        for _ in 0..24 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let at = 8192 + (state >> 33) as usize % (data.len() - 8192);
            data[at] = (state >> 17) as u8;
        }
        let bad = dir.path().join(format!("bad-{round}.redb"));
        let bad_s = bad.to_str().unwrap();
        for (args, input) in [
            (
                vec![
                    "verify",
                    "--bits",
                    "4",
                    "-r",
                    "bob@example.org",
                    "--spent",
                    bad_s,
                    &stamp,
                ],
                "",
            ),
            (
                vec![
                    "check",
                    "--bits",
                    "4",
                    "--rcpt",
                    "bob@example.org",
                    "--keys",
                    "/dev/null",
                    "--spent",
                    bad_s,
                ],
                msg.as_str(),
            ),
            (vec!["spent", "stats", "--spent", bad_s], ""),
            (vec!["spent", "purge", "--spent", bad_s], ""),
        ] {
            std::fs::write(&bad, &data).unwrap();
            let mut c = crate::support::pennyblack();
            c.args(&args);
            let o = crate::support::pipe(c, input.as_bytes());
            let err = String::from_utf8_lossy(&o.stderr);
            assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            if err.contains("database damaged") {
                assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
                damaged_seen += 1;
            }
        }
    }
    assert!(damaged_seen > 0, "no round hit damage that redb panics on");
}

/// `spent stats` only reads (a missing file is an error, not created; the file is left byte for
/// byte as it was), and `spent purge` gives the freed pages back: the file shrinks.
#[test]
fn stats_reads_only_and_purge_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spent.redb");
    let p = path.to_str().unwrap();
    let missing = crate::support::pennyblack()
        .args(["spent", "stats", "--spent", p])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3));
    assert!(!path.exists(), "stats created the store");
    {
        let s = FileStore::open(&path).unwrap();
        for batch in 0..40u32 {
            let items: Vec<Spend> = (batch * 500..batch * 500 + 500)
                .map(|i| (key(i), 1000).into())
                .collect();
            s.spend_many(&items, 0).unwrap();
        }
    }
    let before = std::fs::read(&path).unwrap();
    let stats = crate::support::pennyblack()
        .args(["spent", "stats", "--json", "--spent", p, "--now", "10"])
        .output()
        .unwrap();
    assert_eq!(stats.status.code(), Some(0), "{stats:?}");
    assert!(String::from_utf8_lossy(&stats.stdout).contains("\"entries\":20000"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "stats wrote to the store"
    );
    let purge = crate::support::pennyblack()
        .args(["spent", "purge", "--json", "--spent", p, "--now", "2000"])
        .output()
        .unwrap();
    assert_eq!(purge.status.code(), Some(0), "{purge:?}");
    let v: serde_json::Value = serde_json::from_slice(&purge.stdout).unwrap();
    assert_eq!(v["removed"], 20000);
    let (b, a) = (
        v["bytes_before"].as_u64().unwrap(),
        v["bytes_after"].as_u64().unwrap(),
    );
    assert!(a * 4 < b, "the file did not shrink: {b} -> {a} bytes");
}
