//! Message parser: never panics; a parsed message gives back its bytes exactly, and adding
//! fields on top changes nothing below them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::mail::{Message, format_field};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data.to_vec()) {
        assert_eq!(m.with_fields_on_top(&[]), data);
        for f in m.fields() {
            let _ = f.value();
        }
        let _ = m.recipients();
        let added = format_field("X-Test", "a b c", m.eol());
        let out = m.with_fields_on_top(std::slice::from_ref(&added));
        assert!(out.ends_with(data));
    }
});
