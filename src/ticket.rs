//! Postage tickets (bankable postage, after Abadi, Birrell, Burrows, Dabek and Wobber, 2003):
//! a ticket server sells tickets, a sender attaches one per recipient, the receiver checks it
//! offline and cancels it online; the grammar is in docs/FORMAT.md, "Postage tickets".
//!
//! A **ticket** is what the server signs (Ed25519): its issuer, the key that signed it, a
//! random serial and an expiry.
//!
//! ```text
//! v=PT1; iss=tickets.example.org; kid=k1; ser=q0V1...; exp=1767225600; sig=3Xo...
//! ```
//!
//! With each ticket the server gives the buyer a **ticket secret** that only the two of them
//! know (an HMAC of the serial under the server's own secret, so the server stores nothing per
//! ticket to find it again). The sender attaches the ticket to a message for one recipient
//! together with a **proof**: an HMAC under the ticket secret of the recipient's address and of
//! the message's binding ([`crate::bind::Binding`]: its body and main header fields). A receiver
//! checks the signature offline; the server checks the proof when the receiver cancels the
//! ticket, so a ticket lifted from one copy of a message (a Cc recipient's) cannot be cancelled
//! for another recipient or another message.

use std::fmt;

#[cfg(feature = "tickets")]
pub mod client;
#[cfg(feature = "tickets")]
pub mod message;
#[cfg(feature = "ticketd")]
pub mod postgres;
#[cfg(feature = "ticketd")]
pub mod server;
#[cfg(feature = "store")]
pub mod store;
pub mod wallet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use hmac::{KeyInit, Mac};

use crate::bind::normalize_address;
use crate::policy::{PolicyError, number, split_tags};

/// The version tag of tickets and of the keys that sign them.
pub const VERSION: &str = "PT1";
/// The header field that carries a ticket, its recipient and its proof.
pub const TICKET_FIELD: &str = "X-Postage-Ticket";
/// The longest issuer name or key id.
pub const MAX_NAME_LEN: usize = 253;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a ticket is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket.
    #[error("malformed ticket: {0}")]
    Malformed(#[from] PolicyError),
    /// No trusted key of this issuer has this id.
    #[error("no trusted key {kid:?} of issuer {issuer:?}")]
    UnknownKey {
        /// The issuer named.
        issuer: String,
        /// The key id named.
        kid: String,
    },
    /// The signature is not the issuer's.
    #[error("the issuer's signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(i64),
    /// The proof does not bind the ticket to this recipient and message.
    #[error("the ticket is not bound to this recipient and message")]
    BadProof,
}

/// What the server signs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The issuing server's name (a domain name).
    pub issuer: String,
    /// The id of the issuer's key that signed it.
    pub kid: String,
    /// A random serial, unique per issuer.
    pub serial: [u8; 16],
    /// The ticket is void after this time (Unix seconds).
    pub expires: i64,
    /// Ed25519 signature of [`Ticket::signed_text`].
    pub sig: [u8; 64],
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn bad(tag: &str, value: &str, why: &'static str) -> TicketError {
    TicketError::Malformed(PolicyError::BadValue {
        tag: tag.to_owned(),
        value: value.chars().take(64).collect(),
        why,
    })
}

impl Ticket {
    /// The text the signature covers: `v=PT1; iss=…; kid=…; ser=…; exp=…`.
    pub fn signed_text(&self) -> String {
        format!(
            "v={VERSION}; iss={}; kid={}; ser={}; exp={}",
            self.issuer,
            self.kid,
            B64.encode(self.serial),
            self.expires
        )
    }

    /// The serial as it is written (base64url, 22 characters).
    pub fn serial_text(&self) -> String {
        B64.encode(self.serial)
    }

