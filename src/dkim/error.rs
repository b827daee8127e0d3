//! Why signing, verifying or reading keys could not be done: [`DkimError`] and the causes it
//! carries ([`SyntaxError`], [`KeyError`], [`KeyFileError`]).

use std::path::PathBuf;

use super::keys::KeyKind;
use super::tags::MAX_TAGS;

/// Why signing or verifying could not be done, or a key or keys file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    /// A tag list or signature field does not follow the grammar.
    #[error("syntax: {0}")]
    Syntax(#[from] SyntaxError),
    /// A key could not be read, or is not acceptable.
    #[error("key: {0}")]
    Key(#[from] KeyError),
    /// Signing failed (the crypto library says no more than that).
    #[error("signing failed: {0}")]
    Sign(#[source] aws_lc_rs::error::Unspecified),
    /// A line of a keys file ([`KeyFile`](super::KeyFile)) is not a key record line.
    #[error("line {line}: {source} (expected SELECTOR._domainkey.DOMAIN v=DKIM1; k=...; p=...)")]
    KeyFileLine {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        #[source]
        source: KeyFileError,
    },
    /// A key file or keys file holds an error: the file's name put in front of it.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The error in it ([`Key`](DkimError::Key) or [`KeyFileLine`](DkimError::KeyFileLine)).
        #[source]
        source: Box<DkimError>,
    },
    /// A key file or keys file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How a tag list (RFC 6376 section 3.2) or a signing request breaks the grammar. Names and
/// texts quoted from the input are cut to a few dozen characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxError {
    /// The signing domain or selector is not a DNS name (labels of letters, digits, `-`, `_`).
    #[error("domain {domain:?} or selector {selector:?} is not a DNS name")]
    NotDnsName {
        /// The domain (`d=`) asked for.
        domain: String,
        /// The selector (`s=`) asked for.
        selector: String,
    },
    /// The list holds more than [`MAX_TAGS`] tags.
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
    /// A tag is empty (two `;` with only white space between, or a leading `;`).
    #[error("empty tag")]
    EmptyTag,
    /// A tag has no `=`.
    #[error("tag without '=': {text}")]
    NoEquals {
        /// The tag's text (at most 40 characters of it).
        text: String,
    },
    /// A tag name does not start with a letter or holds a character other than letters, digits
    /// and `_`.
    #[error("bad tag name {name:?}")]
    BadTagName {
        /// The name (at most 40 characters of it).
        name: String,
    },
    /// A tag value holds a control character other than folding white space.
    #[error("control character in tag {tag}")]
    ControlCharacter {
        /// The tag's name.
        tag: String,
    },
    /// A tag appears more than once.
    #[error("tag {tag} appears twice")]
    RepeatedTag {
        /// The tag's name.
        tag: String,
    },
    /// A required tag is missing.
    #[error("required tag {tag}= is missing")]
    MissingTag {
        /// The tag's name.
        tag: String,
    },
    /// A tag's value is not base64 (after removing folding white space).
    #[error("{tag}= is not base64: {source}")]
    NotBase64 {
        /// The tag's name.
        tag: String,
        /// What the decoder found.
        #[source]
        source: base64::DecodeError,
    },
}

/// Why a key could not be read, made or encoded, or is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a PEM private key of a kind we read.
    #[error("not a PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA)")]
    NotPem,
    /// An RSA private key is too small to sign with.
    #[error("RSA key of {bits} bits; at least {min} are required")]
    TooSmall {
        /// The key's modulus size.
        bits: usize,
        /// The smallest accepted ([`MIN_RSA_SIGN_BITS`](super::keys::MIN_RSA_SIGN_BITS)).
        min: usize,
    },
    /// AWS-LC refused an RSA private key.
    #[error("bad RSA key: {0}")]
    BadRsaKey(#[source] aws_lc_rs::error::KeyRejected),
    /// A new RSA key was asked for with too few bits.
    #[error("RSA keys need at least {min} bits")]
    GenerateTooSmall {
        /// The size asked for.
        bits: usize,
        /// The smallest made ([`MIN_RSA_SIGN_BITS`](super::keys::MIN_RSA_SIGN_BITS)).
        min: usize,
    },
    /// A new RSA key was asked for in a size other than 2048, 3072, 4096 or 8192 bits.
    #[error("RSA keys of 2048, 3072, 4096 or 8192 bits, not {bits}")]
    UnsupportedSize {
        /// The size asked for.
        bits: usize,
    },
    /// Making an RSA key failed.
    #[error("RSA key generation failed: {0}")]
    Generate(#[source] aws_lc_rs::error::Unspecified),
    /// The operating system's random number generator failed (making an Ed25519 key).
    #[error("random number generator: {0}")]
    Random(#[source] getrandom::Error),
    /// A key could not be written as DER (public key) or PKCS#8 PEM (private key).
    #[error("could not encode the key: {0}")]
    Encode(#[source] EncodeError),
    /// A key record's `v=` is not `DKIM1`.
    #[error("record version {version} is not DKIM1")]
    BadVersion {
        /// The record's version (at most 20 characters of it).
        version: String,
    },
    /// A key record's `k=` names a key type other than `rsa` and `ed25519`.
    #[error("unknown key type {kind}")]
    UnknownType {
        /// The record's key type (at most 20 characters of it).
        kind: String,
    },
    /// The key record's type is not the one the signature's algorithm needs.
    #[error("the key type does not match the signature algorithm")]
    TypeMismatch {
        /// The record's key type.
        record: KeyKind,
        /// The key type of the signature's algorithm.
        signature: KeyKind,
    },
    /// The key record's `p=` is empty.
    #[error("the key was revoked (empty p=)")]
    Revoked,
    /// An RSA key record's `p=` is neither a SubjectPublicKeyInfo of an RSA key nor a PKCS#1
    /// `RSAPublicKey`.
    #[error("bad RSA key: not an RSA public key")]
    NotRsaPublicKey,
    /// An RSA public key is smaller than verifying accepts (RFC 8301).
    #[error("RSA key of {bits} bits is under {min} (RFC 8301)")]
    TooWeak {
        /// The key's modulus size.
        bits: usize,
        /// The smallest accepted ([`MIN_RSA_VERIFY_BITS`](super::keys::MIN_RSA_VERIFY_BITS)).
        min: usize,
    },
    /// An Ed25519 key record's `p=` is not 32 bytes long.
    #[error("an Ed25519 key is 32 bytes")]
    Ed25519Length {
        /// The length found.
        len: usize,
    },
    /// An Ed25519 public key is not a valid curve point.
    #[error("bad Ed25519 key: {0}")]
    BadEd25519Key(#[source] ed25519_dalek::SignatureError),
}

/// Why a key could not be encoded (none of these is expected for a key we hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// AWS-LC could not write an RSA key as DER.
    #[error(transparent)]
    Der(aws_lc_rs::error::Unspecified),
    /// The PEM encoder failed.
    #[error(transparent)]
    Pem(pem_rfc7468::Error),
    /// The PKCS#8 encoder failed (Ed25519).
    #[error(transparent)]
    Pkcs8(ed25519_dalek::pkcs8::Error),
}

/// Why a line of a keys file ([`KeyFile`](super::KeyFile)) is not a key record line; carried by
/// [`DkimError::KeyFileLine`] with the line's number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The line holds a name and nothing after it.
    #[error("no record after the name")]
    NoRecord,
    /// The name does not hold `._domainkey.`.
    #[error("{name} is not SELECTOR._domainkey.DOMAIN")]
    BadName {
        /// The name (at most 60 characters of it).
        name: String,
    },
    /// The record after the name is not a tag list.
    #[error("the record is not a tag list: syntax: {0}")]
    NotTagList(#[source] SyntaxError),
    /// The record has no `p=` tag.
    #[error("the record has no p= tag")]
    NoKey,
}

/// At most `max` characters of `s` (what `{s:.max}` prints), for quoting input in errors.
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
