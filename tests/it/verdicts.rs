//! Every verdict reason, and the checks that decide them, through the library.

use pennyblack::verify::Unchecked;
use pennyblack::{
    Algorithm, FixedClock, MemoryStore, MintRequest, Minter, ParseError, Policy, Stamp, StampDate,
    Verifier, VerifyError,
};

use crate::support::utc;

fn mint(req: MintRequest) -> String {
    Minter::new().threads(2).mint(&req).unwrap().to_string()
}

fn at(now: &str, policy: Policy) -> Verifier {
    Verifier::new(policy).with_clock(FixedClock(utc(now)))
}

fn date(d: &str) -> StampDate {
    StampDate::parse(d).unwrap()
}

#[test]
fn valid_stamps_of_every_version_and_algorithm() {
    for (alg, parts) in [
        (Algorithm::Sha1, 1),
        (Algorithm::Sha256, 1),
        (Algorithm::Sha256, 16),
        (Algorithm::Blake3, 8),
    ] {
        let s = mint(
            MintRequest::new("bob@example.org")
                .alg(alg)
                .bits(14)
                .parts(parts)
                .date(date("250101")),
        );
        let v = at("250102", Policy::new(14, ["bob@example.org"]))
            .with_store(MemoryStore::new())
            .check(&s)
            .unwrap();
        assert!(v.is_valid() && v.fully_checked(), "{s}: {:?}", v.result());
        assert!(v.value >= 14.0);
    }
    // a version 0 stamp (from the hashcash table)
    let v0 = crate::support::kat_stamp("0:250101:v0@example.org:");
    let v = at("250102", Policy::new(8, ["v0@example.org"]))
        .check(&v0)
        .unwrap();
    assert_eq!(v.result(), Ok(()));
}

#[test]
fn malformed() {
    let v = at("250102", Policy::new(8, ["x"]))
        .check("1:8:250101:x::abc")
        .unwrap();
    assert!(matches!(
        v.result(),
        Err(VerifyError::Malformed(ParseError::FieldCount { .. }))
    ));
    for bad in [
        "",
        "3:1:2",
        "1:8:250101:x::ab c:AA",
        "1:8:250101:x::a!b:AA",
        "1:8:251301:x::ab:AA",
        "1:08:250101:x::ab:AA",
        "2:md5:8:1:250101:x::ab:AA",
        "2:sha256:8:2:250101:x::ab:AA",
        "2:sha256:8:2:250101:x::ab:AA,AA",
        "2:sha256:300:1:250101:x::ab:AA",
        "2:sha256:8:0:250101:x::ab:",
        "2:sha256:8:65:250101:x::ab:AA",
    ] {
        let v = at("250102", Policy::new(8, ["x"])).check(bad).unwrap();
        assert!(
            matches!(v.result(), Err(VerifyError::Malformed(_))),
            "{bad:?}: {:?}",
            v.result()
        );
    }
}

#[test]
fn expired_and_future_follow_hashcash_arithmetic() {
    let s = mint(MintRequest::hashcash("bob@example.org", 8).date(date("250101")));
    let p = || Policy::new(8, ["bob@example.org"]);
    // valid until date + 28d + 2d, exclusive
    let last_second = utc("250131") - 1;
    let v = Verifier::new(p())
        .with_clock(FixedClock(last_second))
        .check(&s)
        .unwrap();
    assert!(v.is_valid());
    let v = Verifier::new(p())
        .with_clock(FixedClock(last_second + 1))
        .check(&s)
        .unwrap();
    assert!(
        matches!(v.result(), Err(VerifyError::Expired { .. })),
        "{:?}",
        v.result()
    );
    // future: more than the 2-day grace ahead
    let v = Verifier::new(p())
        .with_clock(FixedClock(utc("241230")))
        .check(&s)
        .unwrap();
    assert!(v.is_valid());
    let v = Verifier::new(p())
        .with_clock(FixedClock(utc("241230") - 1))
        .check(&s)
        .unwrap();
    assert!(
        matches!(v.result(), Err(VerifyError::Future { .. })),
        "{:?}",
        v.result()
    );
    // validity 0 = forever
    let mut forever = p();
    forever.validity = std::time::Duration::ZERO;
    let v = Verifier::new(forever)
        .with_clock(FixedClock(utc("450101")))
        .check(&s)
        .unwrap();
    assert!(v.is_valid(), "{:?}", v.result());
}