    /// Parses a ticket from split tags (every tag known: `v`, `iss`, `kid`, `ser`, `exp`, `sig`,
    /// and `rcpt`/`bind`/`proof` left to the caller).
    fn from_tags(tags: &[(&str, &str)]) -> Result<Ticket, TicketError> {
        match tags.first() {
            Some(("v", v)) if *v == VERSION => {}
            _ => {
                return Err(TicketError::Malformed(PolicyError::BadValue {
                    tag: "v".into(),
                    value: String::new(),
                    why: "a ticket starts with v=PT1",
                }));
            }
        }
        let get = |name: &'static str| {
            tags.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or(TicketError::Malformed(PolicyError::Missing(name)))
        };
        for (n, _) in &tags[1..] {
            if !["iss", "kid", "ser", "exp", "sig", "rcpt", "bind", "proof"].contains(n) {
                return Err(TicketError::Malformed(PolicyError::Malformed(
                    (*n).to_owned(),
                )));
            }
        }
        let issuer = get("iss")?;
        if !name_ok(issuer) {
            return Err(bad("iss", issuer, "not a domain name"));
        }
        let kid = get("kid")?;
        if !name_ok(kid) {
            return Err(bad("kid", kid, "not a key id"));
        }
        let ser = get("ser")?;
        let serial: [u8; 16] = decode(ser, 22).ok_or_else(|| bad("ser", ser, "not a serial"))?;
        let exp = get("exp")?;
        let expires = i64::from(number("exp", exp, 0, u32::MAX)?);
        let sig_text = get("sig")?;
        let sig: [u8; 64] =
            decode(sig_text, 86).ok_or_else(|| bad("sig", sig_text, "not a signature"))?;
        Ok(Ticket {
            issuer: issuer.to_owned(),
            kid: kid.to_owned(),
            serial,
            expires,
            sig,
        })
    }

    /// Parses a ticket (`v=PT1; iss=…; kid=…; ser=…; exp=…; sig=…`).
    pub fn parse(text: &str) -> Result<Ticket, TicketError> {
        let tags = split_tags(text.trim())?;
        if tags
            .iter()
            .any(|(n, _)| matches!(*n, "rcpt" | "bind" | "proof"))
        {
            return Err(TicketError::Malformed(PolicyError::Malformed(
                "rcpt, bind or proof in a bare ticket".into(),
            )));
        }
        Ticket::from_tags(&tags)
    }

    /// Checks the ticket offline: signed by a trusted key of its issuer, not expired at `now`.
    pub fn verify(&self, keys: &TrustedKeys, now: i64) -> Result<(), TicketError> {
        let key = keys
            .get(&self.issuer, &self.kid)
            .ok_or_else(|| TicketError::UnknownKey {
                issuer: self.issuer.clone(),
                kid: self.kid.clone(),
            })?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.sig);
        key.verify_strict(self.signed_text().as_bytes(), &sig)
            .map_err(|_| TicketError::BadSignature)?;
        if now > self.expires {
            return Err(TicketError::Expired(self.expires));
        }
        Ok(())
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; sig={}", self.signed_text(), B64.encode(self.sig))
    }
}

fn decode<const N: usize>(s: &str, len: usize) -> Option<[u8; N]> {
    if s.len() != len {
        return None;
    }
    B64.decode(s).ok()?.try_into().ok()
}

/// A ticket server's signing side: its name, key id, Ed25519 key and the secret from which
/// each ticket's secret is derived.
pub struct Issuer {
    /// The server's name, written in every ticket.
    pub name: String,
    /// The id of `key`.
    pub kid: String,
    key: SigningKey,
    secret: [u8; 32],
}

impl Issuer {
    /// An issuer from its 32-byte Ed25519 seed and its 32-byte ticket secret.
    pub fn new(
        name: &str,
        kid: &str,
        seed: [u8; 32],
        secret: [u8; 32],
    ) -> Result<Self, TicketError> {
        if !name_ok(name) {
            return Err(bad("iss", name, "not a domain name"));
        }
        if !name_ok(kid) {
            return Err(bad("kid", kid, "not a key id"));
        }
        Ok(Issuer {
            name: name.to_owned(),
            kid: kid.to_owned(),
            key: SigningKey::from_bytes(&seed),
            secret,
        })
    }

