//! Authentication-Results writer: whatever the message, the fields it writes are printable
//! ASCII, folded with a TAB, and end with the message's line ending.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::dkim::{self, KeyFile};
use pennyblack::mail::Message;
use pennyblack::postage::{CheckLimits, check_message};
use pennyblack::{FixedClock, Policy, Verifier};

fuzz_target!(|data: &[u8]| {
    let Some((&id_len, rest)) = data.split_first() else {
        return;
    };
    let (id, msg) = rest.split_at((id_len as usize).min(rest.len()));
    let Ok(m) = Message::parse(msg.to_vec()) else {
        return;
    };
    // Without recipients, and with envelope recipients (one looks like a pattern).
    let with_rcpts = Policy {
        resources: ["bob@example.org", "*", "\"a b\"@x"]
            .map(pennyblack::ResourcePattern::address)
            .to_vec(),
        ..Policy::default()
    };
    for policy in [Policy::default(), with_rcpts] {
        let verifier = Verifier::new(policy).with_clock(FixedClock(1_700_000_000));
        let opts = dkim::VerifyOptions {
            now: 1_700_000_000,
            ..Default::default()
        };
        let v = check_message(
            &m,
            &verifier,
            &KeyFile::default(),
            &opts,
            &CheckLimits::default(),
        )
        .expect("no store, no failure");
        let id = String::from_utf8_lossy(id);
        for field in [
            pennyblack::authres::dkim_field(&id, &v, m.eol()),
            pennyblack::authres::hashcash_field(&id, &v, Some(8), m.eol()),
        ] {
            assert!(field.starts_with("Authentication-Results:"));
            assert!(field.ends_with(m.eol().as_str()));
            let body = &field[..field.len() - m.eol().as_str().len()];
            for (i, line) in body.split(m.eol().as_str()).enumerate() {
                assert!(
                    line.bytes()
                        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b)),
                    "{line:?}"
                );
                assert!(i == 0 || line.starts_with('\t'), "{line:?}");
            }
        }
    }
});
