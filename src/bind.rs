//! What ties a stamp to one delivery: its message (a digest of the body and the main header
//! fields in the extension field) and its recipient (the address, compared as a mail address,
//! or a keyed digest of it for a recipient who must not be named in the header). The rules are
//! the "Binding" and "Hidden recipients" paragraphs of docs/FORMAT.md.

use base64::Engine;
use sha2::Digest as _;

use crate::canon::Canon;
use crate::error::VerifyError;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The extension entry that binds a stamp to its message: `bind=MASK DIGEST`.
pub const BIND_EXT: &str = "bind";

/// How a hidden recipient's resource starts: `bcc.` then 22 base64url characters.
pub const HIDDEN_PREFIX: &str = "bcc.";

/// The header fields a binding can cover, in the order they are hashed; bit i of the mask is
/// field i. A field absent when the stamp was minted is left out of the mask, so a relay that
/// adds it later does not break the binding.
pub const BOUND_FIELDS: [&str; 6] = ["from", "to", "cc", "subject", "date", "message-id"];

/// A stamp's binding to its message: which of [`BOUND_FIELDS`] it covers, and the first 128 bits
/// of SHA-256 over a domain tag, the mask, every instance of each covered field (top to bottom,
/// in DKIM's relaxed header canonicalization, each field's instances followed by a zero byte)
/// and SHA-256 of the body in DKIM's relaxed body canonicalization. White space changes in transit and LF/CRLF keep it; any other change to
/// the body or to a covered field (a field added, removed or changed) breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Bit i set: [`BOUND_FIELDS`]`[i]` is covered.
    pub mask: u8,
    /// The digest.
    pub digest: [u8; 16],
}

/// A message as a binding sees it: the raw instances of a header field, and the body.
pub trait BindingSource {
    /// The raw instances (name, colon, value, folding, line ending) of the field `name`
    /// (lower case), top to bottom.
    fn fields(&self, name: &str) -> Vec<&[u8]>;
    /// The body.
    fn body(&self) -> &[u8];
    /// SHA-256 of the body in relaxed canonicalization. An implementation that checks many
    /// stamps of one message computes it once (the body is the costly part).
    fn body_digest(&self) -> [u8; 32] {
        body_digest(self.body())
    }
}

/// SHA-256 of a body in DKIM's relaxed body canonicalization, streamed.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    crate::canon::body_hash(Canon::Relaxed, body, None)
}

impl Binding {
    /// The binding of `msg` over the fields it has of [`BOUND_FIELDS`].
    pub fn of(msg: &dyn BindingSource) -> Binding {
        let mask = BOUND_FIELDS
            .iter()
            .enumerate()
            .filter(|(_, f)| !msg.fields(f).is_empty())
            .fold(0u8, |m, (i, _)| m | 1 << i);
        Binding::with_mask(msg, mask)
    }

    /// The binding of `msg` over the fields of `mask` (what a checker computes to compare).
    pub fn with_mask(msg: &dyn BindingSource, mask: u8) -> Binding {
        let mut h = sha2::Sha256::new();
        h.update(b"pennyblack bind 1\0");
        h.update([mask]);
        for (i, name) in BOUND_FIELDS.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            for raw in msg.fields(name) {
                h.update(crate::canon::header(Canon::Relaxed, raw));
            }
            h.update(b"\0");
        }
        h.update(msg.body_digest());
        let d = h.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&d[..16]);
        Binding { mask, digest }
    }

    /// The value written after `bind=`: the mask as one base64url character, then the digest
    /// as 22 (23 characters, no padding).
    pub fn encode(&self) -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut s = String::with_capacity(23);
        s.push(alphabet[usize::from(self.mask & 63)] as char);
        s.push_str(&B64URL.encode(self.digest));
        s
    }

    /// Reads a value written by [`encode`](Self::encode); `None` for anything else.
    pub fn decode(s: &str) -> Option<Binding> {
        if s.len() != 23 || !s.is_ascii() {
            return None;
        }
        let (m, d) = s.split_at(1);
        let mask = match m.as_bytes()[0] {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'a'..=b'z' => c - b'a' + 26,
            c @ b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        let v = B64URL.decode(d).ok()?;
        let digest: [u8; 16] = v.try_into().ok()?;
        // Only the canonical spelling (the last character's unused bits zero) is accepted.
        (B64URL.encode(digest) == d).then_some(Binding { mask, digest })
    }

    /// The extension field `ext` with this binding added as its first entry.
    pub fn add_to_ext(&self, ext: &str) -> String {
        if ext.is_empty() {
            format!("{BIND_EXT}={}", self.encode())
        } else {
            format!("{BIND_EXT}={};{ext}", self.encode())
        }
    }
}

