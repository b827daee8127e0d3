//! Error types. Three families, kept apart on purpose:
//!
//! * [`ParseError`]: the text is not a stamp of any version we know (a property of the stamp);
//! * [`VerifyError`]: the stamp parsed but is not acceptable (a property of the stamp and the policy);
//! * [`Error`]: we failed to do our job (I/O, the spent store); says nothing about the stamp.
//!
//! [`MintError`] covers refusals and failures while minting.

use std::time::Duration;

/// Why a text is not a well-formed stamp. See docs/FORMAT.md for the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text is empty (after trimming surrounding white space).
    #[error("empty stamp")]
    Empty,
    /// The text is longer than [`crate::MAX_STAMP_LEN`] bytes.
    #[error("stamp is {0} bytes long, more than the {max} allowed", max = crate::MAX_STAMP_LEN)]
    TooLong(usize),
    /// The text holds white space, a control character or a non-ASCII byte.
    #[error("stamp holds a character that is not printable ASCII at byte {0}")]
    BadCharacter(usize),
    /// The version field is not `0`, `1` or `2`.
    #[error("unsupported stamp version {0:?} (known: 0, 1, 2)")]
    UnsupportedVersion(String),
    /// The stamp has the wrong number of `:`-separated fields for its version.
    #[error("version {version} stamp needs {expected} fields separated by ':', found {found}")]
    FieldCount {
        /// The stamp's version.
        version: u8,
        /// How many fields that version has.
        expected: usize,
        /// How many were found.
        found: usize,
    },
    /// The bits field is not 1 to 3 decimal digits.
    #[error("bits field {0:?} is not a decimal number of 1 to 3 digits")]
    BadBits(String),
    /// The bits field exceeds the output size of the stamp's hash.
    #[error("bits field {bits} exceeds the {max} bits of the hash")]
    BitsTooHigh {
        /// The claimed bits.
        bits: u32,
        /// The hash's output size in bits.
        max: u32,
    },
    /// The algorithm field of a version 2 stamp is not `sha256`, `blake3`, `equix` or
    /// `argon2id-mM-tT-pP` with parameters Argon2 allows.
    #[error(
        "unknown algorithm {0:?} (known: sha256, blake3, equix, argon2id-mKIB-tPASSES-pLANES with KIB at least 8 x LANES and at most 4194304, PASSES 1-999, LANES 1-255)"
    )]
    BadAlgorithm(String),
    /// The parts field of a version 2 stamp is not a number from 1 to 64.
    #[error("parts field {0:?} is not a number from 1 to 64")]
    BadParts(String),
    /// The number of counters differs from the parts field.
    #[error("stamp declares {declared} parts but carries {found} counters")]
    PartsMismatch {
        /// The parts field.
        declared: usize,
        /// How many counters there are.
        found: usize,
    },
    /// Two counters of a multi-part stamp are equal.
    #[error("counter {0:?} appears more than once")]
    DuplicateCounter(String),
    /// The date field is not a valid UTC date of 2, 4, 6, 8, 10 or 12 digits.
    #[error("date field {0:?} is not a valid YY[MM[DD[hh[mm[ss]]]]] UTC date")]
    BadDate(String),
    /// A field that must use the alphabet `[A-Za-z0-9+/=]` holds another character.
    #[error("{field} field {value:?} has a character outside [A-Za-z0-9+/=]")]
    BadAlphabet {
        /// Which field (`rand` or `counter`).
        field: &'static str,
        /// The field's text.
        value: String,
    },
    /// A counter of a version 2 stamp is empty or longer than 64 characters.
    #[error("counter {0:?} must be 1 to 64 characters long")]
    BadCounterLength(String),
    /// A counter of an Equi-X stamp is not exactly 32 characters of standard base64 (no
    /// padding): an 8-byte nonce and a 16-byte solution.
    #[error(
        "equix counter {0:?} is not 32 characters of standard base64 (an 8-byte nonce and a 16-byte solution)"
    )]
    BadEquixCounter(String),
    /// Two parts of an Equi-X stamp share a nonce: each part must be a solve of its own.
    #[error("equix nonce {0} appears in more than one part")]
    DuplicateNonce(u64),
}

