//! The durable spent store: survives reopening, is atomic across threads, expires entries.

use std::sync::Arc;

use pennyblack::{FileStore, MemoryStore, SpentStore};

fn key(i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}

fn exercise(store: &dyn SpentStore) {
    assert!(store.spend(&key(1), 100, 10).unwrap());
    assert!(!store.spend(&key(1), 100, 10).unwrap());
    assert!(!store.spend(&key(1), 100, 99).unwrap());
    // expired entries are fresh again
    assert!(store.spend(&key(1), 200, 100).unwrap());
    assert!(store.spend(&key(2), 50, 10).unwrap());
    assert_eq!(store.len().unwrap(), 2);
    assert_eq!(store.purge(60).unwrap(), 1);
    assert_eq!(store.len().unwrap(), 1);
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
