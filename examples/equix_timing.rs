//! Times Equi-X stamps as pennyblack makes and checks them. Build it in release, without the
//! default features (they bring nothing here and take long to build):
//!
//! ```text
//! cargo run --release --no-default-features --features equix --example equix_timing
//! RAYON_NUM_THREADS=1 cargo run ... # the verifier's parts on one core: the cost per part
//! ```
//!
//! Solve: the minter's own kernel ([`pennyblack::Search`] on the portable backend, one thread,
//! its reused solver memory, the HashX compiler) on nonces whose parts would need 64 bits, so
//! every nonce is solved and none is kept. Verify: [`pennyblack::Verifier::check`] of whole
//! stamps (64 parts, then the default 4), with the parts on rayon's global pool.

use std::time::Instant;

use pennyblack::{
    Algorithm, Backend, FixedClock, MintRequest, Minter, Policy, Search, StampDate, Verifier,
};

const NOW: i64 = 1_795_780_800;

fn main() {
    let prefix = b"2:equix:8:4:261127:bob@example.org::oQrybfJppEL/YBZS:";
    let search = Search::new(Algorithm::Equix, prefix, 64);
    let mut hits = Vec::new();
    // Warm-up: the thread's solver memory and the compiler's first pages.
    search
        .run(Backend::Portable, 0, 5, &mut hits)
        .expect("a build with --features equix");
    let nonces = 300;
    let t = Instant::now();
    search
        .run(Backend::Portable, 1000, nonces, &mut hits)
        .unwrap();
    let solve = t.elapsed() / nonces as u32;
    println!("solve (one nonce: program, compiler, solver, digests): {solve:.2?}");

    let date = StampDate::from_unix(NOW, 6).unwrap();
    let policy = |min| Policy::new(0, ["bob@example.org"]).with_min_value(Algorithm::Equix, min);
    let verifier = |min| Verifier::new(policy(min)).with_clock(FixedClock(NOW));
    for (bits, parts, reps) in [(6, 64, 20), (8, 4, 200)] {
        let req = MintRequest::new("bob@example.org")
            .alg(Algorithm::Equix)
            .bits(bits)
            .parts(parts)
            .date(date);
        let t = Instant::now();
        let stamp = Minter::new().mint(&req).unwrap();
        let minted = t.elapsed();
        let v = verifier(bits);
        assert!(v.check(stamp.as_str()).unwrap().is_valid());
        let t = Instant::now();
        for _ in 0..reps {
            assert!(v.check(stamp.as_str()).unwrap().is_valid());
        }
        let per_stamp = t.elapsed() / reps;
        println!(
            "{parts:>2} parts, {bits} bits ({} bytes): minted in {minted:.2?} (all cores), \
             check {per_stamp:.2?} per stamp, {:.2?} per part",
            stamp.as_str().len(),
            per_stamp / parts,
        );
    }
}
