//! `Authentication-Results` fields (RFC 8601): DKIM in one field, `x-hashcash` in another (some
//! consumers drop a whole field when it holds a method they do not know).
//!
//! Values are written as RFC 8601's grammar wants them, never rewritten: the authserv-id and
//! property values as a token, an address (`local@domain`) or a quoted string with `"` and `\`
//! escaped; comments with `(`, `)` and `\` escaped. Fields fold only between tokens (and
//! between the words of a comment), so unfolding gives back exactly what was written.

use crate::mail::{Eol, format_field_tokens};
use crate::postage::{MessageVerdict, Outcome, StampVerdict};

/// RFC 2045 token characters: printable ASCII except the tspecials.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// The authserv-id of an Authentication-Results value, read with RFC 8601's grammar: after
/// any comments and white space (CFWS, comments nested, with quoted-pairs), a token or a quoted
/// string (its quoted-pairs undone). `None` when the value does not start that way.
pub fn authserv_id(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut i = 0;
    // CFWS
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'(' {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if depth > 0 {
                return None;
            }
            continue;
        }
        break;
    }
    if i < b.len() && b[i] == b'"' {
        let mut out = Vec::new();
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() => {
                    out.push(b[i + 1]);
                    i += 2;
                }
                b'"' => return String::from_utf8(out).ok(),
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        return None;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b[i]) {
        i += 1;
    }
    (i > start).then(|| value[start..i].to_owned())
}

/// `raw` (a whole message) without the `Authentication-Results` fields that claim `ours` as
/// their authserv-id: forgeries of our verdicts, removed before ours are added (RFC 8601 5).
pub fn without_forged(msg: &crate::mail::Message, ours: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.as_bytes().len());
    for f in msg.fields() {
        let forged = f.name.eq_ignore_ascii_case("Authentication-Results")
            && authserv_id(&f.value()).is_some_and(|id| id.eq_ignore_ascii_case(ours));
        if !forged {
            out.extend_from_slice(f.raw);
        }
    }
    // The fields lie end to end from the first byte: what follows them (the empty line and
    // the body) is kept as it came.
    let head: usize = msg.fields().map(|f| f.raw.len()).sum();
    out.extend_from_slice(&msg.as_bytes()[head..]);
    out
}

