//! Postage challenges: the machine-readable part of the message a receiver sends to an
//! authenticated sender whose mail it refused for postage, and the answer that comes back with
//! the re-sent message (the grammar is in docs/FORMAT.md, "Postage challenge").
//!
//! A challenge is a tag list in a `Postage-Challenge:` header field: the requirement in the
//! policy syntax ([`crate::policy`]), then who must be paid for, which message, until when,
//! and a MAC that only the receiver can make (HMAC-SHA-256 under its own key):
//!
//! ```text
//! Postage-Challenge: v=PB1; bits=22; from=alice@example.org; rcpt=bob@example.net;
//!  id=1234@mail.example.org; msg=6kS0...; exp=1764979200; mac=Zk3...
//! ```
//!
//! The sender's answering software re-sends the original message with stamps that meet the
//! requirement and copies the challenge into a `Postage-Answer:` field, by which the receiver
//! recognises an answer to its own challenge (and never challenges it again).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};

use crate::policy::{PolicyError, Requirement, split_tags};

/// The header field that carries a challenge.
pub const CHALLENGE_FIELD: &str = "Postage-Challenge";
/// The header field in which a re-sent message carries the challenge it answers.
pub const ANSWER_FIELD: &str = "Postage-Answer";
/// The most recipients one challenge names.
pub const MAX_RCPTS: usize = 16;
/// The longest recipient address or message id a challenge carries.
pub const MAX_ID_LEN: usize = 254;
/// The least length of a MAC key, in bytes.
pub const MIN_KEY_LEN: usize = 16;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A receiver's challenge: what it asks, for whom, for which message, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// What each stamp must meet.
    pub requirement: Requirement,
    /// The envelope sender challenged (`from=`): an answer counts only from that sender.
    pub from: String,
    /// The recipients who were not paid for (envelope addresses), at most [`MAX_RCPTS`].
    pub rcpts: Vec<String>,
    /// The original message's Message-ID without its angle brackets (`id=`), when it has one.
    pub message_id: Option<String>,
    /// The original body's digest, SHA-256 in DKIM relaxed canonicalization (`msg=`, as in
    /// [`crate::bind::body_digest`]).
    pub digest: [u8; 32],
    /// When the challenge expires, Unix seconds (`exp=`).
    pub expires: i64,
    /// HMAC-SHA-256 of [`Challenge::signed_text`] under the receiver's key (`mac=`).
    pub mac: [u8; 32],
}

/// Why a challenge is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The text is not a challenge.
    #[error("malformed challenge: {0}")]
    Malformed(#[from] PolicyError),
    /// A value cannot be carried (an address or id with `,`, `;`, white space or non-ASCII,
    /// too long, too many recipients, none).
    #[error("cannot be carried in a challenge: {0}")]
    Unrepresentable(&'static str),
    /// The MAC is not the receiver's.
    #[error("the MAC does not match")]
    BadMac,
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(i64),
    /// The key is shorter than [`MIN_KEY_LEN`].
    #[error("a challenge key must have at least {MIN_KEY_LEN} bytes")]
    ShortKey,
}

fn carriable(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b';' && b != b',')
}

impl Challenge {
    /// Makes a challenge and its MAC under `key`. Message ids are given without angle brackets.
    pub fn issue(
        key: &[u8],
        requirement: Requirement,
        from: String,
        rcpts: Vec<String>,
        message_id: Option<String>,
        digest: [u8; 32],
        expires: i64,
    ) -> Result<Challenge, ChallengeError> {
        if key.len() < MIN_KEY_LEN {
            return Err(ChallengeError::ShortKey);
        }
        if rcpts.is_empty() || rcpts.len() > MAX_RCPTS {
            return Err(ChallengeError::Unrepresentable("the number of recipients"));
        }
        if !rcpts.iter().all(|r| carriable(r, MAX_ID_LEN)) {
            return Err(ChallengeError::Unrepresentable("a recipient address"));
        }
        if !carriable(&from, MAX_ID_LEN) {
            return Err(ChallengeError::Unrepresentable("the sender's address"));
        }
        if message_id
            .as_deref()
            .is_some_and(|m| !carriable(m, MAX_ID_LEN))
        {
            return Err(ChallengeError::Unrepresentable("the message id"));
        }
        let mut c = Challenge {
            requirement,
            from,
            rcpts,
            message_id,
            digest,
            expires: expires.max(0),
            mac: [0; 32],
        };
        c.mac = mac_of(key, &c.signed_text())?;
        // What `parse` takes back: a challenge longer than a record is never sent.
        if c.to_string().len() > crate::policy::MAX_RECORD_LEN {
            return Err(ChallengeError::Unrepresentable(
                "the challenge (longer than 1024 octets)",
            ));
        }
        Ok(c)
    }