/// The binding an extension field carries: `Ok(None)` without a `bind` entry,
/// [`VerifyError::BadBinding`] when the entry is repeated or its value is not one canonical
/// binding (such a stamp is refused).
pub fn binding_of_ext(ext: &str) -> Result<Option<Binding>, VerifyError> {
    if ext.is_empty() {
        return Ok(None);
    }
    let mut found = None;
    for entry in ext.split(';') {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        if name != BIND_EXT {
            continue;
        }
        if found.is_some() {
            return Err(VerifyError::BadBinding);
        }
        found = Some(Binding::decode(value).ok_or(VerifyError::BadBinding)?);
    }
    Ok(found)
}

/// A mail address in the form addresses are compared in: the domain in lower case, the local
/// part unquoted when its quotes are not needed (`"bob"@x` is `bob@x`) and in lower case (as
/// hashcash compares resources, and as nearly every mail system treats local parts). Text
/// without `@` is lower-cased whole.
pub fn normalize_address(addr: &str) -> String {
    let addr = addr.trim();
    let Some(at) = addr.rfind('@') else {
        return addr.to_ascii_lowercase();
    };
    let (local, domain) = (&addr[..at], &addr[at + 1..]);
    // Trailing dots and white space in any mix go (the form is idempotent: normalizing twice
    // gives what normalizing once gave).
    let domain = domain
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_ascii_lowercase();
    let local = match local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .filter(|_| local.len() >= 2)
    {
        Some(quoted) => {
            let mut plain = String::with_capacity(quoted.len());
            let mut escaped = false;
            for c in quoted.chars() {
                if escaped || c != '\\' {
                    plain.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            if is_dot_atom(&plain) {
                plain
            } else {
                let mut q = String::from("\"");
                for c in plain.chars() {
                    if c == '"' || c == '\\' {
                        q.push('\\');
                    }
                    q.push(c);
                }
                q.push('"');
                q
            }
        }
        None => local.to_owned(),
    };
    format!("{}@{domain}", local.to_ascii_lowercase())
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// Whether two texts name the same mailbox (see [`normalize_address`]). No wildcards: `*` is a
/// character like any other.
pub fn same_address(a: &str, b: &str) -> bool {
    normalize_address(a) == normalize_address(b)
}

/// The resource of a stamp for a recipient who must not be named in clear: `bcc.` and the first
/// 128 bits of SHA-256 over a domain tag, the stamp's random field and the normalized address,
/// in base64url. Only someone who already knows (or guesses) the address can tell it is theirs.
pub fn hidden_resource(rand: &str, address: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b"pennyblack bcc 1\0");
    h.update(rand.as_bytes());
    h.update(b"\0");
    h.update(normalize_address(address).as_bytes());
    let d = h.finalize();
    format!("{HIDDEN_PREFIX}{}", B64URL.encode(&d[..16]))
}

/// Whether a resource has the form of a hidden one (`bcc.` and 22 characters).
pub fn is_hidden(resource: &str) -> bool {
    resource.len() == HIDDEN_LEN && resource.starts_with(HIDDEN_PREFIX)
}

/// The length of every [`hidden_resource`].
pub const HIDDEN_LEN: usize = HIDDEN_PREFIX.len() + 22;

/// Whether a stamp with this `resource` and `rand` pays for `address`: the resource is the
/// address itself, or its hidden form keyed by `rand`.
pub fn resource_names(resource: &str, rand: &str, address: &str) -> bool {
    if is_hidden(resource) {
        let want = hidden_resource(rand, address);
        return bool::from(subtle::ConstantTimeEq::ct_eq(
            want.as_bytes(),
            resource.as_bytes(),
        ));
    }
    same_address(resource, address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_as_mail_addresses_never_as_patterns() {
        assert!(same_address("Bob@Example.ORG", "bob@example.org"));
        assert!(same_address("\"bob\"@example.org", "bob@example.org"));
        assert!(same_address("\"b\\ob\"@example.org", "bob@example.org"));
        assert!(!same_address("\"b ob\"@example.org", "bob@example.org"));
        assert!(same_address(
            "\"b ob\"@example.org",
            "\"b\\ ob\"@EXAMPLE.org"
        ));
        assert!(!same_address("*", "bob@example.org"));
        assert!(!same_address("*@example.org", "bob@example.org"));
        assert!(same_address("*", "*"));
        assert!(!same_address("bob@example.org", "bob@example.org.evil"));
        // Found by the fuzzer: a domain ending in white space before a dot.
        for odd in ["a@\u{fffd}    . ", "a@x. .", " b@ ", "\"q r\"@x.", "x"] {
            let once = normalize_address(odd);
            assert_eq!(normalize_address(&once), once, "{odd:?}");
        }
    }

    #[test]
    fn hidden_resources_name_only_their_address() {
        let r = hidden_resource("AAAAsalt", "Bob@Example.org");
        assert_eq!(r.len(), HIDDEN_LEN);
        assert!(!r.contains("bob") && !r.contains(':'));
        assert!(resource_names(&r, "AAAAsalt", "bob@example.org"));
        assert!(!resource_names(&r, "AAAAsalt", "carol@example.org"));
        assert!(!resource_names(&r, "BBBBsalt", "bob@example.org"));
        assert_ne!(r, hidden_resource("BBBBsalt", "bob@example.org"));
    }

    struct Msg(Vec<(&'static str, &'static [u8])>, &'static [u8]);
    impl BindingSource for Msg {
        fn fields(&self, name: &str) -> Vec<&[u8]> {
            self.0
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, r)| *r)
                .collect()
        }
        fn body(&self) -> &[u8] {
            self.1
        }
    }

    #[test]
    fn bindings_cover_body_and_fields_and_refuse_doubles() {
        let m = Msg(
            vec![
                ("from", b"From: alice@example.org\r\n"),
                ("subject", b"Subject: lunch\r\n"),
            ],
            b"Hello\r\n",
        );
        let b = Binding::of(&m);
        assert_eq!(b.mask, 0b1001);
        // White space in transit keeps it.
        let same = Msg(
            vec![
                ("from", b"From:   alice@example.org\n"),
                ("subject", b"Subject: lunch \r\n"),
            ],
            b"Hello  \n\n",
        );
        assert_eq!(Binding::with_mask(&same, b.mask), b);
        // Another body, another From, a second From, or another Subject break it; a field
        // outside the mask does not.
        for other in [
            Msg(
                vec![
                    ("from", b"From: alice@example.org\r\n"),
                    ("subject", b"Subject: lunch\r\n"),
                ],
                b"Buy\r\n",
            ),
            Msg(
                vec![
                    ("from", b"From: ceo@example.org\r\n"),
                    ("subject", b"Subject: lunch\r\n"),
                ],
                b"Hello\r\n",
            ),
            Msg(
                vec![
                    ("from", b"From: ceo@example.org\r\n"),
                    ("from", b"From: alice@example.org\r\n"),
                    ("subject", b"Subject: lunch\r\n"),
                ],
                b"Hello\r\n",
            ),
            Msg(
                vec![
                    ("from", b"From: alice@example.org\r\n"),
                    ("subject", b"Subject: URGENT\r\n"),
                ],
                b"Hello\r\n",
            ),
        ] {
            assert_ne!(Binding::with_mask(&other, b.mask), b);
        }
        let added = Msg(
            vec![
                ("from", b"From: alice@example.org\r\n"),
                ("cc", b"Cc: x@example.org\r\n"),
                ("subject", b"Subject: lunch\r\n"),
            ],
            b"Hello\r\n",
        );
        assert_eq!(Binding::with_mask(&added, b.mask), b);
        let ext = b.add_to_ext("a=1");
        assert_eq!(binding_of_ext(&ext), Ok(Some(b)));
        assert_eq!(Binding::decode(&b.encode()), Some(b));
        assert_eq!(binding_of_ext("a=1"), Ok(None));
        assert_eq!(binding_of_ext(""), Ok(None));
        assert!(binding_of_ext(&format!("{ext};{ext}")).is_err());
        assert!(binding_of_ext("bind=short").is_err());
        assert!(binding_of_ext("bind").is_err());
    }
}