    /// The issuer whose key file is `path` (64 bytes: the Ed25519 seed, then the ticket
    /// secret), made with mode 600 when missing. A file others may read is refused. The key id
    /// is derived from the public key (`k` and 8 characters of its SHA-256), so every process
    /// reading one key file names the same key.
    pub fn from_key_file(name: &str, path: &std::path::Path) -> std::io::Result<Issuer> {
        use std::io::Write as _;
        use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
        let bytes = match std::fs::read(path) {
            Ok(b) => {
                let mode = std::fs::metadata(path)?.mode();
                if mode & 0o077 != 0 {
                    return Err(std::io::Error::other(format!(
                        "{}: others may read this key file (mode {:o}): chmod 600 it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                b
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = vec![0u8; 64];
                getrandom::fill(&mut b).map_err(std::io::Error::other)?;
                let tmp = path.with_extension("tmp-new");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&b)?;
                f.sync_all()?;
                drop(f);
                // Never replace a key another process made meanwhile.
                std::fs::hard_link(&tmp, path)?;
                std::fs::remove_file(&tmp)?;
                std::fs::read(path)?
            }
            Err(e) => return Err(e),
        };
        if bytes.len() != 64 {
            return Err(std::io::Error::other(format!(
                "{}: not a ticket key file (64 bytes)",
                path.display()
            )));
        }
        let seed: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        let secret: [u8; 32] = bytes[32..].try_into().expect("32 bytes");
        let public = SigningKey::from_bytes(&seed).verifying_key();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(public.as_bytes());
        let kid = format!("k{}", &B64.encode(digest)[..8]);
        Issuer::new(name, &kid, seed, secret).map_err(std::io::Error::other)
    }

    /// The public key receivers trust.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The key record receivers read (`v=PT1; kid=…; k=ed25519; p=…`), as published in the DNS
    /// at `_postage-ticket.ISSUER` and at the server's well-known URL.
    pub fn key_record(&self) -> String {
        format!(
            "v={VERSION}; kid={}; k=ed25519; p={}",
            self.kid,
            B64.encode(self.public_key().as_bytes())
        )
    }

    /// Signs a new ticket with `serial`, void after `expires`; returns it with its secret.
    pub fn issue(&self, serial: [u8; 16], expires: i64) -> (Ticket, [u8; 32]) {
        let mut t = Ticket {
            issuer: self.name.clone(),
            kid: self.kid.clone(),
            serial,
            expires,
            sig: [0; 64],
        };
        t.sig = self.key.sign(t.signed_text().as_bytes()).to_bytes();
        let secret = self.ticket_secret(&t.serial);
        (t, secret)
    }

    /// The secret of the ticket with `serial`: HMAC-SHA-256 of the serial under the server's
    /// secret.
    pub fn ticket_secret(&self, serial: &[u8; 16]) -> [u8; 32] {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.secret).expect("any key length");
        m.update(b"pennyblack ticket secret\0");
        m.update(serial);
        m.finalize().into_bytes().into()
    }
}

/// The issuers' public keys a receiver trusts, by (issuer, key id).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, String, VerifyingKey)>,
}

impl TrustedKeys {
    /// No key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` as `issuer`'s key `kid`.
    pub fn add(&mut self, issuer: &str, kid: &str, key: VerifyingKey) -> &mut Self {
        self.keys
            .push((issuer.to_ascii_lowercase(), kid.to_owned(), key));
        self
    }

    /// Trusts the key of a key record (`v=PT1; kid=…; k=ed25519; p=…`) as `issuer`'s.
    pub fn add_record(&mut self, issuer: &str, record: &str) -> Result<&mut Self, TicketError> {
        let tags = split_tags(record.trim())?;
        if tags.first() != Some(&("v", VERSION)) {
            return Err(bad("v", "", "a key record starts with v=PT1"));
        }
        let get = |name: &'static str| {
            tags.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or(TicketError::Malformed(PolicyError::Missing(name)))
        };
        let kid = get("kid")?;
        if !name_ok(kid) {
            return Err(bad("kid", kid, "not a key id"));
        }
        if get("k")? != "ed25519" {
            return Err(bad("k", get("k")?, "only ed25519 keys"));
        }
        let p = get("p")?;
        let bytes: [u8; 32] = decode(p, 43).ok_or_else(|| bad("p", p, "not an Ed25519 key"))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| bad("p", p, "not an Ed25519 key"))?;
        Ok(self.add(issuer, kid, key))
    }

    fn get(&self, issuer: &str, kid: &str) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|(i, k, _)| i.eq_ignore_ascii_case(issuer) && k == kid)
            .map(|(_, _, key)| key)
    }
}

/// A ticket as a message carries it: for one recipient, with the proof that binds it to that
/// recipient and to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The ticket.
    pub ticket: Ticket,
    /// The recipient it pays for.
    pub rcpt: String,
    /// The message's binding the proof covers ([`crate::bind::Binding::encode`]: which main
    /// header fields it covers and their digest with the body's), so that a receiver can
    /// compute the same binding from the message it received.
    pub binding: String,
    /// HMAC-SHA-256 under the ticket secret of the recipient and the message binding.
    pub proof: [u8; 32],
}