/// Why a well-formed stamp is not acceptable: the verdict's reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The text is not a stamp.
    #[error("malformed: {0}")]
    Malformed(#[from] ParseError),
    /// The stamp's date plus validity plus grace lies in the past.
    #[error("expired: dated {date}, valid until {expired_at} (validity + grace)")]
    Expired {
        /// The stamp's date (RFC 3339, UTC).
        date: String,
        /// When it stopped being valid (RFC 3339, UTC).
        expired_at: String,
    },
    /// The stamp's date lies further in the future than the grace period allows.
    #[error("in the future: dated {date}, more than the grace period ahead of now ({now})")]
    Future {
        /// The stamp's date (RFC 3339, UTC).
        date: String,
        /// The verifier's clock (RFC 3339, UTC).
        now: String,
    },
    /// The stamp's resource matches none of the accepted resources.
    #[error("wrong resource: {resource:?} matches none of the accepted resources")]
    WrongResource {
        /// The stamp's resource.
        resource: String,
    },
    /// The hashes carry less work than required (or less than the stamp claims).
    #[error("insufficient work: {value:.2} bits found, {required} required")]
    InsufficientWork {
        /// The stamp's value in bits of work (0 when a part misses its claimed bits).
        value: f64,
        /// The policy's minimum.
        required: u32,
    },
    /// The stamp is bound to another message (lifted from it): the body or a covered header
    /// field differs.
    #[error("bound to another message: its binding does not match this message")]
    WrongMessage,
    /// The stamp carries no binding to its message and the policy demands one.
    #[error("not bound to its message, and the policy requires bound stamps")]
    Unbound,
    /// The stamp's binding leaves out fields a reader sees (a version-1 binding, or a mask
    /// without them) and the policy demands full bindings.
    #[error(
        "bound to its message without every field a reader sees, and the policy requires full bindings"
    )]
    PartlyBound,
    /// The stamp's extension holds a binding that is not one well-formed body digest.
    #[error("malformed binding: the extension's bind= entry is repeated or not a binding")]
    BadBinding,
    /// The policy names no minimum for this stamp's algorithm while it names one for others:
    /// the algorithm is not accepted (values of different algorithms are not comparable).
    #[error("algorithm {alg} is not accepted: the policy sets no minimum value for it")]
    NotAccepted {
        /// The algorithm's name.
        alg: &'static str,
    },
    /// A parameter of the stamp's algorithm lies outside what the policy accepts (refused
    /// before any work).
    #[error("{what} {value} is outside the policy's {bound}")]
    OutOfPolicy {
        /// Which parameter: "memory (KiB)", "parts".
        what: &'static str,
        /// The stamp's value of it.
        value: u64,
        /// The bound it broke, e.g. "maximum 65536".
        bound: String,
    },
    /// Checking this stamp would take the message past the policy's verification budget
    /// (refused before any work; see `Policy::max_work`).
    #[error(
        "over the verification budget: this stamp would cost about {cost_us} us to check, {left_us} us of the message's budget remain"
    )]
    OverBudget {
        /// The estimated cost of checking this stamp, in microseconds.
        cost_us: u64,
        /// What remained of the message's budget, in microseconds.
        left_us: u64,
    },
    /// The stamp was already spent (seen before by this receiver).
    #[error("spent: this stamp was already accepted once")]
    Spent,
    /// The stamp's algorithm needs a cargo feature this build was made without (refused
    /// before any work).
    #[error("{alg} stamps need a build with --features {feature}")]
    Unsupported {
        /// The algorithm's name.
        alg: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
}

impl VerifyError {
    /// One word naming why a stamp was refused, for logs, JSON and reply texts (`spent`,
    /// `expired`, `wrong_message`, ...); stable across releases.
    pub fn keyword(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::Expired { .. } => "expired",
            VerifyError::Future { .. } => "future",
            VerifyError::WrongResource { .. } => "wrong_resource",
            VerifyError::InsufficientWork { .. } => "insufficient_work",
            VerifyError::WrongMessage => "wrong_message",
            VerifyError::Unbound => "unbound",
            VerifyError::PartlyBound => "partly_bound",
            VerifyError::BadBinding => "bad_binding",
            VerifyError::NotAccepted { .. } => "not_accepted",
            VerifyError::OutOfPolicy { .. } => "out_of_policy",
            VerifyError::OverBudget { .. } => "over_budget",
            VerifyError::Spent => "spent",
            VerifyError::Unsupported { .. } => "unsupported",
        }
    }
}

/// A failure of ours, not of the stamp: I/O or the spent-stamp store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The spent-stamp store failed (could not open, read or commit).
    #[error("spent-stamp store: {0}")]
    Store(#[from] StoreError),
}

