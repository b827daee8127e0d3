//! The spent file store's cost by size: 20,000 fresh stamps checked (recorded in batches of
//! 1000, one commit each, as `pennyblack verify` does with a stamp stream) into stores already
//! holding 10^3, 10^5, 10^6 and 10^7 entries, and the file's bytes per entry.
//!
//! Two fillings: `window`, entries dated evenly over the 28-day acceptance window (a receiver
//! in steady state; fresh stamps are dated now), and `one-hour`, every entry dated in the
//! current hour (the worst case: the fresh stamps go into the one table that holds all).
//!
//! Each measurement starts from a copy of the filled file, and sizes alternate within each of
//! five rounds (the machine is shared and noisy); the table gives the median and the range.
//! Sizes can be chosen with `PENNYBLACK_BENCH_SIZES=1000,100000` (the largest takes a few
//! minutes to fill and about 0.3 GB of temporary disk per filling). Run with
//! `cargo bench --bench spent_size`.

use std::time::Instant;

use pennyblack::spent::Spend;
use pennyblack::{FileStore, SpentStore};

const DAY: i64 = 86_400;
const WINDOW: i64 = 28 * DAY;
const KEEP: i64 = WINDOW + 4 * DAY;
const FRESH: usize = 20_000;
const BATCH: usize = 1000;
const ROUNDS: usize = 5;

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).expect("random");
    k
}

fn spend(date: i64) -> Spend {
    Spend {
        key: random_key(),
        legacy: None,
        date: Some(date),
        keep_until: date + KEEP,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let sizes: Vec<u64> = std::env::var("PENNYBLACK_BENCH_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().parse().expect("a size"))
                .collect()
        })
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000, 10_000_000]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hour_start = now - now.rem_euclid(3600);
    let dir = tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or("/var/tmp".into()))
        .expect("temporary folder");
    // The date of entry i of n.
    type Dating = Box<dyn Fn(u64, u64) -> i64>;
    let fillings: [(&str, Dating); 2] = [
        (
            "window",
            Box::new(move |i, n| now - WINDOW + (i as i64 * WINDOW) / n as i64),
        ),
        (
            "one-hour",
            Box::new(move |i, n| hour_start + (i as i64 * (now - hour_start)) / n as i64),
        ),
    ];
    // Fill each base file once.
    let mut bases = Vec::new();
    for (name, date_of) in &fillings {
        for &n in &sizes {
            let path = dir.path().join(format!("{name}-{n}.redb"));
            let started = Instant::now();
            let store = FileStore::open(&path).unwrap();
            let mut i = 0;
            while i < n {
                let m = (n - i).min(100_000);
                let items: Vec<Spend> = (i..i + m).map(|j| spend(date_of(j, n))).collect();
                store.spend_many(&items, now).unwrap();
                i += m;
            }
            assert_eq!(store.len().unwrap(), n);
            drop(store);
            let bytes = std::fs::metadata(&path).unwrap().len();
            eprintln!(
                "filled {name} {n}: {:.1} s, {} bytes, {:.1} bytes/entry",
                started.elapsed().as_secs_f64(),
                bytes,
                bytes as f64 / n as f64
            );
            bases.push((name.to_string(), n, path, bytes));
        }
    }
    // Time 20,000 fresh stamps into a copy of each, alternating, five rounds.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); bases.len()];
    let work = dir.path().join("work.redb");
    for round in 0..ROUNDS {
        for (b, (name, n, path, _)) in bases.iter().enumerate() {
            std::fs::copy(path, &work).unwrap();
            let store = FileStore::open(&work).unwrap();
            let batches: Vec<Vec<Spend>> = (0..FRESH / BATCH)
                .map(|_| (0..BATCH).map(|_| spend(now)).collect())
                .collect();
            let started = Instant::now();
            for batch in &batches {
                let fresh = store.spend_many(batch, now).unwrap();
                assert!(fresh.iter().all(|&f| f));
            }
            let per = started.elapsed().as_secs_f64() * 1e6 / FRESH as f64;
            drop(store);
            eprintln!("round {round} {name} {n}: {per:.2} us/stamp");
            times[b].push(per);
        }
    }
    std::fs::remove_file(&work).ok();
    println!("| filling | entries | bytes/entry | us per fresh stamp (median, range) | vs 10^3 |");
    println!("|---|---:|---:|---:|---:|");
    for (b, (name, n, _, bytes)) in bases.iter().enumerate() {
        let median = |t: &Vec<f64>| {
            let mut t = t.clone();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let m = median(&times[b]);
        let base = bases
            .iter()
            .position(|(nm, _, _, _)| nm == name)
            .map(|i| median(&times[i]))
            .unwrap();
        let (lo, hi) = times[b]
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        println!(
            "| {name} | {n} | {:.1} | {m:.2} ({lo:.2}-{hi:.2}) | {:.2}x |",
            *bytes as f64 / *n as f64,
            m / base
        );
    }
}
