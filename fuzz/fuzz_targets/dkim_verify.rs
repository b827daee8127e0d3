//! DKIM: tag lists and whole-message verification never panic, whatever the signature fields.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::dkim::{self, KeyFile, Tags};
use pennyblack::mail::Message;

const KEYS: &str = "ed._domainkey.example.org v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
rs._domainkey.example.org v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

fuzz_target!(|data: &[u8]| {
    let _ = Tags::parse(&String::from_utf8_lossy(data));
    if let Ok(m) = Message::parse(data.to_vec()) {
        let keys = KeyFile::parse(KEYS).expect("fixed key file");
        let opts = dkim::VerifyOptions {
            now: 1_700_000_000,
            ..Default::default()
        };
        for r in dkim::verify(&m, &keys, &opts) {
            let _ = r.status.keyword();
        }
    }
});
