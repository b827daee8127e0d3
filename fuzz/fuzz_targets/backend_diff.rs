//! Every SIMD backend finds exactly the counters the portable one finds, for arbitrary
//! prefixes, starting counters and targets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::{Algorithm, Backend, Search};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let alg = Algorithm::ALL[data[0] as usize % 3];
    let bits = u32::from(data[1] % 9);
    let start = u64::from(u16::from_le_bytes([data[2], data[3]])) * 7;
    let prefix = &data[4..data.len().min(4 + 1100)];
    let search = Search::new(alg, prefix, bits);
    let mut want = Vec::new();
    search
        .run(Backend::Portable, start, 300, &mut want)
        .unwrap();
    for b in Backend::available(alg) {
        let mut got = Vec::new();
        search.run(b, start, 300, &mut got).unwrap();
        assert_eq!(
            got,
            want,
            "{b} {alg} bits {bits} start {start} prefix length {}",
            prefix.len()
        );
    }
});
