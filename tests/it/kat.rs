//! Known answers: stamps minted by the real hashcash 1.22 (and v0 stamps it checks), with the
//! verdict hashcash itself gave each under a fixed clock and policy (`tests/data/make-kat.sh`).
//! We must agree on every row.

use pennyblack::{FixedClock, Policy, Verifier};

use crate::support::{data, utc};

#[test]
fn every_hashcash_verdict_is_ours() {
    let text = std::fs::read_to_string(data("hashcash-kat.tsv")).unwrap();
    let mut rows = 0;
    let (mut valid, mut invalid) = (0, 0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let [stamp, now, bits, resource, hc_exit] = f[..] else {
            panic!("bad row {line:?}")
        };
        let verifier = Verifier::new(Policy::new(bits.parse().unwrap(), [resource]))
            .with_clock(FixedClock(utc(now)));
        let v = verifier.check(stamp).unwrap();
        let theirs = hc_exit == "0";
        assert_eq!(
            v.is_valid(),
            theirs,
            "{stamp} at {now}, -b {bits} -r {resource}: hashcash says {}, we say {:?}",
            if theirs { "valid" } else { "invalid" },
            v.result()
        );
        rows += 1;
        if theirs { valid += 1 } else { invalid += 1 }
    }
    // The table covers both outcomes in quantity (a truncated file must not pass quietly).
    assert!(
        rows >= 1000 && valid >= 200 && invalid >= 500,
        "{rows} {valid} {invalid}"
    );
}

#[test]
fn the_table_holds_every_date_width_ext_fields_and_v0() {
    let text = std::fs::read_to_string(data("hashcash-kat.tsv")).unwrap();
    let stamps: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(stamps.len() >= 30, "{}", stamps.len());
    let parsed: Vec<pennyblack::Stamp> = stamps.iter().map(|s| s.parse().unwrap()).collect();
    for w in [6, 10, 12] {
        assert!(
            parsed
                .iter()
                .any(|s| s.date().width() == w && s.version() == pennyblack::Version::V1)
        );
    }
    assert!(parsed.iter().any(|s| s.ext().contains(';')));
    assert!(
        parsed
            .iter()
            .filter(|s| s.version() == pennyblack::Version::V0)
            .count()
            >= 3
    );
    // and each formats back to exactly its text
    for (s, p) in stamps.iter().zip(&parsed) {
        assert_eq!(*s, p.to_string());
    }
}
