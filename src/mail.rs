//! RFC 5322 messages as raw bytes: the header block split into fields with their exact original
//! bytes (folding and line endings kept), the body untouched, and new fields inserted at the top,
//! folded, in the message's own line-ending style. Nothing here rewrites what it did not add.
//!
//! This module knows nothing of stamps or signatures: stamping and checking a whole message is
//! [`postage`](crate::postage)'s room, DKIM is [`dkim`](crate::dkim)'s.

use std::ops::Range;

/// Limits on what a message may cost to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest header block accepted, in bytes.
    pub max_header_bytes: usize,
    /// The longest line accepted, in octets without the line ending (RFC 5322 says 998).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 1 << 20,
            max_line: 998,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// No empty line separates the header block from the body.
    #[error("no empty line separates the header fields from the body")]
    NoSeparator,
    /// The header block is larger than the limit.
    #[error("the header block is larger than {0} bytes")]
    HeaderTooLarge(usize),
    /// A line is longer than the limit.
    #[error("line {line} is {len} octets long, more than the {max} allowed")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A header line is neither a field (`name: value`) nor a continuation.
    #[error("header line {0} is not a field (name: value) nor a folded continuation")]
    BadField(usize),
    /// A header field holds a NUL byte or bytes that are not UTF-8.
    #[error("header line {0} holds a NUL byte or is not valid UTF-8")]
    BadBytes(usize),
}

/// The message's line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eol {
    /// `\r\n`, as on the wire.
    Crlf,
    /// A bare `\n`, as in mbox files and pipes from local delivery agents.
    Lf,
}

impl Eol {
    /// The bytes of the line ending.
    pub fn as_str(self) -> &'static str {
        match self {
            Eol::Crlf => "\r\n",
            Eol::Lf => "\n",
        }
    }
}

/// One header field of a parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    name: Range<usize>,
    raw: Range<usize>,
}

/// A parsed message: the original bytes and where each header field lies in them.
#[derive(Debug, Clone)]
pub struct Message {
    raw: Vec<u8>,
    fields: Vec<Field>,
    body: usize,
    eol: Eol,
}

impl Message {
    /// Parses `raw` with the default limits.
    pub fn parse(raw: Vec<u8>) -> Result<Message, MailError> {
        Message::parse_with(raw, Limits::default())
    }

    /// Parses `raw`, refusing it when it breaks `limits`.
    pub fn parse_with(raw: Vec<u8>, limits: Limits) -> Result<Message, MailError> {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        let mut line_no = 0;
        let mut eol = None;
        let body = loop {
            if pos >= raw.len() {
                return Err(MailError::NoSeparator);
            }
            if pos > limits.max_header_bytes {
                return Err(MailError::HeaderTooLarge(limits.max_header_bytes));
            }
            line_no += 1;
            let nl = memchr::memchr(b'\n', &raw[pos..]).map(|i| pos + i);
            let Some(nl) = nl else {
                return Err(MailError::NoSeparator);
            };
            let content_end = if nl > pos && raw[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            eol.get_or_insert(if content_end < nl { Eol::Crlf } else { Eol::Lf });
            let line = &raw[pos..content_end];
            if line.len() > limits.max_line {
                return Err(MailError::LineTooLong {
                    line: line_no,
                    len: line.len(),
                    max: limits.max_line,
                });
            }
            if line.is_empty() {
                break nl + 1;
            }
            if line.contains(&0) || std::str::from_utf8(line).is_err() {
                return Err(MailError::BadBytes(line_no));
            }
            if line[0] == b' ' || line[0] == b'\t' {
                match fields.last_mut() {
                    Some(f) => f.raw.end = nl + 1,
                    None => return Err(MailError::BadField(line_no)),
                }
            } else {
                let colon = line.iter().position(|&b| b == b':');
                let name_ok =
                    |n: &[u8]| !n.is_empty() && n.iter().all(|&b| (33..=126).contains(&b));
                match colon {
                    Some(c) if name_ok(&line[..c]) => fields.push(Field {
                        name: pos..pos + c,
                        raw: pos..nl + 1,
                    }),
                    _ => return Err(MailError::BadField(line_no)),
                }
            }
            pos = nl + 1;
        };
        if body > limits.max_header_bytes {
            return Err(MailError::HeaderTooLarge(limits.max_header_bytes));
        }
        Ok(Message {
            raw,
            fields,
            body,
            eol: eol.unwrap_or(Eol::Crlf),
        })
    }

    /// The message's line ending (that of its first line).
    pub fn eol(&self) -> Eol {
        self.eol
    }

    /// The original bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The body: everything after the empty line, untouched.
    pub fn body(&self) -> &[u8] {
        &self.raw[self.body..]
    }

    /// The header fields, top to bottom.
    pub fn fields(&self) -> impl Iterator<Item = FieldRef<'_>> {
        self.fields.iter().map(|f| FieldRef {
            name: std::str::from_utf8(&self.raw[f.name.clone()]).unwrap_or(""),
            raw: &self.raw[f.raw.clone()],
        })
    }

