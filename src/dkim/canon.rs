//! DKIM canonicalization (RFC 6376 section 3.4). Messages with bare LF line endings are treated
//! as they will be on the wire, with CRLF.

/// A canonicalization algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    /// `simple`: almost nothing changes.
    Simple,
    /// `relaxed`: tolerates white-space and case changes made in transit.
    Relaxed,
}

impl Canon {
    /// The name in the `c=` tag.
    pub fn name(self) -> &'static str {
        match self {
            Canon::Simple => "simple",
            Canon::Relaxed => "relaxed",
        }
    }

    /// Parses one half of a `c=` tag.
    pub fn parse(s: &str) -> Option<Canon> {
        match s {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        }
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Lines of `bytes` without their line endings (CRLF or bare LF); a final line without an
/// ending is included.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let end = if i > 0 && rest[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                out.push(&rest[..end]);
                rest = &rest[i + 1..];
            }
            None => {
                out.push(rest);
                rest = &[];
            }
        }
    }
    out
}

/// Canonical form of one header field (`raw`: the whole field as it came, with its line ending).
pub fn header(c: Canon, raw: &[u8]) -> Vec<u8> {
    match c {
        Canon::Simple => {
            let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 2);
            for (i, l) in lines(raw).into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(l);
            }
            out.extend_from_slice(b"\r\n");
            out
        }
        Canon::Relaxed => {
            let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
            let name = raw[..colon].trim_ascii_end().to_ascii_lowercase();
            let mut value = Vec::with_capacity(raw.len());
            let mut in_wsp = false;
            for &b in raw.get(colon + 1..).unwrap_or(&[]) {
                match b {
                    b'\r' | b'\n' => {}
                    b' ' | b'\t' => in_wsp = true,
                    _ => {
                        if in_wsp && !value.is_empty() {
                            value.push(b' ');
                        }
                        in_wsp = false;
                        value.push(b);
                    }
                }
            }
            let mut out = name;
            out.push(b':');
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// Canonical form of a body; `limit` keeps only that many canonical octets (the `l=` tag).
pub fn body(c: Canon, bytes: &[u8], limit: Option<u64>) -> Vec<u8> {
    let mut ls: Vec<Vec<u8>> = lines(bytes)
        .into_iter()
        .map(|l| match c {
            Canon::Simple => l.to_vec(),
            Canon::Relaxed => {
                let mut out = Vec::with_capacity(l.len());
                let mut in_wsp = false;
                for &b in l {
                    if is_wsp(b) {
                        in_wsp = true;
                    } else {
                        if in_wsp {
                            out.push(b' ');
                        }
                        in_wsp = false;
                        out.push(b);
                    }
                }
                out
            }
        })
        .collect();
    while ls.last().is_some_and(|l| l.is_empty()) {
        ls.pop();
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    for l in &ls {
        out.extend_from_slice(l);
        out.extend_from_slice(b"\r\n");
    }
    if out.is_empty() && c == Canon::Simple {
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = limit {
        out.truncate(usize::try_from(n).unwrap_or(usize::MAX).min(out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6376 section 3.4.5's example.
    #[test]
    fn rfc6376_example() {
        let a = header(Canon::Relaxed, b"A: X\r\n");
        let b = header(Canon::Relaxed, b"B : Y\t\r\n\tZ  \r\n");
        assert_eq!([a, b].concat(), b"a:X\r\nb:Y Z\r\n");
        let body_in = b" C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(body(Canon::Relaxed, body_in, None), b" C\r\nD E\r\n");
        assert_eq!(body(Canon::Simple, body_in, None), b" C \r\nD \t E\r\n");
        assert_eq!(
            header(Canon::Simple, b"B : Y\t\r\n\tZ  \r\n"),
            b"B : Y\t\r\n\tZ  \r\n"
        );
    }

    #[test]
    fn empty_bodies_and_lf_endings() {
        assert_eq!(body(Canon::Simple, b"", None), b"\r\n");
        assert_eq!(body(Canon::Relaxed, b"", None), b"");
        assert_eq!(body(Canon::Relaxed, b"\n\n", None), b"");
        assert_eq!(body(Canon::Simple, b"a\nb\n\n", None), b"a\r\nb\r\n");
        assert_eq!(body(Canon::Simple, b"a", None), b"a\r\n");
        assert_eq!(body(Canon::Relaxed, b"abc\r\n", Some(2)), b"ab");
        assert_eq!(header(Canon::Relaxed, b"Subject:  x \n"), b"subject:x\r\n");
    }
}
