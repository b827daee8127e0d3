//! Integration tests, one binary. Data and its provenance live in `tests/data/`.
//!
//! Plain `cargo test` runs everything that needs no peer; tests that need a peer (hashcash,
//! dkimpy, Mail::DKIM, authheaders, the argon2 tool, argon2-cffi, openssl, dnsmasq,
//! redis-server, Postfix and root, the RFC 7208 SPF suite with dnslib and pyspf) are
//! `#[ignore]`d with the reason, and `bash .ci/run` installs the peers and runs them all
//! (`cargo test -- --include-ignored`), failing when a peer is missing. Modules that need a
//! cargo feature are compiled only with it.

#[cfg(feature = "cli")]
mod attacks;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod dkim;
#[cfg(all(feature = "cli", feature = "dns"))]
mod dmarc;
#[cfg(feature = "equix")]
mod equix;
#[cfg(feature = "cli")]
mod hostile;
mod interop;
mod kat;
mod memhard;
#[cfg(feature = "mail")]
mod memhard_attacks;
#[cfg(feature = "cli")]
mod memhard_cli;
#[cfg(all(feature = "cli", feature = "milter", feature = "ticketd"))]
mod milter;
mod minting;
#[cfg(all(feature = "cli", feature = "ticketd"))]
mod pg;
#[cfg(all(feature = "cli", feature = "redis"))]
mod pki;
#[cfg(all(feature = "cli", feature = "dns"))]
mod policy;
#[cfg(feature = "cli")]
mod reception;
#[cfg(all(feature = "cli", feature = "redis"))]
mod redis;
mod roundtrip;
#[cfg(all(feature = "cli", feature = "dns"))]
mod sender_attacks;
#[cfg(feature = "cli")]
mod spent;
#[cfg(all(feature = "cli", feature = "dns"))]
mod spf_suite;
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod support;
#[cfg(all(feature = "cli", feature = "ticketd"))]
mod ticketd;
#[cfg(all(feature = "cli", feature = "ticketd"))]
mod tickets;
mod verdicts;
#[cfg(all(feature = "cli", feature = "dns"))]
mod zone;
