//! Postage policy records and challenges (docs/FORMAT.md): whatever the text, parsing never
//! panics; what parses prints back to a canonical text that parses to the same value; a
//! challenge's MAC holds only under the key that made it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::challenge::Challenge;
use pennyblack::policy::{Requirement, requirement_in_reply};

const KEY: &[u8] = b"fuzzing key, 32 bytes long .....";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Requirement::parse(text) {
        let canonical = r.to_string();
        assert_eq!(
            Requirement::parse(&canonical).as_ref(),
            Ok(&r),
            "{canonical}"
        );
        assert_eq!(Requirement::parse_strict(&canonical).as_ref(), Ok(&r));
        // A sender's plan never exceeds the cap it is given.
        let configured = pennyblack::MintRequest::new("-").bits(20);
        if let pennyblack::policy::Plan::Mint(m) = r.plan(&configured, 26, |_| true) {
            assert!(m.bits <= 26 && m.parts >= 1 && m.parts <= 64);
        }
    }
    let _ = requirement_in_reply(text);
    if let Ok(c) = Challenge::parse(text) {
        let canonical = c.to_string();
        assert_eq!(Challenge::parse(&canonical).as_ref(), Ok(&c), "{canonical}");
        // Only a challenge made under the key verifies.
        if c.verify(KEY, 0).is_ok() {
            let again = Challenge::issue(
                KEY,
                c.requirement.clone(),
                c.from.clone(),
                c.rcpts.clone(),
                c.message_id.clone(),
                c.digest,
                c.expires,
            )
            .unwrap();
            assert_eq!(again.mac, c.mac);
        }
    }
});
