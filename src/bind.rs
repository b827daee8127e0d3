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

/// The header fields a version-1 binding can cover, in the order they are hashed; bit i of the
/// mask is field i. Version 1 covers only the fields present when the stamp was minted, so a
/// field added later (a `Reply-To:` where there was none) does not break it: stamps still
/// carry it and verify under it, but new ones are minted with version 2.
pub const BOUND_FIELDS: [&str; 6] = ["from", "to", "cc", "subject", "date", "message-id"];

/// The header fields a version-2 binding covers, in the order they are hashed; bit i of the
/// mask is field i. Every field a reader sees, or that routes replies, or that decides how the
/// body is shown: covered whether present or absent when the stamp was minted, so adding one
/// where the original had none breaks the binding as changing one does. The DKIM signer signs
/// and oversigns the same list ([`crate::dkim::signed_fields`]). Only
/// [`ADDED_IN_TRANSIT`] fields absent at minting are left out of the mask. New fields are only
/// ever appended (the mask's meaning must not change).
pub const READER_FIELDS: [&str; 26] = [
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "sender",
    "in-reply-to",
    "references",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
    "mail-followup-to",
    "mail-reply-to",
    "list-id",
    "list-post",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "disposition-notification-to",
    "return-receipt-to",
    "autocrypt",
    "resent-from",
    "resent-sender",
    "importance",
];

/// Fields of [`READER_FIELDS`] a submission server may add to a message that lacks them
/// (RFC 5321 6.4, RFC 6409 8): covered when present at minting, left out of the mask when
/// absent, so a stamp minted before submission survives them.
pub const ADDED_IN_TRANSIT: [&str; 2] = ["date", "message-id"];

/// The mask a receiver demanding full bindings (`--require-full-binding`) wants covered: every
/// [`READER_FIELDS`] bit but those of [`ADDED_IN_TRANSIT`].
pub const FULL_MASK: u32 = {
    let mut m = 0u32;
    let mut i = 0;
    while i < READER_FIELDS.len() {
        let mut added = false;
        let mut j = 0;
        while j < ADDED_IN_TRANSIT.len() {
            added |= const_eq(READER_FIELDS[i].as_bytes(), ADDED_IN_TRANSIT[j].as_bytes());
            j += 1;
        }
        if !added {
            m |= 1 << i;
        }
        i += 1;
    }
    m
};

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Which rules a binding was made under (see docs/FORMAT.md, "Binding").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindVersion {
    /// [`BOUND_FIELDS`], present ones only: a one-character mask (23 characters in all).
    V1,
    /// [`READER_FIELDS`], absent ones included: a five-character mask (27 characters in all).
    V2,
}

/// A stamp's (or ticket's) binding to its message: which header fields it covers, and the first
/// 128 bits of a SHA-256 over a domain tag, the mask, the covered fields (each in DKIM's relaxed
/// header canonicalization, every instance top to bottom) and SHA-256 of the body in DKIM's
/// relaxed body canonicalization. White space changes in transit and LF/CRLF keep it; any other
/// change to the body or to a covered field (a field added, removed or changed) breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The rules it was made under.
    pub version: BindVersion,
    /// Bit i set: field i of [`BOUND_FIELDS`] (version 1) or [`READER_FIELDS`] (version 2) is
    /// covered.
    pub mask: u32,
    /// The digest.
    pub digest: [u8; 16],
}