/// A property value (or the authserv-id): as it is when the grammar allows, else quoted.
pub fn pvalue(s: &str) -> String {
    if is_token(s) {
        return s.to_owned();
    }
    if let Some((local, domain)) = s.rsplit_once('@')
        && (local.is_empty() || is_dot_atom(local))
        && is_dot_atom(domain)
    {
        return s.to_owned();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            // Not representable in an ASCII header (control characters, and non-ASCII ones
            // outside RFC 6532): shown as their code point, not passed through.
            c if c.is_control() || !c.is_ascii() => {
                q.push_str(&c.escape_unicode().to_string().replace('\\', "\\\\"))
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A comment, `(text)`, with `(`, `)` and `\` escaped; its words, for folding between them.
fn comment(text: &str) -> Vec<String> {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => escaped.push(' '),
            // Non-ASCII shown as its code point (a quoted-pair keeps the backslash).
            c if !c.is_ascii() => {
                escaped.push_str(&c.escape_unicode().to_string().replace('\\', "\\\\"))
            }
            c => escaped.push(c),
        }
    }
    let words: Vec<&str> = escaped.split(' ').filter(|w| !w.is_empty()).collect();
    let n = words.len();
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut t = String::new();
            if i == 0 {
                t.push('(');
            }
            t.push_str(w);
            if i + 1 == n {
                t.push(')');
            }
            t
        })
        .collect()
}

/// One result being written: tokens that are never broken.
#[derive(Default)]
struct Result_(Vec<String>);

impl Result_ {
    fn new(method: &str, result: &str) -> Self {
        Result_(vec![format!("{method}={result}")])
    }
    fn comment(mut self, text: &str) -> Self {
        if !text.is_empty() {
            self.0.extend(comment(text));
        }
        self
    }
    fn prop(mut self, name: &str, value: &str) -> Self {
        self.0.push(format!("{name}={}", pvalue(value)));
        self
    }
}

/// The field: the authserv-id, then the results separated by `;`.
fn field(authserv_id: &str, results: Vec<Result_>, eol: Eol) -> String {
    let mut tokens: Vec<String> = Vec::new();
    let n = results.len();
    tokens.push(format!("{};", pvalue(authserv_id)));
    for (i, r) in results.into_iter().enumerate() {
        let mut r = r.0;
        if i + 1 < n
            && let Some(last) = r.last_mut()
        {
            last.push(';');
        }
        tokens.extend(r);
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    format_field_tokens("Authentication-Results", &refs, eol)
}

/// The DKIM field: one `dkim=` result per signature, or `dkim=none`.
pub fn dkim_field(authserv_id: &str, v: &MessageVerdict, eol: Eol) -> String {
    field(authserv_id, dkim_results(v), eol)
}

/// The sender-validation field: the `dkim=` results of [`dkim_field`], then `spf=` (for
/// `smtp.mailfrom`, or `smtp.helo` for the null sender) and `dmarc=` (with the policy and what
/// aligned, for `header.from`).
#[cfg(feature = "dns")]
pub fn sender_field(
    authserv_id: &str,
    v: &MessageVerdict,
    spf: &crate::sender::SpfVerdict,
    dmarc: &crate::sender::DmarcVerdict,
    eol: Eol,
) -> String {
    use crate::sender::{DmarcResult, SpfIdentity};
    let mut results = dkim_results(v);
    // Our reason for an error; never the domain's exp= text, which is the sender's words
    // (`... dmarc=pass` in it would fool a consumer that greps the field): JSON carries it.
    let why = spf.reason.as_deref().unwrap_or("");
    let prop = match spf.identity {
        SpfIdentity::MailFrom => "smtp.mailfrom",
        SpfIdentity::Helo => "smtp.helo",
    };
    results.push(
        Result_::new("spf", spf.result.keyword())
            .comment(why)
            .prop(prop, &spf.sender),
    );
    let aligned: Vec<&str> = [("dkim", dmarc.dkim_aligned), ("spf", dmarc.spf_aligned)]
        .iter()
        .filter(|(_, a)| *a)
        .map(|(m, _)| *m)
        .collect();
    let note = match (dmarc.result, &dmarc.reason) {
        (DmarcResult::PermError | DmarcResult::TempError, Some(r)) => r.clone(),
        (DmarcResult::None, _) => String::new(),
        _ => format!(
            "p={}{}{}",
            dmarc.policy.keyword(),
            if dmarc.testing { " t=y" } else { "" },
            if aligned.is_empty() {
                ", nothing aligned".to_owned()
            } else {
                format!(", aligned: {}", aligned.join(" "))
            }
        ),
    };
    let mut r = Result_::new("dmarc", dmarc.result.keyword()).comment(&note);
    if !dmarc.from_domain.is_empty() {
        r = r.prop("header.from", &dmarc.from_domain);
    }
    results.push(r);
    field(authserv_id, results, eol)
}

fn dkim_results(v: &MessageVerdict) -> Vec<Result_> {
    let mut results = Vec::new();
    if v.dkim.is_empty() {
        results.push(Result_::new("dkim", "none"));
    }
    for d in &v.dkim {
        let mut r =
            Result_::new("dkim", d.status.keyword()).comment(d.status.reason().unwrap_or(""));
        if !d.domain.is_empty() {
            r = r.prop("header.d", &d.domain);
        }
        if !d.selector.is_empty() {
            r = r.prop("header.s", &d.selector);
        }
        if !d.algorithm.is_empty() {
            r = r.prop("header.a", &d.algorithm);
        }
        results.push(r);
    }
    results
}

/// The two fields for a message that could not be checked (too large, unreadable, a store or
/// DNS failure): `dkim` and `x-hashcash` with `result` (`permerror` or `temperror`) and why.
pub fn unchecked_fields(authserv_id: &str, result: &str, why: &str, eol: Eol) -> [String; 2] {
    [
        field(
            authserv_id,
            vec![Result_::new("dkim", result).comment(why)],
            eol,
        ),
        field(
            authserv_id,
            vec![Result_::new("x-hashcash", result).comment(why)],
            eol,
        ),
    ]
}

/// What one result says of a stamp: its bits, whether a signature covers it, its resource, or
/// why it is not valid, or which checks were not made.
fn stamp_result(outcome: Outcome, s: &StampVerdict, aligned: Option<&[String]>) -> Result_ {
    let mut r = Result_::new("x-hashcash", outcome.keyword());
    if s.verdict.is_valid() {
        let bound = match (&s.bound_to, aligned) {
            (Some(d), None) => format!("signed by {d}"),
            (Some(d), Some(a)) if a.iter().any(|x| x.eq_ignore_ascii_case(d)) => {
                format!("signed by {d}, aligned with From")
            }
            (Some(d), Some(_)) => format!("signed by {d}, not aligned with From"),
            (None, _) => "unsigned".to_owned(),
        };
        let unchecked: Vec<&str> = s.verdict.unchecked.iter().map(|u| u.name()).collect();
        let note = if unchecked.is_empty() {
            String::new()
        } else {
            format!(", not checked: {}", unchecked.join(" "))
        };
        // A memory-hard stamp's bits are in its own unit: say which.
        let unit = match s.verdict.parsed().map(|p| p.algorithm()) {
            Some(a) if a.is_memory_hard() => format!("{} bits", a.name()),
            _ => "bits".to_owned(),
        };
        r = r.comment(&format!("{:.2} {unit}, {bound}{note}", s.verdict.value));
    } else if let Err(e) = &s.verdict.result() {
        let msg: String = e.to_string().chars().take(120).collect();
        r = r.comment(&msg);
    }
    if let Some(p) = s.verdict.parsed() {
        r = r.prop("header.resource", p.resource());
    }
    r
}

/// The stamp field: one `x-hashcash=pass|neutral|fail|none` result per recipient named in the
/// message's To or Cc (hidden recipients get none, and are not counted or named), one for the
/// whole message when the header names none of them, or without recipients one for the best
/// stamp; each with its stamp's bits, whether a signature covers it, and the policy's
/// minimum. Neutral: valid, but a check was not made (never pass).
pub fn hashcash_field(
    authserv_id: &str,
    v: &MessageVerdict,
    required_bits: Option<u32>,
    eol: Eol,
) -> String {
    hashcash_field_aligned(authserv_id, v, required_bits, None, eol)
}

/// [`hashcash_field`], saying of each signed stamp whether its signature is aligned with the
/// From domain (one of `aligned`, the DMARC-aligned signing domains), when DMARC was checked.
pub fn hashcash_field_aligned(
    authserv_id: &str,
    v: &MessageVerdict,
    required_bits: Option<u32>,
    aligned: Option<&[String]>,
    eol: Eol,
) -> String {
    let mut results = Vec::new();
    if v.recipients.is_empty() {
        let best = v
            .stamps
            .iter()
            .filter(|s| s.verdict.is_valid())
            .max_by(|a, b| a.verdict.value.total_cmp(&b.verdict.value));
        results.push(match best.or(v.stamps.first()) {
            Some(s) => stamp_result(v.hashcash(), s, aligned),
            None => Result_::new("x-hashcash", "none"),
        });
    }
    // Every recipient of the message reads this field: only those its To and Cc name get a
    // result, so the field tells no one of a hidden recipient, paid or not. When the header names
    // none of them, one result for the message as a whole.
    for r in v.recipients.iter().filter(|r| r.visible) {
        results.push(match r.stamp {
            Some(i) => stamp_result(r.outcome, &v.stamps[i], aligned),
            None => {
                Result_::new("x-hashcash", "none").comment(&format!("no stamp for {}", r.address))
            }
        });
    }
    if results.is_empty() {
        results.push(Result_::new("x-hashcash", v.hashcash().keyword()));
    }
    if let Some(b) = required_bits {
        results = results
            .into_iter()
            .map(|r| r.prop("policy.bits", &b.to_string()))
            .collect();
    }
    field(authserv_id, results, eol)
}

/// The ticket field: one `x-postage-ticket=pass|fail|temperror|none` result per recipient
/// named in the message's To or Cc whose ticket was looked at, with the ticket's issuer and the
/// domain of a passing signature that covers it; `x-postage-ticket=none` when there is none.
/// Hidden recipients are never named.
#[cfg(feature = "tickets")]
pub fn ticket_field(
    authserv_id: &str,
    tickets: &[crate::ticket::message::RecipientTicket],
    eol: Eol,
) -> String {
    use crate::ticket::message::TicketOutcome;
    let mut results = Vec::new();
    for t in tickets.iter().filter(|t| t.visible) {
        let mut r = Result_::new("x-postage-ticket", t.outcome.keyword());
        r = match &t.outcome {
            TicketOutcome::Fail(why) | TicketOutcome::TempError(why) => {
                r.comment(&why.chars().take(120).collect::<String>())
            }
            TicketOutcome::Pass { repeat: true } => r.comment("cancelled before: a retry"),
            _ => r,
        };
        r = r.prop("smtp.rcpt", &t.address);
        if let Some(i) = &t.issuer {
            r = r.prop("header.iss", i);
        }
        if let Some(d) = &t.signed_by {
            r = r.prop("header.d", d);
        }
        results.push(r);
    }
    if results.is_empty() {
        results.push(Result_::new("x-postage-ticket", "none"));
    }
    field(authserv_id, results, eol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_ascii_whatever_the_input() {
        for v in ["caf\u{e9}.example", "\u{fffd}\n", "a\u{1b}b"] {
            assert!(
                pvalue(v).bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{v:?}"
            );
            assert!(
                comment(v)
                    .concat()
                    .bytes()
                    .all(|b| (0x20..0x7f).contains(&b)),
                "{v:?}"
            );
        }
    }

    #[test]
    fn values_are_quoted_not_rewritten() {
        assert_eq!(pvalue("s2_domainkey"), "s2_domainkey");
        assert_eq!(pvalue("mx.example.org"), "mx.example.org");
        assert_eq!(pvalue("bob@example.org"), "bob@example.org");
        assert_eq!(pvalue("a;b"), "\"a;b\"");
        assert_eq!(pvalue("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(comment("x (y) \\z"), ["(x", "\\(y\\)", "\\\\z)"]);
    }

    #[test]
    fn long_values_fold_between_tokens_only() {
        let long = format!("averyvery{}@sub.domain.example.net", "long".repeat(20));
        let f = field(
            "mx.example.org",
            vec![
                Result_::new("x-hashcash", "pass")
                    .comment("20.00 bits, signed by s2._domainkey.example.org")
                    .prop("header.resource", &long),
            ],
            Eol::Crlf,
        );
        let unfolded = f.replace("\r\n\t", " ");
        assert!(
            unfolded.contains(&format!("header.resource={long}\r\n")),
            "{f}"
        );
        assert!(unfolded.contains("s2._domainkey.example.org"), "{f}");
        assert!(!unfolded.trim_end().contains('\t'), "{f}");
    }
}