#[test]
fn wrong_resource() {
    let s = mint(MintRequest::hashcash("bob@example.org", 8).date(date("250101")));
    let v = at(
        "250102",
        Policy::new(8, ["alice@example.org", "*@example.net"]),
    )
    .check(&s)
    .unwrap();
    assert!(matches!(v.result(), Err(VerifyError::WrongResource { .. })));
    let v = at(
        "250102",
        Policy::new(8, ["alice@example.org", "BOB@EXAMPLE.ORG"]),
    )
    .check(&s)
    .unwrap();
    assert!(v.is_valid());
}

#[test]
fn insufficient_work() {
    // below the policy
    let s = mint(MintRequest::hashcash("bob@example.org", 8).date(date("250101")));
    let v = at("250102", Policy::new(9, ["bob@example.org"]))
        .check(&s)
        .unwrap();
    assert!(matches!(
        v.result(),
        Err(VerifyError::InsufficientWork { required: 9, .. })
    ));
    // over-claimed: a v1 stamp claiming more than its hash shows is worth 0, even with no policy bits
    let forged = s.replacen("1:8:", "1:40:", 1);
    let mut p = Policy::new(0, ["bob@example.org"]);
    p.min_bits = None;
    let v = at("250102", p).check(&forged).unwrap();
    assert_eq!(v.value, 0.0);
    assert!(matches!(
        v.result(),
        Err(VerifyError::InsufficientWork { .. })
    ));
}

#[test]
fn a_multi_part_stamp_needs_every_part() {
    let s = mint(
        MintRequest::new("bob@example.org")
            .bits(12)
            .parts(8)
            .date(date("250101")),
    );
    let stamp: Stamp = s.parse().unwrap();
    assert_eq!((stamp.bits(), stamp.parts()), (9, 8));
    let v = at("250102", Policy::new(12, ["bob@example.org"]))
        .check(&s)
        .unwrap();
    assert_eq!(v.value, 12.0);
    // replace one counter with one that (almost surely) fails: value drops to 0
    let (head, counters) = s.rsplit_once(':').unwrap();
    let mut cs: Vec<&str> = counters.split(',').collect();
    cs[3] = "zzzzzzzzzz";
    let broken = format!("{head}:{}", cs.join(","));
    let v = at("250102", Policy::new(12, ["bob@example.org"]))
        .check(&broken)
        .unwrap();
    assert!(
        matches!(v.result(), Err(VerifyError::InsufficientWork { .. })),
        "{:?}",
        v.result()
    );
    assert_eq!(v.value, 0.0);
}

#[test]
fn spent_only_after_every_other_check_and_reordering_does_not_help() {
    let s = mint(
        MintRequest::new("bob@example.org")
            .bits(10)
            .parts(4)
            .date(date("250101")),
    );
    let store = std::sync::Arc::new(MemoryStore::new());
    let verifier = at("250102", Policy::new(10, ["bob@example.org"])).with_store(store.clone());
    // A check that fails on resource does not spend it.
    let wrong = at("250102", Policy::new(10, ["carol@example.org"])).with_store(store.clone());
    assert!(!wrong.check(&s).unwrap().is_valid());
    assert_eq!(pennyblack::SpentStore::len(&*store).unwrap(), 0);

    assert!(verifier.check(&s).unwrap().is_valid());
    assert_eq!(
        verifier.check(&s).unwrap().result(),
        Err(VerifyError::Spent)
    );
    // the same parts in another order are the same work: still spent
    let (head, counters) = s.rsplit_once(':').unwrap();
    let mut cs: Vec<&str> = counters.split(',').collect();
    cs.reverse();
    let reordered = format!("{head}:{}", cs.join(","));
    assert_ne!(reordered, s);
    assert_eq!(
        verifier.check(&reordered).unwrap().result(),
        Err(VerifyError::Spent)
    );
}

#[test]
fn unchecked_is_reported() {
    let s = mint(MintRequest::hashcash("bob@example.org", 8).date(date("250101")));
    let v = at("250102", Policy::default()).check(&s).unwrap();
    assert!(v.is_valid() && !v.fully_checked());
    assert_eq!(
        v.unchecked.iter().collect::<Vec<_>>(),
        vec![Unchecked::Bits, Unchecked::Resource, Unchecked::Spent]
    );
}
