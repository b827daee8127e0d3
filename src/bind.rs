//! What ties a stamp to one delivery: its message (a digest of the body in the extension field)
//! and its recipient (the address, compared as a mail address, or a keyed digest of it for a
//! recipient who must not be named in the header). The rules are the README's "Binding" and
//! "Hidden recipients" paragraphs of the stamp format.

use base64::Engine;
use sha2::Digest as _;

use crate::canon::Canon;
use crate::error::VerifyError;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The extension entry that binds a stamp to its message's body: `body=DIGEST`.
pub const BODY_EXT: &str = "body";

/// How a hidden recipient's resource starts: `bcc.` then 22 base64url characters.
pub const HIDDEN_PREFIX: &str = "bcc.";

/// The first 128 bits of SHA-256 over a domain tag and the body in DKIM's relaxed
/// canonicalization (white space runs folded, trailing white space and empty lines dropped, CRLF
/// line ends), so a body re-encoded in transit between LF and CRLF, or with trailing blanks
/// trimmed, keeps its binding; any other change breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyBinding(pub [u8; 16]);

impl BodyBinding {
    /// The binding of a message body (the bytes after the blank line ending the header).
    pub fn of_body(body: &[u8]) -> BodyBinding {
        let mut h = sha2::Sha256::new();
        h.update(b"pennyblack body 1\0");
        crate::canon::body_into(Canon::Relaxed, body, None, &mut |piece| h.update(piece));
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        BodyBinding(out)
    }

    /// The value written after `body=`: 22 base64url characters without padding.
    pub fn encode(&self) -> String {
        B64URL.encode(self.0)
    }

    /// Reads a value written by [`encode`](Self::encode); `None` for anything else.
    pub fn decode(s: &str) -> Option<BodyBinding> {
        if s.len() != 22 {
            return None;
        }
        let v = B64URL.decode(s).ok()?;
        let bytes: [u8; 16] = v.try_into().ok()?;
        // Only the canonical spelling (the last character's unused bits zero) is accepted.
        (B64URL.encode(bytes) == s).then_some(BodyBinding(bytes))
    }

    /// The extension field `ext` with this binding added as its first entry.
    pub fn add_to_ext(&self, ext: &str) -> String {
        if ext.is_empty() {
            format!("{BODY_EXT}={}", self.encode())
        } else {
            format!("{BODY_EXT}={};{ext}", self.encode())
        }
    }
}

/// The binding an extension field carries: `Ok(None)` without a `body` entry,
/// [`VerifyError::BadBinding`] when the entry is repeated or its value is not one canonical
/// digest (such a stamp is refused).
pub fn binding_of_ext(ext: &str) -> Result<Option<BodyBinding>, VerifyError> {
    if ext.is_empty() {
        return Ok(None);
    }
    let mut found = None;
    for entry in ext.split(';') {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        if name != BODY_EXT {
            continue;
        }
        if found.is_some() {
            return Err(VerifyError::BadBinding);
        }
        found = Some(BodyBinding::decode(value).ok_or(VerifyError::BadBinding)?);
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
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
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

/// The length of every [`hidden_resource`].
pub const HIDDEN_LEN: usize = HIDDEN_PREFIX.len() + 22;

/// Whether a stamp with this `resource` and `rand` pays for `address`: the resource is the
/// address itself, or its hidden form keyed by `rand`.
pub fn resource_names(resource: &str, rand: &str, address: &str) -> bool {
    if resource.len() == HIDDEN_LEN && resource.starts_with(HIDDEN_PREFIX) {
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

    #[test]
    fn bindings_round_trip_and_refuse_doubles() {
        let b = BodyBinding::of_body(b"Hello\r\n");
        assert_eq!(b, BodyBinding::of_body(b"Hello  \n\n\n"));
        assert_ne!(b, BodyBinding::of_body(b"Hello!\r\n"));
        let ext = b.add_to_ext("a=1");
        assert_eq!(binding_of_ext(&ext), Ok(Some(b)));
        assert_eq!(binding_of_ext("a=1"), Ok(None));
        assert_eq!(binding_of_ext(""), Ok(None));
        assert!(binding_of_ext(&format!("{ext};{ext}")).is_err());
        assert!(binding_of_ext("body=short").is_err());
        assert!(binding_of_ext("body").is_err());
    }
}