    /// The fields named `name` (ASCII case-insensitive), top to bottom.
    pub fn fields_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = FieldRef<'a>> + 'a {
        self.fields()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
    }

    /// The addresses in `To` and `Cc` (groups, display names, quoted local parts, comments and
    /// encoded words handled by the `mail-parser` crate), in order, without duplicates.
    pub fn recipients(&self) -> Vec<String> {
        let head = &self.raw[..self.body];
        let mut out: Vec<String> = Vec::new();
        if let Some(m) = mail_parser::MessageParser::new().parse_headers(head) {
            for list in [m.to(), m.cc()].into_iter().flatten() {
                for a in list.iter() {
                    if let Some(addr) = a.address()
                        && !out.iter().any(|o| o.eq_ignore_ascii_case(addr))
                    {
                        out.push(addr.to_owned());
                    }
                }
            }
        }
        out
    }

    /// The message with `new` fields (already formatted by [`format_field`]) inserted above the
    /// first field; everything else byte for byte as it came.
    pub fn with_fields_on_top(&self, new: &[String]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.raw.len() + new.iter().map(String::len).sum::<usize>());
        for f in new {
            out.extend_from_slice(f.as_bytes());
        }
        out.extend_from_slice(&self.raw);
        out
    }
}

/// A header field of a [`Message`]: its name and its exact raw bytes (name, colon, value, any
/// folding, and the final line ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// The field name as written.
    pub name: &'a str,
    /// The whole field as it came.
    pub raw: &'a [u8],
}

impl FieldRef<'_> {
    /// The value after the colon, unfolded (line endings before white space removed), with the
    /// final line ending and surrounding white space removed.
    pub fn value(&self) -> String {
        let text = String::from_utf8_lossy(&self.raw[self.name.len() + 1..]);
        text.replace("\r\n", "").replace('\n', "").trim().to_owned()
    }
}

/// The longest line a header field may have, without its line ending (RFC 5322 2.1.1).
pub const MAX_LINE: usize = 998;

/// Formats `name: value` folded to at most 78 columns where possible, continuation lines starting
/// with a TAB, each line ended with `eol`. Folds only at spaces in `value`, that is between
/// tokens, never inside one: a run without spaces (a stamp, a long property value) stays whole on
/// its line, however long, so unfolding per RFC 5322 gives back exactly `value`'s tokens.
pub fn format_field(name: &str, value: &str, eol: Eol) -> String {
    let tokens: Vec<&str> = value.split(' ').collect();
    format_field_tokens(name, &tokens, eol)
}

