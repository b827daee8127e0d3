//! Spent-store throughput: stamps recorded per second, one at a time and in batches of 1000,
//! for the memory, embedded (redb, fsync per commit) and Redis stores. The Redis group needs
//! `redis-server` on PATH (it starts one on a loopback port) and is left out, with a note, if
//! there is none. Run with `cargo bench --bench spent`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pennyblack::{FileStore, MemoryStore, SpentStore};

static NEXT: AtomicU64 = AtomicU64::new(0);

fn fresh_keys(n: usize, expires: i64) -> Vec<pennyblack::spent::Spend> {
    (0..n)
        .map(|_| {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_be_bytes());
            (k, expires).into()
        })
        .collect()
}

fn bench_store(c: &mut Criterion, name: &str, store: &dyn SpentStore) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut g = c.benchmark_group(format!("spent/{name}"));
    for batch in [1usize, 1000] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch-{batch}"), |b| {
            b.iter_batched(
                || fresh_keys(batch, now + 3600),
                |items| store.spend_many(&items, now).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stores(c: &mut Criterion) {
    bench_store(c, "memory", &MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    bench_store(
        c,
        "file",
        &FileStore::open(dir.path().join("spent.redb")).unwrap(),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn();
    match server {
        Ok(child) => {
            let _server = Server(child);
            std::thread::sleep(Duration::from_millis(300));
            let url = format!("redis://127.0.0.1:{port}/0");
            let store = pennyblack::spent::RedisStore::open(&url, Duration::from_secs(2)).unwrap();
            bench_store(c, "redis", &store);
        }
        Err(e) => eprintln!("note: no redis-server ({e}); the Redis group is left out"),
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