    /// The text the MAC covers: the canonical tag list without `mac=`.
    pub fn signed_text(&self) -> String {
        let mut s = self.requirement.to_string();
        s.push_str("; from=");
        s.push_str(&self.from);
        s.push_str("; rcpt=");
        s.push_str(&self.rcpts.join(","));
        if let Some(id) = &self.message_id {
            s.push_str("; id=");
            s.push_str(id);
        }
        s.push_str("; msg=");
        s.push_str(&B64.encode(self.digest));
        s.push_str(&format!("; exp={}", self.expires));
        s
    }

    /// Parses a challenge (the value of a `Postage-Challenge:` or `Postage-Answer:` field,
    /// unfolded). Every tag must be known; `from`, `rcpt`, `msg`, `exp` and `mac` are required.
    pub fn parse(text: &str) -> Result<Challenge, ChallengeError> {
        // Unfolded: a line break followed by white space is white space.
        let text = text.replace("\r\n", "").replace('\n', "");
        let tags = split_tags(text.trim_matches([' ', '\t']))?;
        let ours = ["from", "rcpt", "id", "msg", "exp", "mac"];
        let policy: Vec<(&str, &str)> = tags
            .iter()
            .copied()
            .filter(|(n, _)| !ours.contains(n))
            .collect();
        let requirement = Requirement::from_tags(&policy, |_| false)?;
        let get = |name: &'static str| tags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let missing = |name: &'static str| ChallengeError::Malformed(PolicyError::Missing(name));
        let bad = |tag: &str, value: &str, why: &'static str| {
            ChallengeError::Malformed(PolicyError::BadValue {
                tag: tag.to_owned(),
                value: value.chars().take(64).collect(),
                why,
            })
        };
        let from = get("from").ok_or_else(|| missing("from"))?;
        if !carriable(from, MAX_ID_LEN) {
            return Err(bad("from", from, "not an address"));
        }
        let rcpt = get("rcpt").ok_or_else(|| missing("rcpt"))?;
        let rcpts: Vec<String> = rcpt.split(',').map(str::to_owned).collect();
        if rcpts.len() > MAX_RCPTS || !rcpts.iter().all(|r| carriable(r, MAX_ID_LEN)) {
            return Err(bad("rcpt", rcpt, "not a list of addresses"));
        }
        let message_id = match get("id") {
            Some(id) if carriable(id, MAX_ID_LEN) => Some(id.to_owned()),
            Some(id) => return Err(bad("id", id, "not a message id")),
            None => None,
        };
        let digest = decode32(get("msg").ok_or_else(|| missing("msg"))?)
            .ok_or_else(|| bad("msg", get("msg").unwrap_or(""), "not a 32-byte digest"))?;
        let exp = get("exp").ok_or_else(|| missing("exp"))?;
        if exp.len() > 12 || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("exp", exp, "not a time"));
        }
        let expires: i64 = exp.parse().map_err(|_| bad("exp", exp, "not a time"))?;
        let mac_text = get("mac").ok_or_else(|| missing("mac"))?;
        let mac = decode32(mac_text).ok_or_else(|| bad("mac", mac_text, "not a 32-byte MAC"))?;
        Ok(Challenge {
            requirement,
            from: from.to_owned(),
            rcpts,
            message_id,
            digest,
            expires,
            mac,
        })
    }

    /// Checks the MAC under `key` (in constant time) and the expiry against `now`.
    pub fn verify(&self, key: &[u8], now: i64) -> Result<(), ChallengeError> {
        if key.len() < MIN_KEY_LEN {
            return Err(ChallengeError::ShortKey);
        }
        let mut m =
            <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| ChallengeError::ShortKey)?;
        m.update(self.signed_text().as_bytes());
        m.verify_slice(&self.mac)
            .map_err(|_| ChallengeError::BadMac)?;
        if now > self.expires {
            return Err(ChallengeError::Expired(self.expires));
        }
        Ok(())
    }
}

fn mac_of(key: &[u8], text: &str) -> Result<[u8; 32], ChallengeError> {
    let mut m =
        <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| ChallengeError::ShortKey)?;
    m.update(text.as_bytes());
    Ok(m.finalize().into_bytes().into())
}

fn decode32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 43 {
        return None;
    }
    B64.decode(s).ok()?.try_into().ok()
}