/// [`format_field`] for a value given as tokens: joined by single spaces, folded only between
/// them, never inside one.
pub fn format_field_tokens(name: &str, tokens: &[&str], eol: Eol) -> String {
    const WIDTH: usize = 78;
    let mut out =
        String::with_capacity(name.len() + tokens.iter().map(|t| t.len() + 1).sum::<usize>() + 16);
    out.push_str(name);
    out.push(':');
    let first = name.len() + 1;
    let mut col = first;
    for word in tokens {
        if col + 1 + word.len() > WIDTH && col > first {
            out.push_str(eol.as_str());
            out.push('\t');
            col = 1;
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out.push_str(eol.as_str());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding happens between tokens only: a long token stays whole on its own line.
    #[test]
    fn fields_fold_between_tokens_only() {
        let stamp = format!("1:20:261127:{}@example.org::salt:AAAA", "x".repeat(120));
        let f = format_field("X-Hashcash", &stamp, Eol::Crlf);
        assert_eq!(f, format!("X-Hashcash: {stamp}\r\n"));
        let f = format_field("A", &format!("short {} tail", "y".repeat(90)), Eol::Lf);
        assert_eq!(f, format!("A: short\n\t{}\n\ttail\n", "y".repeat(90)));
    }

    #[test]
    fn fields_keep_their_bytes_and_folding() {
        let raw =
            b"From: a@example.org\r\nSubject: one\r\n two\r\nTo: b@example.org\r\n\r\nbody\r\n"
                .to_vec();
        let m = Message::parse(raw.clone()).unwrap();
        let f: Vec<_> = m.fields().collect();
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].raw, b"Subject: one\r\n two\r\n");
        assert_eq!(f[1].value(), "one two");
        assert_eq!(m.body(), b"body\r\n");
        assert_eq!(m.eol(), Eol::Crlf);
        assert_eq!(m.with_fields_on_top(&[]), raw);
    }

    #[test]
    fn lf_messages_and_empty_bodies() {
        let m = Message::parse(b"From: a\nTo: b\n\n".to_vec()).unwrap();
        assert_eq!(m.eol(), Eol::Lf);
        assert!(m.body().is_empty());
        let added = m.with_fields_on_top(&[format_field("X-Test", "v", m.eol())]);
        assert_eq!(added, b"X-Test: v\nFrom: a\nTo: b\n\n");
    }

    #[test]
    fn recipients_from_to_and_cc() {
        let raw = b"From: a@x.org\r\nTo: \"Bob, B.\" <bob@example.org>, undisclosed:;\r\nCc: team: c@x.org, D <\"d.e\"@x.org>;, bob@example.org (again), =?utf-8?q?J=C3=B6rg?= <j@x.org>\r\n\r\n";
        let m = Message::parse(raw.to_vec()).unwrap();
        assert_eq!(
            m.recipients(),
            vec!["bob@example.org", "c@x.org", "\"d.e\"@x.org", "j@x.org"]
        );
    }

    #[test]
    fn bad_messages_are_refused() {
        assert_eq!(
            Message::parse(b"From: a\r\n".to_vec()).unwrap_err(),
            MailError::NoSeparator
        );
        assert_eq!(
            Message::parse(b" folded\r\n\r\n".to_vec()).unwrap_err(),
            MailError::BadField(1)
        );
        assert_eq!(
            Message::parse(b"no colon\r\n\r\n".to_vec()).unwrap_err(),
            MailError::BadField(1)
        );
        assert_eq!(
            Message::parse(b"A: \xff\r\n\r\n".to_vec()).unwrap_err(),
            MailError::BadBytes(1)
        );
        assert_eq!(
            Message::parse(b"A: \0\r\n\r\n".to_vec()).unwrap_err(),
            MailError::BadBytes(1)
        );
        let long = format!("A: {}\r\n\r\n", "x".repeat(1000)).into_bytes();
        assert!(matches!(
            Message::parse(long).unwrap_err(),
            MailError::LineTooLong { .. }
        ));
        let big = format!("{}\r\n", "A: x\r\n".repeat(200)).into_bytes();
        let tight = Limits {
            max_header_bytes: 100,
            ..Limits::default()
        };
        assert!(matches!(
            Message::parse_with(big, tight).unwrap_err(),
            MailError::HeaderTooLarge(_)
        ));
    }

    #[test]
    fn folding_stays_within_78_columns() {
        // A stamp is one token: it stays whole on its line, however long.
        let stamp = format!(
            "2:sha256:16:16:261127:bob@example.org::{}:AAAA,BBBB",
            "r".repeat(90)
        );
        let f = format_field("X-Hashcash", &stamp, Eol::Crlf);
        assert_eq!(f, format!("X-Hashcash: {stamp}\r\n"));
        let words = format_field("Subject", &"word ".repeat(40), Eol::Lf);
        assert!(words.lines().all(|l| l.len() <= 78));
        assert!(words.lines().skip(1).all(|l| l.starts_with('\t')));
    }
}