/// The proof for `rcpt` (compared as a mail address) and `binding` (the message's
/// [`crate::bind::Binding::encode`]) under a ticket secret.
pub fn proof(secret: &[u8; 32], rcpt: &str, binding: &str) -> [u8; 32] {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(b"pennyblack ticket proof\0");
    m.update(normalize_address(rcpt).as_bytes());
    m.update(b"\0");
    m.update(binding.as_bytes());
    m.finalize().into_bytes().into()
}

impl Carried {
    /// Attaches `ticket` for `rcpt` to the message whose binding is `binding`.
    pub fn new(
        ticket: Ticket,
        secret: &[u8; 32],
        rcpt: &str,
        binding: &str,
    ) -> Result<Self, TicketError> {
        if !rcpt_ok(rcpt) {
            return Err(bad("rcpt", rcpt, "not an address a ticket can carry"));
        }
        if crate::bind::Binding::decode(binding).is_none() {
            return Err(bad("bind", binding, "not a message binding"));
        }
        Ok(Carried {
            proof: proof(secret, rcpt, binding),
            ticket,
            rcpt: rcpt.to_owned(),
            binding: binding.to_owned(),
        })
    }

    /// Parses the value of an `X-Postage-Ticket:` field (unfolded).
    pub fn parse(text: &str) -> Result<Self, TicketError> {
        let text = text.replace("\r\n", "").replace('\n', "");
        let tags = split_tags(text.trim_matches([' ', '\t']))?;
        let ticket = Ticket::from_tags(&tags)?;
        let get = |name: &'static str| {
            tags.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or(TicketError::Malformed(PolicyError::Missing(name)))
        };
        let rcpt = get("rcpt")?;
        if !rcpt_ok(rcpt) {
            return Err(bad("rcpt", rcpt, "not an address"));
        }
        let binding = get("bind")?;
        if crate::bind::Binding::decode(binding).is_none() {
            return Err(bad("bind", binding, "not a message binding"));
        }
        let p = get("proof")?;
        let proof = decode(p, 43).ok_or_else(|| bad("proof", p, "not a proof"))?;
        Ok(Carried {
            ticket,
            rcpt: rcpt.to_owned(),
            binding: binding.to_owned(),
            proof,
        })
    }

    /// Checks the proof (in constant time) under the ticket secret: what the server does
    /// before it cancels the ticket for `rcpt` and the message whose binding is `binding`.
    pub fn check_proof(
        &self,
        secret: &[u8; 32],
        rcpt: &str,
        binding: &str,
    ) -> Result<(), TicketError> {
        let expected = proof(secret, rcpt, binding);
        let same_rcpt = normalize_address(rcpt) == normalize_address(&self.rcpt);
        if same_rcpt
            && binding == self.binding
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                &expected[..],
                &self.proof[..],
            ))
        {
            Ok(())
        } else {
            Err(TicketError::BadProof)
        }
    }
}

