//! Property tests: the grammar round-trips, and the parser never panics.

use pennyblack::Stamp;
use proptest::prelude::*;

fn alphabet(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9+/=]{{0,{max}}}")).unwrap()
}
fn counter() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9+/=]{1,20}").unwrap()
}
fn resource() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[!-9;-~]{0,40}").unwrap() // printable ASCII but ':'
}
fn date() -> impl Strategy<Value = String> {
    (
        0u8..100,
        1u8..13,
        1u8..29,
        0u8..24,
        0u8..60,
        0u8..60,
        1usize..7,
    )
        .prop_map(|(y, mo, d, h, mi, s, pairs)| {
            format!("{y:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}")[..pairs * 2].to_owned()
        })
}
fn ext() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "([a-z]{1,5}(=[a-z0-9]{1,4}(,[a-z0-9]{1,4}){0,2})?(;[a-z]{1,5}){0,2})?",
    )
    .unwrap()
}

fn stamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (date(), resource(), alphabet(30)).prop_map(|(d, r, rand)| format!("0:{d}:{r}:{rand}")),
        (
            0u32..=999,
            date(),
            resource(),
            ext(),
            alphabet(30),
            alphabet(30)
        )
            .prop_map(|(b, d, r, e, rand, c)| format!("1:{b}:{d}:{r}:{e}:{rand}:{c}")),
        (
            prop_oneof![Just("sha256"), Just("blake3")],
            0u32..=256,
            date(),
            resource(),
            ext(),
            alphabet(30),
            proptest::collection::btree_set(counter(), 1..=64)
        )
            .prop_map(|(a, b, d, r, e, rand, cs)| {
                let cs: Vec<String> = cs.into_iter().collect();
                format!("2:{a}:{b}:{}:{d}:{r}:{e}:{rand}:{}", cs.len(), cs.join(","))
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn text_parse_format_is_identity(text in stamp_text()) {
        let s: Stamp = text.parse().unwrap();
        prop_assert_eq!(s.to_string(), text.clone());
        let again: Stamp = s.to_string().parse().unwrap();
        prop_assert_eq!(again, s);
    }

    #[test]
    fn parser_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = text.parse::<Stamp>();
        let _ = pennyblack::verify(&text, &pennyblack::Policy::new(8, ["x"]));
    }

    #[test]
    fn parser_never_panics_on_near_stamps(text in stamp_text(), at in 0usize..400, junk in "[\\x00-\\x7f]{0,3}") {
        let cut = at.min(text.len());
        let mutated = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        let _ = mutated.parse::<Stamp>();
        let _ = pennyblack::verify(&mutated, &pennyblack::Policy::new(8, ["x"]));
    }
}
