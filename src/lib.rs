#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod argon2id;
#[cfg(feature = "mail")]
pub mod authres;
pub mod backend;
pub mod bind;
pub mod calibrate;
pub mod canon;
pub mod challenge;
pub mod clock;
#[cfg(feature = "mail")]
pub mod dkim;
pub mod equix;
pub mod error;
#[cfg(feature = "mail")]
pub mod mail;
#[cfg(feature = "milter")]
pub mod milter;
pub mod mint;
pub mod policy;
#[cfg(feature = "mail")]
pub mod postage;
pub mod rate;
#[cfg(feature = "tickets")]
pub mod reception;
#[cfg(feature = "milter")]
pub mod relay;
#[cfg(feature = "dns")]
pub mod sender;
#[cfg(feature = "mail")]
pub mod sent;
pub mod spent;
#[cfg(feature = "dns")]
pub mod spf;
pub mod stamp;
#[cfg(feature = "mail")]
pub mod ticket;
pub mod verify;

pub use backend::{Backend, Search};
pub use clock::unix_now;
pub use error::{Error, MintError, ParseError, StoreError, VerifyError};
pub use mint::{MintRequest, Minter, Progress};
#[cfg(feature = "store")]
pub use spent::FileStore;
pub use spent::{MemoryStore, SpentStore};
pub use stamp::{Algorithm, Argon2Params, MAX_STAMP_LEN, Stamp, StampDate, Version};
pub use verify::{
    Clock, FixedClock, PARALLEL_BATCH, Pending, Policy, ResourcePattern, SystemClock, Verdict,
    Verifier,
};

/// Mints one stamp with every core and the fastest backend.
///
/// ```
/// let stamp = pennyblack::mint(&pennyblack::MintRequest::new("bob@example.org").bits(12)).unwrap();
/// assert!(stamp.to_string().starts_with("2:sha256:8:16:"));
/// ```
pub fn mint(req: &MintRequest) -> Result<Stamp, MintError> {
    Minter::new().mint(req)
}

/// Verifies one stamp text against `policy` with the system clock and no spent store.
///
/// ```
/// use pennyblack::{MintRequest, Policy};
/// let stamp = pennyblack::mint(&MintRequest::hashcash("bob@example.org", 10)).unwrap();
/// let verdict = pennyblack::verify(&stamp.to_string(), &Policy::new(10, ["bob@example.org"]));
/// assert!(verdict.is_valid());
/// ```
pub fn verify(stamp: &str, policy: &Policy) -> Verdict {
    Verifier::new(policy.clone())
        .check(stamp)
        .expect("a verifier without a spent store cannot fail")
}