impl fmt::Display for Challenge {
    /// The canonical tag list with its MAC last.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; mac={}", self.signed_text(), B64.encode(self.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sample() -> Challenge {
        Challenge::issue(
            KEY,
            Requirement::parse("v=PB1; bits=22; alg=sha256").unwrap(),
            "alice@example.org".into(),
            vec!["bob@example.net".into(), "carol@example.net".into()],
            Some("1234@mail.example.org".into()),
            [7; 32],
            1_764_979_200,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_verify() {
        let c = sample();
        let text = c.to_string();
        assert!(text.starts_with("v=PB1; bits=22; alg=sha256; from=alice@example.org; rcpt=bob@example.net,carol@example.net; id=1234@mail.example.org; msg="));
        let back = Challenge::parse(&text).unwrap();
        assert_eq!(back, c);
        back.verify(KEY, 1_764_979_200).unwrap();
        assert_eq!(
            back.verify(KEY, 1_764_979_201),
            Err(ChallengeError::Expired(1_764_979_200))
        );
        assert_eq!(
            back.verify(b"another key of 32 bytes, exactly", 0),
            Err(ChallengeError::BadMac)
        );
        // Folded, as in a header field.
        let folded = text.replace("; msg=", ";\r\n msg=");
        assert_eq!(Challenge::parse(&folded).unwrap(), c);
    }

    #[test]
    fn every_change_breaks_the_mac() {
        let c = sample();
        let text = c.to_string();
        for (from, to) in [
            ("bits=22", "bits=12"),
            ("alg=sha256", "alg=sha1"),
            ("bob@example.net", "eve@example.net"),
            ("alice@example.org", "mallory@example.org"),
            ("1234@mail", "1235@mail"),
            ("exp=1764979200", "exp=1864979200"),
        ] {
            let forged = Challenge::parse(&text.replace(from, to)).unwrap();
            assert_eq!(forged.verify(KEY, 0), Err(ChallengeError::BadMac), "{from}");
        }
        let mut forged = c.clone();
        forged.digest[0] ^= 1;
        assert_eq!(forged.verify(KEY, 0), Err(ChallengeError::BadMac));
        // Dropping the id changes the signed text too.
        let mut forged = c;
        forged.message_id = None;
        assert_eq!(forged.verify(KEY, 0), Err(ChallengeError::BadMac));
    }

    #[test]
    fn malformed_challenges_are_refused() {
        let text = sample().to_string();
        let without = |tag: &str| {
            text.split("; ")
                .filter(|t| !t.starts_with(&format!("{tag}=")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        for t in ["from", "rcpt", "msg", "exp", "mac", "v", "bits"] {
            assert!(Challenge::parse(&without(t)).is_err(), "without {t}");
        }
        assert!(Challenge::parse(&without("id")).is_ok());
        for bad in [
            format!("{text}; extra=1"),
            text.replace("exp=1764979200", "exp=-1"),
            text.replace("exp=1764979200", "exp=99999999999999"),
            text.replace("bob@example.net", ""),
            text.replace("msg=", "msg=AAAA"),
            format!("{text}; mac=x"),
        ] {
            assert!(Challenge::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_cannot_be_carried_is_refused_at_issue() {
        let req = Requirement::bits(20);
        let issue = |rcpts: Vec<String>, id: Option<String>| {
            Challenge::issue(KEY, req.clone(), "a@x".into(), rcpts, id, [0; 32], 0)
        };
        assert!(issue(vec!["a,b@x".into()], None).is_err());
        assert!(issue(vec!["a;b@x".into()], None).is_err());
        assert!(issue(vec!["a b@x".into()], None).is_err());
        assert!(issue(vec![], None).is_err());
        assert!(issue(vec!["a@x".into(); MAX_RCPTS + 1], None).is_err());
        assert!(issue(vec!["a@x".into()], Some("x;y".into())).is_err());
        assert!(issue(vec!["a@x".into()], Some("ok@id".into())).is_ok());
        assert!(
            Challenge::issue(
                KEY,
                req.clone(),
                "a b@x".into(),
                vec!["a@x".into()],
                None,
                [0; 32],
                0
            )
            .is_err()
        );
        assert_eq!(
            Challenge::issue(
                b"short",
                req.clone(),
                "a@x".into(),
                vec!["a@x".into()],
                None,
                [0; 32],
                0
            ),
            Err(ChallengeError::ShortKey)
        );
    }

    /// Review: whatever `issue` makes, `parse` takes back unchanged (16 long addresses are
    /// over the 1024 octets a challenge may have, and refused at issue, never sent).
    #[test]
    fn every_issued_challenge_parses_back() {
        let req = Requirement::parse("v=PB1; bits=22; alg=sha256,blake3,sha1").unwrap();
        for (n, len) in [(1, 254), (4, 150), (8, 100), (16, 40), (16, 60), (16, 254)] {
            let rcpts: Vec<String> = (0..n)
                .map(|i| format!("{i:02}{}@example.net", "x".repeat(len - 14)))
                .collect();
            match Challenge::issue(
                KEY,
                req.clone(),
                "a".repeat(200) + "@example.org",
                rcpts,
                Some("1234@mail.example.org".into()),
                [7; 32],
                1_764_979_200,
            ) {
                Ok(c) => assert_eq!(Challenge::parse(&c.to_string()), Ok(c), "{n} x {len}"),
                Err(e) => assert!(
                    matches!(e, ChallengeError::Unrepresentable(_)) && n * len > 600,
                    "{n} x {len}: {e}"
                ),
            }
        }
    }
}