/// Why a spent-stamp store could not answer. Says nothing about the stamp: a check that meets
/// one of these is neither accepted nor refused as spent (the caller's policy decides).
/// Locations in these errors never hold a password (see [`crate::spent::redact`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store file's database failed: I/O, a lock, a full disk, a file that is not a store.
    #[cfg(feature = "store")]
    #[error("{}: {source}", path.display())]
    Database {
        /// The store file.
        path: std::path::PathBuf,
        /// What the database library said.
        #[source]
        source: Box<redb::Error>,
    },
    /// The store file is damaged inside its data.
    #[error(
        "{}: database damaged ({what}): move it aside (a new one is made on the next check; \
         stamps it held could be accepted once more) or restore it from a backup",
        path.display()
    )]
    Damaged {
        /// The store file.
        path: std::path::PathBuf,
        /// What the database library found.
        what: String,
    },
    /// The store file was written by a development build whose layout this one does not read.
    #[error(
        "{}: written by a development build of pennyblack in a layout this version does not \
         read: move it aside (stamps it held could be accepted once more)",
        path.display()
    )]
    UnknownLayout {
        /// The store file.
        path: std::path::PathBuf,
    },
    /// A file the store needs could not be read or made.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The location names no store this build can open.
    #[error("{location}: {reason}")]
    BadLocation {
        /// The location as given, its password hidden.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached, did not answer in time, or answered with an error.
    #[error("{location}: {detail}")]
    Unavailable {
        /// The server's location, its password hidden.
        location: String,
        /// What the client library said, any password removed.
        detail: String,
    },
    /// The server answered something the store does not expect.
    #[error("{location}: unexpected reply: {detail}")]
    Protocol {
        /// The server's location, its password hidden.
        location: String,
        /// What was expected and what came.
        detail: String,
    },
    /// The operation is not offered by this kind of store.
    #[error("{location}: {what} is not supported by this store")]
    Unsupported {
        /// The store's location, its password hidden.
        location: String,
        /// The operation.
        what: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(getrandom::Error),
}

/// Why minting refused a request or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The resource is empty.
    #[error("the resource is empty")]
    EmptyResource,
    /// The resource holds `:`, white space, a control character or a non-ASCII byte.
    #[error(
        "the resource {0:?} holds ':', white space or a non-printable/non-ASCII character (encode it first, e.g. URL encoding)"
    )]
    BadResource(String),
    /// The extension field is not of the form `name1=v1,v2;name2`.
    #[error(
        "the extension {0:?} is not of the form name1=v1,v2;name2 (no ':' or white space allowed)"
    )]
    BadExtension(String),
    /// The bits exceed what the hash can show, or are zero for a multi-part stamp.
    #[error("bits must be from 0 to {max} for {alg}, got {bits}")]
    BadBits {
        /// Requested bits.
        bits: u32,
        /// The algorithm's limit.
        max: u32,
        /// The algorithm's name.
        alg: &'static str,
    },
    /// The number of parts is outside 1..=64, or above 1 for SHA-1 (version 1 stamps have one part).
    #[error("parts must be from 1 to {max} for {alg}, got {parts}")]
    BadParts {
        /// Requested parts.
        parts: u32,
        /// The algorithm's limit.
        max: u32,
        /// The algorithm's name.
        alg: &'static str,
    },
    /// The date cannot be written as a stamp date (before 1970 or after 2069, or a bad width).
    #[error("the date cannot be written in a stamp: {0}")]
    BadDate(String),
    /// A backend was forced that this CPU lacks for the algorithm.
    #[error(
        "backend {backend} cannot mint {alg} on this CPU (available for {alg}: {})",
        crate::Backend::available(*alg).iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    )]
    BackendUnavailable {
        /// The backend asked for.
        backend: crate::Backend,
        /// The algorithm.
        alg: crate::Algorithm,
    },
    /// The algorithm's parameters break its rules (Argon2id: memory at least 8 KiB per lane and
    /// at most 4 GiB, passes 1-999, lanes 1-255).
    #[error("bad parameters for {0}: {1}")]
    BadParameters(crate::Algorithm, ParseError),
    /// One attempt of a memory-hard algorithm needs more memory than the minter may use.
    #[error(
        "one {alg} attempt needs {needed} bytes, over the minter's memory limit of {limit} bytes"
    )]
    TooMuchMemory {
        /// The algorithm, with its parameters.
        alg: crate::Algorithm,
        /// Bytes one attempt (one thread) needs.
        needed: u64,
        /// The minter's limit for all its threads together.
        limit: u64,
    },
    /// The algorithm needs a cargo feature this build was made without.
    #[error("{alg} stamps need a build with --features {feature}")]
    Unsupported {
        /// The algorithm's name.
        alg: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The minter was cancelled.
    #[error("minting was cancelled")]
    Cancelled,
    /// The deadline passed before the stamp was complete.
    #[error("minting did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    /// The counter space was exhausted (only possible with absurd bit counts).
    #[error("the counter space was exhausted without finding a solution")]
    Exhausted,
    /// The worker thread pool could not be built.
    #[error("could not start worker threads: {0}")]
    ThreadPool(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}
