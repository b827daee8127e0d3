//! Message parser: never panics; a parsed message gives back its bytes exactly, and adding
//! fields on top changes nothing below them. Bindings: the kept (cached) view computes what a
//! view that keeps nothing computes, for both versions and any mask; a binding's text reads
//! back as itself; a trace field added on top keeps a message's binding, a reader field breaks
//! a version-2 one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::bind::{BindVersion, Binding, BindingSource};
use pennyblack::mail::{Message, format_field};
use pennyblack::postage::BindingView;

/// A view that keeps nothing: the trait's own defaults.
struct Plain<'a>(&'a Message);
impl BindingSource for Plain<'_> {
    fn fields(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .fields()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.raw)
            .collect()
    }
    fn body(&self) -> &[u8] {
        self.0.body()
    }
}

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
        let view = BindingView::new(&m);
        let mask = data.iter().fold(0u32, |a, &b| a.rotate_left(5) ^ u32::from(b));
        for version in [BindVersion::V1, BindVersion::V2] {
            let kept = view.binding(version, mask);
            assert_eq!(kept, Binding::compute(&Plain(&m), version, mask));
            assert_eq!(view.binding(version, mask), kept);
            assert_eq!(Binding::decode(&kept.encode()), Some(kept));
        }
        let b = Binding::of(&view);
        assert!(b.matches(&Plain(&m)));
        // (A header at the parser's limit may not take one more field.)
        if let Ok(traced) = Message::parse(out) {
            assert!(b.matches(&BindingView::new(&traced)));
        }
        let reply_to = format_field("Reply-To", "x@example.net", m.eol());
        if let Ok(doctored) = Message::parse(m.with_fields_on_top(&[reply_to])) {
            assert!(!b.matches(&BindingView::new(&doctored)));
        }
    }
});