/// A message as a binding sees it: the raw instances of a header field, and the body.
///
/// A checker comparing many stamps with one message should use a source that computes each
/// canonical form once (`postage::BindingView`): the defaults here recompute them on every call.
pub trait BindingSource {
    /// The raw instances (name, colon, value, folding, line ending) of the field `name`
    /// (lower case), top to bottom.
    fn fields(&self, name: &str) -> Vec<&[u8]>;
    /// The body.
    fn body(&self) -> &[u8];
    /// SHA-256 of the body in relaxed canonicalization.
    fn body_digest(&self) -> [u8; 32] {
        body_digest(self.body())
    }
    /// Every instance of `name`, top to bottom, in relaxed header canonicalization, fed to
    /// `sink` (version 1 hashes these bytes).
    fn canonical_field(&self, name: &str, sink: &mut dyn FnMut(&[u8])) {
        for raw in self.fields(name) {
            sink(&crate::canon::header(Canon::Relaxed, raw));
        }
    }
    /// SHA-256 of [`canonical_field`](Self::canonical_field)'s bytes (version 2 hashes these).
    fn field_digest(&self, name: &str) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        self.canonical_field(name, &mut |b| h.update(b));
        h.finalize().into()
    }
    /// The binding of this message under `version` and `mask`. A source that keeps what it
    /// computed returns a kept answer for a mask asked before.
    fn binding(&self, version: BindVersion, mask: u32) -> Binding {
        Binding::compute(self, version, mask)
    }
}

/// SHA-256 of a body in DKIM's relaxed body canonicalization, streamed.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    crate::canon::body_hash(Canon::Relaxed, body, None)
}

impl BindVersion {
    /// The fields this version's mask bits name.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            BindVersion::V1 => &BOUND_FIELDS,
            BindVersion::V2 => &READER_FIELDS,
        }
    }

    /// Base64url characters of the mask.
    fn mask_chars(self) -> usize {
        match self {
            BindVersion::V1 => 1,
            BindVersion::V2 => 5,
        }
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Binding {
    /// The binding a stamp minted now for `msg` carries: version 2 over every
    /// [`READER_FIELDS`] field, present or absent, but the [`ADDED_IN_TRANSIT`] ones absent.
    pub fn of(msg: &dyn BindingSource) -> Binding {
        let mask = READER_FIELDS
            .iter()
            .enumerate()
            .filter(|(_, f)| !ADDED_IN_TRANSIT.contains(f) || !msg.fields(f).is_empty())
            .fold(0u32, |m, (i, _)| m | 1 << i);
        msg.binding(BindVersion::V2, mask)
    }

    /// The version-1 binding of `msg` over the fields it has of [`BOUND_FIELDS`] (what earlier
    /// releases minted; kept so their stamps verify, and for tests).
    pub fn of_v1(msg: &dyn BindingSource) -> Binding {
        let mask = BOUND_FIELDS
            .iter()
            .enumerate()
            .filter(|(_, f)| !msg.fields(f).is_empty())
            .fold(0u32, |m, (i, _)| m | 1 << i);
        msg.binding(BindVersion::V1, mask)
    }

    /// Whether `msg` has this binding: the same digest under this binding's version and mask.
    pub fn matches(&self, msg: &dyn BindingSource) -> bool {
        msg.binding(self.version, self.mask) == *self
    }

    /// Whether this binding covers every field a full binding must (`--require-full-binding`):
    /// version 2 with every bit of [`FULL_MASK`].
    pub fn is_full(&self) -> bool {
        self.version == BindVersion::V2 && self.mask & FULL_MASK == FULL_MASK
    }

    /// The binding of `msg` under `version` over the fields of `mask`, computed (what a source
    /// that keeps nothing returns from [`BindingSource::binding`]). Bits beyond the version's
    /// fields are ignored.
    pub fn compute(
        msg: &(impl BindingSource + ?Sized),
        version: BindVersion,
        mask: u32,
    ) -> Binding {
        let fields = version.fields();
        let mask = mask & ((1u32 << fields.len()) - 1);
        let mut h = sha2::Sha256::new();
        match version {
            BindVersion::V1 => {
                h.update(b"pennyblack bind 1\0");
                h.update([mask as u8]);
                for (i, name) in fields.iter().enumerate() {
                    if mask & (1 << i) == 0 {
                        continue;
                    }
                    msg.canonical_field(name, &mut |b| h.update(b));
                    h.update(b"\0");
                }
            }
            BindVersion::V2 => {
                h.update(b"pennyblack bind 2\0");
                h.update(mask.to_be_bytes());
                for (i, name) in fields.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        h.update(msg.field_digest(name));
                    }
                }
            }
        }
        h.update(msg.body_digest());
        let d = h.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&d[..16]);
        Binding {
            version,
            mask,
            digest,
        }
    }

    /// The value written after `bind=`: the mask as base64url characters (one for version 1,
    /// five for version 2, most significant first), then the digest as 22.
    pub fn encode(&self) -> String {
        let n = self.version.mask_chars();
        let mut s = String::with_capacity(n + 22);
        for k in (0..n).rev() {
            s.push(ALPHABET[((self.mask >> (6 * k)) & 63) as usize] as char);
        }
        s.push_str(&B64URL.encode(self.digest));
        s
    }

    /// Reads a value written by [`encode`](Self::encode) (23 characters: version 1; 27:
    /// version 2); `None` for anything else, a mask naming fields the version does not have
    /// included.
    pub fn decode(s: &str) -> Option<Binding> {
        let version = match s.len() {
            23 => BindVersion::V1,
            27 => BindVersion::V2,
            _ => return None,
        };
        if !s.is_ascii() {
            return None;
        }
        let (m, d) = s.split_at(version.mask_chars());
        let mut mask = 0u32;
        for c in m.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            };
            mask = mask << 6 | u32::from(v);
        }
        if mask >> version.fields().len() != 0 {
            return None;
        }
        let v = B64URL.decode(d).ok()?;
        let digest: [u8; 16] = v.try_into().ok()?;
        // Only the canonical spelling (the last character's unused bits zero) is accepted.
        (B64URL.encode(digest) == d).then_some(Binding {
            version,
            mask,
            digest,
        })
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