fn rcpt_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 254 && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b';')
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; rcpt={}; bind={}; proof={}",
            self.ticket,
            self.rcpt,
            self.binding,
            B64.encode(self.proof)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Issuer {
        Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap()
    }

    fn trusted() -> TrustedKeys {
        let mut k = TrustedKeys::new();
        k.add_record("tickets.example.org", &issuer().key_record())
            .unwrap();
        k
    }

    #[test]
    fn a_ticket_verifies_offline_and_round_trips() {
        let (t, _) = issuer().issue([9; 16], 2_000_000_000);
        let text = t.to_string();
        assert!(text.starts_with("v=PT1; iss=tickets.example.org; kid=k1; ser="));
        let back = Ticket::parse(&text).unwrap();
        assert_eq!(back, t);
        back.verify(&trusted(), 1_900_000_000).unwrap();
        assert_eq!(
            back.verify(&trusted(), 2_000_000_001),
            Err(TicketError::Expired(2_000_000_000))
        );
        assert!(matches!(
            back.verify(&TrustedKeys::new(), 0),
            Err(TicketError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_changed_ticket_fails_its_signature() {
        let (t, _) = issuer().issue([9; 16], 2_000_000_000);
        let text = t.to_string();
        for (from, to) in [("exp=2000000000", "exp=2100000000"), ("ser=CQ", "ser=CA")] {
            let forged = Ticket::parse(&text.replacen(from, to, 1)).unwrap();
            assert_eq!(
                forged.verify(&trusted(), 0),
                Err(TicketError::BadSignature),
                "{from}"
            );
        }
        // Signed by another key under the trusted key id.
        let other = Issuer::new("tickets.example.org", "k1", [3; 32], [2; 32]).unwrap();
        let (t2, _) = other.issue([9; 16], 2_000_000_000);
        assert_eq!(t2.verify(&trusted(), 0), Err(TicketError::BadSignature));
        // Another issuer's name with our key id: unknown.
        let evil = Issuer::new("evil.example", "k1", [1; 32], [2; 32]).unwrap();
        assert!(matches!(
            evil.issue([9; 16], 2_000_000_000).0.verify(&trusted(), 0),
            Err(TicketError::UnknownKey { .. })
        ));
    }

    /// Two message bindings (any canonical `bind=` value).
    const B1: &str = "_AAAAAAAAAAAAAAAAAAAAAA";
    const B2: &str = "_AAAAAAAAAAAAAAAAAAAAAQ";

    #[test]
    fn the_proof_binds_recipient_and_message() {
        let iss = issuer();
        let (t, secret) = iss.issue([9; 16], 2_000_000_000);
        let c = Carried::new(t, &secret, "Bob@Example.net", B1).unwrap();
        let back = Carried::parse(&c.to_string()).unwrap();
        assert_eq!(back, c);
        // The server derives the same secret from the serial.
        let s = iss.ticket_secret(&back.ticket.serial);
        back.check_proof(&s, "bob@example.net", B1).unwrap();
        // Lifted: another recipient, another message, or a rewritten rcpt tag.
        assert_eq!(
            back.check_proof(&s, "carol@example.net", B1),
            Err(TicketError::BadProof)
        );
        assert_eq!(
            back.check_proof(&s, "bob@example.net", B2),
            Err(TicketError::BadProof)
        );
        let relabelled = Carried::parse(
            &c.to_string()
                .replace("rcpt=Bob@Example.net", "rcpt=carol@example.net"),
        )
        .unwrap();
        assert_eq!(
            relabelled.check_proof(&s, "carol@example.net", B1),
            Err(TicketError::BadProof)
        );
        // A rewritten bind tag: the receiver's binding no longer matches the proof.
        let rebound = Carried::parse(&c.to_string().replace(B1, B2)).unwrap();
        assert_eq!(
            rebound.check_proof(&s, "bob@example.net", B2),
            Err(TicketError::BadProof)
        );
        // Without the secret (another ticket's), no proof.
        let other = iss.ticket_secret(&[8; 16]);
        assert_eq!(
            back.check_proof(&other, "bob@example.net", B1),
            Err(TicketError::BadProof)
        );
    }

    #[test]
    fn malformed_tickets_are_refused() {
        let (t, s) = issuer().issue([9; 16], 2_000_000_000);
        let text = t.to_string();
        let carried = Carried::new(t, &s, "bob@example.net", B1)
            .unwrap()
            .to_string();
        for bad in [
            String::new(),
            text.replace("v=PT1", "v=PT2"),
            text.replace("iss=tickets.example.org", "iss=tick ets"),
            text.replace("iss=tickets.example.org", "iss=a/b"),
            text.replace("; kid=k1", ""),
            text.replace("exp=2000000000", "exp=-5"),
            text.replace("exp=2000000000", "exp=99999999999"),
            format!("{text}; extra=1"),
            format!("{text}; sig=x"),
            text.replace("ser=", "ser=AA"),
            carried.clone(), // a carried ticket is not a bare one
        ] {
            assert!(Ticket::parse(&bad).is_err(), "{bad}");
        }
        for bad in [
            text.clone(),
            carried.replace("; rcpt=bob@example.net", ""),
            carried.replace("proof=", "proof=A"),
            carried.replace("; bind=", "; bind=A"),
            carried.replace(&format!("; bind={B1}"), ""),
        ] {
            assert!(Carried::parse(&bad).is_err(), "{bad}");
        }
        assert!(Carried::new(Ticket::parse(&text).unwrap(), &s, "a;b@x", B1).is_err());
        assert!(Carried::new(Ticket::parse(&text).unwrap(), &s, "b@x", "b").is_err());
    }

    #[test]
    fn key_records_are_checked() {
        let mut k = TrustedKeys::new();
        let rec = issuer().key_record();
        assert!(
            k.add_record("x", &rec.replace("k=ed25519", "k=rsa"))
                .is_err()
        );
        assert!(k.add_record("x", &rec.replace("v=PT1", "v=DKIM1")).is_err());
        assert!(
            k.add_record("x", "v=PT1; kid=k1; k=ed25519; p=AAAA")
                .is_err()
        );
        assert!(k.add_record("x", &rec).is_ok());
    }
}
