//! Stamp parser: parse -> format -> parse gives the same stamp and text; verifying never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::{Policy, Stamp};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(stamp) = text.parse::<Stamp>() {
        let again: Stamp = stamp.to_string().parse().expect("a formatted stamp parses");
        assert_eq!(again, stamp);
        assert_eq!(stamp.to_string(), text.trim_ascii());
    }
    let _ = pennyblack::verify(&text, &Policy::new(8, ["*"]));
});
