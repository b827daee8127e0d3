//! The minter: request validation, threads, backends, cancellation, deadline, progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pennyblack::{Algorithm, Backend, MintError, MintRequest, Minter, Policy, Stamp};

#[test]
fn bad_requests_are_refused_before_any_work() {
    let m = Minter::new();
    let cases = [
        (MintRequest::new(""), "EmptyResource"),
        (MintRequest::new("a:b"), "BadResource"),
        (MintRequest::new("a b"), "BadResource"),
        (MintRequest::new("bob@example.org").bits(257), "BadBits"),
        (MintRequest::hashcash("bob@example.org", 161), "BadBits"),
        (MintRequest::new("bob@example.org").parts(0), "BadParts"),
        (MintRequest::new("bob@example.org").parts(65), "BadParts"),
        (
            MintRequest::hashcash("bob@example.org", 8).parts(2),
            "BadParts",
        ),
        (
            MintRequest::new("bob@example.org").ext("a:b"),
            "BadExtension",
        ),
    ];
    for (req, want) in cases {
        let err = m.mint(&req).unwrap_err();
        assert!(format!("{err:?}").starts_with(want), "{req:?}: {err:?}");
    }
}

#[test]
fn default_request_is_20_bits_in_16_sha256_parts_of_16() {
    let req = MintRequest::new("bob@example.org");
    assert_eq!(
        (req.alg, req.bits, req.parts, req.bits_per_part()),
        (Algorithm::Sha256, 20, 16, 16)
    );
}

#[test]
fn every_thread_count_and_backend_mints_valid_stamps() {
    for threads in [1, 2, 3] {
        for alg in Algorithm::ALL {
            for backend in Backend::available(alg) {
                let parts = if alg == Algorithm::Sha1 { 1 } else { 4 };
                let req = MintRequest::new("bob@example.org")
                    .alg(alg)
                    .bits(12)
                    .parts(parts);
                let s = Minter::new()
                    .threads(threads)
                    .backend(backend)
                    .mint(&req)
                    .unwrap();
                assert_eq!(s.parts(), parts as usize);
                let v = pennyblack::verify(&s.to_string(), &Policy::new(12, ["bob@example.org"]));
                assert!(
                    v.is_valid(),
                    "{threads} threads, {backend}: {s}: {:?}",
                    v.result()
                );
            }
        }
    }
}

#[test]
fn stamps_are_fresh_each_time() {
    let m = Minter::new();
    let a = m
        .mint(&MintRequest::hashcash("bob@example.org", 4))
        .unwrap();
    let b = m
        .mint(&MintRequest::hashcash("bob@example.org", 4))
        .unwrap();
    assert_ne!(a.rand(), b.rand());
    assert!(a.rand().len() >= 16);
}

#[test]
fn cancel_and_deadline_stop_a_long_mint() {
    // 60 bits would take years: both must stop it promptly.
    let req = MintRequest::hashcash("bob@example.org", 60);
    let m = Minter::new().deadline(Duration::from_millis(200));
    let t = std::time::Instant::now();
    assert!(matches!(m.mint(&req), Err(MintError::DeadlineExceeded(_))));
    assert!(t.elapsed() < Duration::from_secs(5));

    let m = Minter::new();
    let flag = m.cancel_flag();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::Relaxed);
    });
    assert_eq!(m.mint(&req).unwrap_err(), MintError::Cancelled);
    h.join().unwrap();
}

#[test]
fn progress_is_reported_while_minting() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let m = Minter::new()
        .deadline(Duration::from_millis(400))
        .on_progress(Duration::from_millis(50), move |p| {
            assert!(p.expected > 1e17 && p.parts == 1 && p.found == 0);
            c.fetch_add(1, Ordering::Relaxed);
        });
    let _ = m.mint(&MintRequest::hashcash("bob@example.org", 60));
    assert!(
        calls.load(Ordering::Relaxed) >= 2,
        "{}",
        calls.load(Ordering::Relaxed)
    );
}

#[test]
fn multi_part_counters_are_distinct_and_sorted() {
    let s: Stamp = Minter::new()
        .mint(
            &MintRequest::new("bob@example.org")
                .alg(Algorithm::Blake3)
                .bits(14)
                .parts(64),
        )
        .unwrap();
    let cs: Vec<&str> = s.counters().collect();
    assert_eq!(cs.len(), 64);
    assert!(cs.windows(2).all(|w| w[0] < w[1]));
}

/// A forced backend the CPU lacks for the algorithm (SHA-NI has no BLAKE3 on any CPU) is the
/// same error from every entry point, and no work is done on another backend instead.
#[test]
fn a_missing_forced_backend_is_one_error_everywhere() {
    use pennyblack::backend::Search;
    let (b, alg) = (Backend::ShaNi, Algorithm::Blake3);
    let want = MintError::BackendUnavailable { backend: b, alg };
    assert_eq!(b.require(alg), Err(want.clone()));
    let minted = Minter::new()
        .backend(b)
        .mint(&MintRequest::new("bob@example.org").alg(alg).bits(4));
    assert_eq!(minted.unwrap_err(), want);
    let mut hits = Vec::new();
    let search = Search::new(alg, b"prefix:", 1);
    assert_eq!(search.run(b, 0, 1000, &mut hits), Err(want.clone()));
    assert!(hits.is_empty());
    let rate = pennyblack::rate::measure(alg, b, 1, std::time::Duration::from_millis(10));
    assert_eq!(rate.unwrap_err(), want);
    assert!(want.to_string().contains("available for blake3"), "{want}");
}

/// `mint_many`: results in the order of the requests, small stamps (one per thread) and large
/// ones (every thread) alike, each valid for its resource; a bad request is its own error and
/// does not stop the others; once cancelled, nothing more is minted.
#[test]
fn mint_many_keeps_order_and_mints_small_and_large() {
    let mut reqs: Vec<MintRequest> = (0..40)
        .map(|i| MintRequest::new(format!("u{i}@example.org")).bits(8))
        .collect();
    // Expected work over SMALL_WORK: minted with every thread.
    reqs.insert(7, MintRequest::new("big@example.org").bits(21).parts(2));
    assert!(reqs[7].expected_work() > pennyblack::mint::SMALL_WORK);
    reqs.insert(3, MintRequest::new("bad:resource"));
    let minter = Minter::new().threads(2);
    let out = minter.mint_many(&reqs);
    assert_eq!(out.len(), reqs.len());
    for (req, r) in reqs.iter().zip(&out) {
        if req.resource.contains(':') {
            assert!(matches!(r, Err(MintError::BadResource(_))), "{r:?}");
            continue;
        }
        let stamp = r.as_ref().unwrap();
        assert_eq!(stamp.resource(), req.resource);
        let v = pennyblack::Verifier::new(Policy::new(req.bits, [req.resource.as_str()]))
            .check(stamp.as_str())
            .unwrap();
        assert!(v.is_valid(), "{stamp}: {:?}", v.result());
    }
    minter.cancel_flag().store(true, Ordering::Relaxed);
    assert!(minter.mint_many(&reqs[..5]).iter().all(|r| matches!(
        r,
        Err(MintError::Cancelled) | Err(MintError::BadResource(_))
    )));
}
