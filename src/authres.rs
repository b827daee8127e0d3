//! `Authentication-Results` fields (RFC 8601): DKIM in one field, `x-hashcash` in another (some
//! consumers drop a whole field when it holds a method they do not know).

use crate::mail::{Eol, format_field};
use crate::message::{MessageVerdict, Outcome, StampVerdict};

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

/// What one result says of a stamp: its bits, whether a signature covers it, its resource, or
/// why it is not valid, or which checks were not made.
fn stamp_result(outcome: Outcome, s: &StampVerdict) -> String {
    let mut r = format!("x-hashcash={}", outcome.keyword());
    if s.verdict.is_valid() {
        let bound = match &s.bound_to {
            Some(d) => format!("signed by {}", clean(d)),
            None => "unsigned".to_owned(),
        };
        let unchecked: Vec<&str> = s.verdict.unchecked.iter().map(|u| u.name()).collect();
        let note = if unchecked.is_empty() {
            String::new()
        } else {
            format!(", not checked: {}", unchecked.join(" "))
        };
        r.push_str(&format!(" ({:.2} bits, {bound}{note})", s.verdict.value));
    } else if let Err(e) = &s.verdict.result() {
        let msg = clean(&e.to_string()).replace('_', " ");
        r.push_str(&format!(" ({})", msg.chars().take(120).collect::<String>()));
    }
    if let Some(p) = &s.verdict.parsed {
        r.push_str(&format!(" header.resource={}", clean(p.resource())));
    }
    r
}

/// The stamp field: one `x-hashcash=pass|neutral|fail|none` result per recipient (a recipient
/// not named in the message's header is not named here either), or without recipients one for
/// the best stamp; each with its stamp's bits, whether a signature covers it, and the policy's
/// minimum. Neutral: valid, but a check was not made (never pass).
pub fn hashcash_field(
    authserv_id: &str,
    v: &MessageVerdict,
    required_bits: Option<u32>,
    eol: Eol,
) -> String {
    let policy = required_bits.map_or(String::new(), |b| format!(" policy.bits={b}"));
    let mut results = Vec::new();
    if v.recipients.is_empty() {
        let best = v
            .stamps
            .iter()
            .filter(|s| s.verdict.is_valid())
            .max_by(|a, b| a.verdict.value.total_cmp(&b.verdict.value));
        results.push(match best.or(v.stamps.first()) {
            Some(s) => stamp_result(v.hashcash(), s),
            None => "x-hashcash=none".to_owned(),
        });
    }
    for (n, r) in v.recipients.iter().enumerate() {
        results.push(match r.stamp {
            Some(i) => stamp_result(r.outcome, &v.stamps[i]),
            None if r.visible => format!("x-hashcash=none (no stamp for {})", clean(&r.address)),
            None => format!("x-hashcash=none (no stamp for recipient {})", n + 1),
        });
    }
    let results: Vec<String> = results.into_iter().map(|r| r + &policy).collect();
    format_field(
        "Authentication-Results",
        &format!("{}; {}", clean(authserv_id), results.join("; ")),
        eol,
    )
}
