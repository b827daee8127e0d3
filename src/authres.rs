//! `Authentication-Results` fields (RFC 8601): DKIM in one field, `x-hashcash` in another (some
//! consumers drop a whole field when it holds a method they do not know).

use crate::mail::{Eol, format_field};
use crate::message::{MessageVerdict, Outcome};

/// Keeps a value safe inside a comment or property: printable ASCII only, no parentheses,
/// backslashes or semicolons (which would end the comment or the result).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"()\\;\"".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The DKIM field: one `dkim=` result per signature, or `dkim=none`.
pub fn dkim_field(authserv_id: &str, v: &MessageVerdict, eol: Eol) -> String {
    let mut parts = vec![clean(authserv_id)];
    if v.dkim.is_empty() {
        parts.push("dkim=none".to_owned());
    }
    for d in &v.dkim {
        let mut r = format!("dkim={}", d.status.keyword());
        if let Some(reason) = d.status.reason() {
            r.push_str(&format!(" ({})", clean(reason).replace('_', " ")));
        }
        if !d.domain.is_empty() {
            r.push_str(&format!(" header.d={}", clean(&d.domain)));
        }
        if !d.selector.is_empty() {
            r.push_str(&format!(" header.s={}", clean(&d.selector)));
        }
        if !d.algorithm.is_empty() {
            r.push_str(&format!(" header.a={}", clean(&d.algorithm)));
        }
        parts.push(r);
    }
    format_field("Authentication-Results", &parts.join("; "), eol)
}

/// The stamp field: `x-hashcash=pass|fail|none` with the best stamp's bits, whether it is bound
/// to a signing domain, and the policy's minimum.
pub fn hashcash_field(
    authserv_id: &str,
    v: &MessageVerdict,
    required_bits: Option<u32>,
    eol: Eol,
) -> String {
    let result = match v.hashcash() {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::None => "none",
    };
    let best = v
        .stamps
        .iter()
        .filter(|s| s.verdict.is_valid())
        .max_by(|a, b| a.verdict.value.total_cmp(&b.verdict.value));
    let mut r = format!("x-hashcash={result}");
    match (best, v.stamps.first()) {
        (Some(s), _) => {
            let bound = match &s.bound_to {
                Some(d) => format!("signed by {}", clean(d)),
                None => "unsigned".to_owned(),
            };
            r.push_str(&format!(" ({:.2} bits, {bound})", s.verdict.value));
            if let Some(p) = &s.verdict.parsed {
                r.push_str(&format!(" header.resource={}", clean(p.resource())));
            }
        }
        (None, Some(first)) => {
            if let Err(e) = &first.verdict.result() {
                let msg = clean(&e.to_string()).replace('_', " ");
                r.push_str(&format!(" ({})", msg.chars().take(120).collect::<String>()));
            }
        }
        (None, None) => {}
    }
    if let Some(b) = required_bits {
        r.push_str(&format!(" policy.bits={b}"));
    }
    format_field(
        "Authentication-Results",
        &format!("{}; {r}", clean(authserv_id)),
        eol,
    )
}
