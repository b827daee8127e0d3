//! Stamp grammar, writing side (see the README's "Stamp formats" section). `parse` followed by
//! `write` gives back the input byte for byte (less surrounding white space).

use std::fmt::{self, Write};

use super::{Stamp, Version};

pub(crate) fn write(s: &Stamp, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&prefix(s))?;
    match s.version {
        Version::V0 => Ok(()),
        Version::V1 | Version::V2 => f.write_str(&s.counters.join(",")),
    }
}

/// Everything the counters are appended to: for versions 1 and 2 the stamp up to and including the
/// colon before the counter(s); for version 0 (no counter field) the whole stamp.
pub(crate) fn prefix(s: &Stamp) -> String {
    let mut out = String::with_capacity(64 + s.resource.len() + s.ext.len() + s.rand.len());
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = match s.version {
        Version::V0 => write!(w, "0:{}:{}:{}", s.date, s.resource, s.rand),
        Version::V1 => write!(
            w,
            "1:{}:{}:{}:{}:{}:",
            s.bits, s.date, s.resource, s.ext, s.rand
        ),
        Version::V2 => write!(
            w,
            "2:{}:{}:{}:{}:{}:{}:{}:",
            s.alg,
            s.bits,
            s.counters.len(),
            s.date,
            s.resource,
            s.ext,
            s.rand
        ),
    };
    out
}