/// The longest `bind=` entry (a version-2 binding), for sizing a stamp before it is minted.
pub const BIND_ENTRY_LEN: usize = BIND_EXT.len() + 1 + 27;

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
        let b = Binding::of_v1(&m);
        assert_eq!((b.version, b.mask), (BindVersion::V1, 0b1001));
        // White space in transit keeps it.
        let same = Msg(
            vec![
                ("from", b"From:   alice@example.org\n"),
                ("subject", b"Subject: lunch \r\n"),
            ],
            b"Hello  \n\n",
        );
        assert!(b.matches(&same));
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
            assert!(!b.matches(&other));
        }
        let added = Msg(
            vec![
                ("from", b"From: alice@example.org\r\n"),
                ("cc", b"Cc: x@example.org\r\n"),
                ("subject", b"Subject: lunch\r\n"),
            ],
            b"Hello\r\n",
        );
        assert!(b.matches(&added));
        let ext = b.add_to_ext("a=1");
        assert_eq!(binding_of_ext(&ext), Ok(Some(b)));
        assert_eq!(Binding::decode(&b.encode()), Some(b));
        assert_eq!(binding_of_ext("a=1"), Ok(None));
        assert_eq!(binding_of_ext(""), Ok(None));
        assert!(binding_of_ext(&format!("{ext};{ext}")).is_err());
        assert!(binding_of_ext("bind=short").is_err());
        assert!(binding_of_ext("bind").is_err());
    }

    /// The version-1 digest as earlier releases computed it, written out here so the cached
    /// and per-field paths cannot drift from what old stamps carry.
    fn v1_as_released(msg: &Msg, mask: u8) -> [u8; 16] {
        let mut h = sha2::Sha256::new();
        h.update(b"pennyblack bind 1\0");
        h.update([mask]);
        for (i, name) in BOUND_FIELDS.iter().enumerate() {
            if mask & (1 << i) != 0 {
                for raw in msg.fields(name) {
                    h.update(crate::canon::header(Canon::Relaxed, raw));
                }
                h.update(b"\0");
            }
        }
        h.update(body_digest(msg.1));
        h.finalize()[..16].try_into().unwrap()
    }

    #[test]
    fn version_one_digests_are_those_earlier_releases_minted() {
        let m = Msg(
            vec![
                ("from", b"From: alice@example.org\r\n"),
                ("to", b"To: bob@example.org\r\n"),
                ("to", b"To: carol@example.org\r\n"),
                ("date", b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"),
            ],
            b"Hello\r\n",
        );
        for mask in 0..64u8 {
            let b = Binding::compute(&m, BindVersion::V1, u32::from(mask));
            assert_eq!(b.digest, v1_as_released(&m, mask), "mask {mask}");
            assert_eq!(b.encode().len(), 23);
            assert_eq!(Binding::decode(&b.encode()), Some(b));
        }
    }

    #[test]
    fn version_two_covers_what_the_reader_sees_present_or_absent() {
        let fields: Vec<(&'static str, &'static [u8])> = vec![
            ("from", b"From: alice@example.org\r\n"),
            ("to", b"To: bob@example.org\r\n"),
            ("cc", b"Cc: eve@example.net\r\n"),
            ("subject", b"Subject: lunch\r\n"),
        ];
        let m = Msg(fields.clone(), b"Hello\r\n");
        let b = Binding::of(&m);
        assert_eq!(b.version, BindVersion::V2);
        // Date and Message-ID were absent: left out; everything else covered, absent or not.
        assert_eq!(b.mask, FULL_MASK);
        assert!(b.is_full());
        assert_eq!(b.encode().len(), 27);
        assert_eq!(Binding::decode(&b.encode()), Some(b));
        assert!(b.matches(&m));
        // A co-recipient's doctored copy: any reader-visible or reply-routing field added where
        // there was none breaks it.
        for (name, raw) in [
            ("reply-to", &b"Reply-To: eve@example.net\r\n"[..]),
            ("sender", b"Sender: eve@example.net\r\n"),
            ("in-reply-to", b"In-Reply-To: <x@example.net>\r\n"),
            ("references", b"References: <x@example.net>\r\n"),
            ("content-type", b"Content-Type: text/html\r\n"),
            (
                "content-transfer-encoding",
                b"Content-Transfer-Encoding: base64\r\n",
            ),
            ("mime-version", b"MIME-Version: 1.0\r\n"),
            (
                "content-disposition",
                b"Content-Disposition: attachment\r\n",
            ),
            ("mail-followup-to", b"Mail-Followup-To: eve@example.net\r\n"),
            ("mail-reply-to", b"Mail-Reply-To: eve@example.net\r\n"),
            ("list-post", b"List-Post: <mailto:eve@example.net>\r\n"),
            (
                "disposition-notification-to",
                b"Disposition-Notification-To: eve@example.net\r\n",
            ),
            (
                "autocrypt",
                b"Autocrypt: addr=alice@example.org; keydata=AAAA\r\n",
            ),
            ("resent-from", b"Resent-From: eve@example.net\r\n"),
            ("cc", b"Cc: mallory@example.net\r\n"),
        ] {
            let mut f = fields.clone();
            f.push((name, raw));
            assert!(!b.matches(&Msg(f, b"Hello\r\n")), "{name} added");
        }
        // A relay adding Date or Message-ID where there was none keeps it; white space too.
        let mut f = fields.clone();
        f.push(("date", b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"));
        f.push(("message-id", b"Message-ID: <1@example.org>\r\n"));
        f[0] = ("from", b"From:  alice@example.org \n");
        assert!(b.matches(&Msg(f, b"Hello \r\n")));
        // Present at minting, Date is covered like any other field.
        let mut f = fields.clone();
        f.push(("date", b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"));
        let dated = Binding::of(&Msg(f.clone(), b"Hello\r\n"));
        assert_eq!(dated.mask, FULL_MASK | 1 << 4);
        f[4] = ("date", b"Date: Tue, 8 Dec 2026 10:00:00 +0000\r\n");
        assert!(!dated.matches(&Msg(f, b"Hello\r\n")));
        // A version-1 binding does not count as full; a v2 mask naming fields that do not
        // exist is not canonical.
        assert!(!Binding::of_v1(&m).is_full());
        assert_eq!(Binding::decode(&format!("Q{}", &b.encode()[1..])), None);
        let v1_mask_v2_len = Binding {
            mask: FULL_MASK & !1,
            ..b
        };
        assert!(!v1_mask_v2_len.is_full());
    }
}
