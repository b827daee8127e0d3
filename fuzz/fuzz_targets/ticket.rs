//! Postage tickets (docs/FORMAT.md, "Postage tickets"): whatever the text, parsing never panics,
//! what parses prints back to the same value, and a ticket verifies only when the issuer signed
//! exactly what it says.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pennyblack::ticket::{Carried, Issuer, Ticket, TrustedKeys};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let issuer = Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap();
    let mut trusted = TrustedKeys::new();
    trusted
        .add_record("tickets.example.org", &issuer.key_record())
        .unwrap();
    if let Ok(t) = Ticket::parse(text) {
        assert_eq!(Ticket::parse(&t.to_string()).as_ref(), Ok(&t));
        if t.verify(&trusted, 0).is_ok() {
            // Only what the issuer signed: the same fields signed again give the same signature.
            let (again, _) = issuer.issue(t.serial, t.expires);
            assert_eq!(again, t);
        }
    }
    if let Ok(c) = Carried::parse(text) {
        assert_eq!(Carried::parse(&c.to_string()).as_ref(), Ok(&c));
        let secret = issuer.ticket_secret(&c.ticket.serial);
        if c.check_proof(&secret, &c.rcpt, &c.binding).is_ok() {
            assert_eq!(
                pennyblack::ticket::proof(&secret, &c.rcpt, &c.binding),
                c.proof
            );
        }
    }
    let _ = TrustedKeys::new().add_record("x", text);
});
