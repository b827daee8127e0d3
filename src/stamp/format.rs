//! Stamp grammar, writing side (see docs/FORMAT.md). A stamp's text is
//! written here and then read back by `parse`, so what we write is always what we accept.

use std::fmt::Write;

use super::{Algorithm, StampDate, Version};

/// The fields of a stamp before its counters are known.
pub(crate) struct Fields<'a> {
    pub(crate) version: Version,
    pub(crate) alg: Algorithm,
    pub(crate) bits: u32,
    pub(crate) parts: u32,
    pub(crate) date: &'a StampDate,
    pub(crate) resource: &'a str,
    pub(crate) ext: &'a str,
    pub(crate) rand: &'a str,
}

/// Everything the counters are appended to: for versions 1 and 2 the stamp up to and including
/// the colon before the counter(s); for version 0 (no counter field) the whole stamp.
pub(crate) fn build_prefix(f: &Fields<'_>) -> String {
    let mut out = String::with_capacity(64 + f.resource.len() + f.ext.len() + f.rand.len());
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = match f.version {
        Version::V0 => write!(w, "0:{}:{}:{}", f.date, f.resource, f.rand),
        Version::V1 => write!(
            w,
            "1:{}:{}:{}:{}:{}:",
            f.bits, f.date, f.resource, f.ext, f.rand
        ),
        Version::V2 => write!(
            w,
            "2:{}:{}:{}:{}:{}:{}:{}:",
            f.alg, f.bits, f.parts, f.date, f.resource, f.ext, f.rand
        ),
    };
    out
}
