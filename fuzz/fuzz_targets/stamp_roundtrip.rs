//! Stamp parser: parse -> format -> parse gives the same stamp and text; verifying never panics;
//! the binding and recipient rules (extension digest, address form, hidden resources) never panic
//! and agree with themselves.
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
    // Recipients as addresses: never a pattern, and a stamp names an address the same way
    // whatever its spelling.
    let addr = pennyblack::bind::normalize_address(&text);
    assert_eq!(
        pennyblack::bind::normalize_address(&addr),
        addr,
        "normalizing is idempotent"
    );
    if let Ok(stamp) = text.parse::<Stamp>() {
        let _ = pennyblack::bind::binding_of_ext(stamp.ext());
        let mut policy = Policy::new(8, Vec::<String>::new());
        policy.resources = vec![pennyblack::ResourcePattern::address(stamp.resource())];
        let _ = pennyblack::verify(stamp.as_str(), &policy);
        let hidden = pennyblack::bind::hidden_resource(stamp.rand(), stamp.resource());
        assert!(pennyblack::bind::resource_names(
            &hidden,
            stamp.rand(),
            stamp.resource()
        ));
    }
});
