//! Canonicalization of header fields and bodies (RFC 6376 section 3.4), used by DKIM and by
//! the stamp binding (the body digest in a stamp's extension). Messages with bare LF line endings are treated
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
/// Allocates the whole canonical body: for hashing, [`body_into`] streams it instead.
pub fn body(c: Canon, bytes: &[u8], limit: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    body_into(c, bytes, limit, &mut |piece| out.extend_from_slice(piece));
    out
}

/// SHA-256 of the canonical body, streamed (see [`body_into`]).
pub fn body_hash(c: Canon, bytes: &[u8], limit: Option<u64>) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    body_into(c, bytes, limit, &mut |piece| h.update(piece));
    h.finalize().into()
}

/// Feeds the canonical form of a body to `sink`, piece by piece, without building it: the
/// memory used is constant whatever the body. Runs of empty lines are only counted, and written
/// out when a non-empty line follows them (trailing empty lines are dropped, RFC 6376 3.4.3 and
/// 3.4.4). With `limit`, at most that many canonical octets are fed (the `l=` tag). Returns the
/// number of octets fed.
pub fn body_into(c: Canon, bytes: &[u8], limit: Option<u64>, sink: &mut dyn FnMut(&[u8])) -> u64 {
    let mut left = limit.unwrap_or(u64::MAX);
    let mut fed = 0u64;
    let mut emit = |piece: &[u8]| {
        let n = (piece.len() as u64).min(left) as usize;
        if n > 0 {
            sink(&piece[..n]);
            left -= n as u64;
            fed += n as u64;
        }
    };
    const CRLFS: &[u8] = b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
    let mut pending_empty: u64 = 0;
    let mut any = false;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let end = if i > 0 && rest[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                (&rest[..end], &rest[i + 1..])
            }
            None => (rest, &[][..]),
        };
        rest = next;
        let empty = match c {
            Canon::Simple => line.is_empty(),
            Canon::Relaxed => line.iter().all(|&b| is_wsp(b)),
        };
        if empty {
            pending_empty += 1;
            continue;
        }
        while pending_empty > 0 {
            let n = pending_empty.min((CRLFS.len() / 2) as u64);
            emit(&CRLFS[..2 * n as usize]);
            pending_empty -= n;
        }
        any = true;
        match c {
            Canon::Simple => emit(line),
            Canon::Relaxed => {
                // Runs of white space become one space; white space at the end goes.
                let mut i = 0;
                let mut first = true;
                while i < line.len() {
                    let start = i;
                    while i < line.len() && !is_wsp(line[i]) {
                        i += 1;
                    }
                    if i > start {
                        if !first || start > 0 {
                            emit(b" ");
                        }
                        emit(&line[start..i]);
                        first = false;
                    }
                    while i < line.len() && is_wsp(line[i]) {
                        i += 1;
                    }
                }
            }
        }
        emit(b"\r\n");
    }
    if !any && c == Canon::Simple {
        emit(b"\r\n");
    }
    fed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body canonicalization as RFC 6376 words it, one vector per line: the reference the
    /// streaming version is checked against.
    fn reference(c: Canon, bytes: &[u8], limit: Option<u64>) -> Vec<u8> {
        let mut ls: Vec<Vec<u8>> = lines(bytes)
            .into_iter()
            .map(|l| match c {
                Canon::Simple => l.to_vec(),
                Canon::Relaxed => {
                    let mut out = Vec::new();
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
        let mut out = Vec::new();
        for l in &ls {
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
        if out.is_empty() && c == Canon::Simple {
            out.extend_from_slice(b"\r\n");
        }
        if let Some(n) = limit {
            out.truncate((n as usize).min(out.len()));
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn streaming_body_is_the_reference(
            body in proptest::collection::vec(proptest::sample::select(b" \t\r\nab".to_vec()), 0..80),
            limit in proptest::option::of(0u64..100),
        ) {
            for c in [Canon::Simple, Canon::Relaxed] {
                proptest::prop_assert_eq!(body_fn(c, &body, limit), reference(c, &body, limit));
            }
        }
    }

    fn body_fn(c: Canon, bytes: &[u8], limit: Option<u64>) -> Vec<u8> {
        body(c, bytes, limit)
    }

    /// A long run of empty lines costs no memory beyond a counter, and comes out whole.
    #[test]
    fn runs_of_empty_lines_are_counted() {
        let mut body = b"a\r\n".to_vec();
        body.extend(std::iter::repeat_n(b"\r\n".as_slice(), 1000).flatten());
        body.extend_from_slice(b"b\r\n");
        let mut pieces = 0;
        let n = body_into(Canon::Relaxed, &body, None, &mut |_| pieces += 1);
        assert_eq!(n as usize, 3 + 2000 + 3);
        assert!(pieces < 100, "{pieces} pieces");
        assert_eq!(
            body_fn(Canon::Relaxed, &body, None),
            reference(Canon::Relaxed, &body, None)
        );
    }

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
