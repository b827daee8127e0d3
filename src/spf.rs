//! `check_host()` of RFC 7208 (SPF), written here: the crates we tried (`mail-auth` 0.13,
//! `mailrs-spf`) failed a quarter of the RFC 7208 test suite or lacked `ptr`, macros, `exp=` and
//! the void-lookup limit, and some of their failures authorised clients a record does not
//! (`ip4:1.2.3.4/33` read as a match). The record grammar is RFC 7208 section 12, checked whole
//! before anything is evaluated; lookups go through the hickory resolver the DKIM key lookups
//! use.
//!
//! Limits against costly records, all RFC 7208 4.6.4: at most [`MAX_DNS_TERMS`] mechanisms and
//! modifiers that query the DNS (include, a, mx, ptr, exists, redirect) per check, includes
//! and redirects counted together; at most [`MAX_VOID_LOOKUPS`] lookups that find nothing;
//! at most 10 exchanges per `mx` (more: permerror) and 10 names per `ptr` or `%{p}` (the rest
//! ignored); the resolver's own timeout per query, and [`MAX_CHECK_TIME`] per check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// Mechanisms and modifiers that query the DNS, per check (RFC 7208 4.6.4).
pub const MAX_DNS_TERMS: u32 = 10;
/// Lookups that return no record (NXDOMAIN or no data), per check; one more is a permerror.
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// Address records looked up per `mx` mechanism (more exchanges: permerror) and names
/// validated per `ptr` mechanism or `%{p}` macro (the rest ignored).
pub const MAX_NAMES: usize = 10;
/// The time one check may take, its lookups included (RFC 7208 4.6.4 asks for at least 20 s).
pub const MAX_CHECK_TIME: Duration = Duration::from_secs(20);
/// Longest SPF record considered (a record of many strings is joined first): far above any
/// real record (they fit in a 512-byte UDP answer), and bounds the parser's work.
pub const MAX_RECORD_LEN: usize = 4096;
/// Longest text a macro-string may expand to (a name is cut to 253 octets afterwards, an
/// explanation to 512 characters): past it the expansion is a permerror for a record's term
/// and no explanation for `exp=`, so `%{s}` repeated over a long sender costs little memory.
pub const MAX_EXPANSION: usize = 8192;

/// An SPF result (RFC 7208 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    /// No record, or no checkable domain.
    None,
    /// The domain makes no statement on the client.
    Neutral,
    /// The client is authorised.
    Pass,
    /// The client is not authorised.
    Fail,
    /// The client is probably not authorised.
    SoftFail,
    /// A DNS failure for now.
    TempError,
    /// The domain's records cannot be interpreted (or exceed a limit).
    PermError,
}

impl SpfResult {
    /// The keyword of Authentication-Results (RFC 8601) and of the JSON output.
    pub fn keyword(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

/// What `check_host()` found: the result, the explanation of a `fail` when the domain gives
/// one, and why, for an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The result.
    pub result: SpfResult,
    /// The expanded `exp=` text of a fail.
    pub explanation: Option<String>,
    /// Why, for a permerror or temperror.
    pub reason: Option<String>,
}

/// The inputs of `check_host()`.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The client's address (an IPv4-mapped IPv6 address is taken as IPv4).
    pub ip: IpAddr,
    /// The domain whose record is checked.
    pub domain: &'a str,
    /// The sender (`local@domain`; `postmaster@domain` for the HELO identity).
    pub sender: &'a str,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// This host's name, for `%{r}`.
    pub receiver: &'a str,
}

enum Answer<T> {
    Records(Vec<T>),
    Void,
    Error(String),
}

#[derive(Debug)]
enum Stop {
    Temp(String),
    Perm(String),
}

type Step<T> = Result<T, Stop>;

/// A record's result, with the `exp=` domain-spec and domain of a fail, as a boxed future
/// (`check` recurses through include and redirect).
type Checked<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Step<(SpfResult, Option<(String, String)>)>> + Send + 'a>,
>;

fn perm<T>(why: impl Into<String>) -> Step<T> {
    Err(Stop::Perm(why.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn result(self) -> SpfResult {
        match self {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

#[derive(Debug, Default)]
struct Record {
    directives: Vec<(Qualifier, Mechanism)>,
    redirect: Option<String>,
    exp: Option<String>,
}

/// Whether a TXT record is an SPF record: `v=spf1` alone or followed by a space.
fn is_spf(txt: &[u8]) -> bool {
    txt.len() >= 6 && txt[..6].eq_ignore_ascii_case(b"v=spf1") && (txt.len() == 6 || txt[6] == b' ')
}

fn parse_cidr(s: &str, max: u8) -> Option<u8> {
    // "0" or a number without a leading zero.
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u8>().ok().filter(|&n| n <= max)
}

/// `ADDRESS[/LENGTH]` of an `ip4` or `ip6` mechanism (`max`: the full length).
fn address_and_prefix<A: std::str::FromStr>(
    net: &str,
    max: u8,
    family: &str,
    term: &str,
) -> Step<(A, u8)> {
    let (addr, len) = match net.rsplit_once('/') {
        Some((a, l)) => (
            a,
            parse_cidr(l, max).ok_or_else(|| Stop::Perm(format!("bad prefix length in {term}")))?,
        ),
        None => (net, max),
    };
    let addr = addr
        .parse()
        .map_err(|_| Stop::Perm(format!("bad {family} address in {term}")))?;
    Ok((addr, len))
}

/// `[ip4-cidr-length] ["/" ip6-cidr-length]` at the end of an `a` or `mx` mechanism.
fn split_dual_cidr(s: &str) -> Step<(&str, u8, u8)> {
    let mut rest = s;
    let mut v6 = 128;
    let mut v4 = 32;
    if let Some(i) = rest.find("//") {
        v6 = parse_cidr(&rest[i + 2..], 128)
            .ok_or_else(|| Stop::Perm(format!("bad IPv6 prefix length in {s}")))?;
        rest = &rest[..i];
    }
    if let Some(i) = rest.rfind('/') {
        // In a domain-spec a '/' is a macro-literal; a prefix length is the last '/' with
        // digits only after it.
        let tail = &rest[i + 1..];
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            v4 = parse_cidr(tail, 32)
                .ok_or_else(|| Stop::Perm(format!("bad IPv4 prefix length in {s}")))?;
            rest = &rest[..i];
        } else if tail.is_empty() {
            return perm(format!("empty prefix length in {s}"));
        }
    }
    Ok((rest, v4, v6))
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// RFC 7208's `toplabel`: alphanumerics with at least one letter, or alphanumerics and inner
/// hyphens.
fn is_toplabel(l: &str) -> bool {
    let b = l.as_bytes();
    if b.is_empty() || !b.iter().all(|&c| is_alnum(c) || c == b'-') {
        return false;
    }
    if b.contains(&b'-') {
        is_alnum(b[0]) && is_alnum(b[b.len() - 1])
    } else {
        b.iter().any(u8::is_ascii_alphabetic)
    }
}

/// Checks a macro-string's syntax (`exp_only` letters allowed or not); returns whether it ends
/// in a macro-expand.
fn check_macro_string(s: &str, in_exp: bool) -> Step<bool> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut ends_in_expand = false;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => {
                    i += 2;
                    ends_in_expand = true;
                }
                Some(b'{') => {
                    let Some(close) = s[i..].find('}') else {
                        return perm(format!("unterminated macro in {s}"));
                    };
                    parse_macro(&s[i + 2..i + close], in_exp)?;
                    i += close + 1;
                    ends_in_expand = true;
                }
                _ => return perm(format!("bad '%' in {s}")),
            }
        } else if (0x21..=0x7e).contains(&c) {
            i += 1;
            ends_in_expand = false;
        } else {
            return perm(format!("character {c:#04x} not allowed in {s:?}"));
        }
    }
    Ok(ends_in_expand)
}

/// A domain-spec: a macro-string ending in a macro-expand or in `.toplabel[.]`.
fn domain_spec(s: &str) -> Step<String> {
    if s.is_empty() {
        return perm("empty domain-spec");
    }
    if check_macro_string(s, false)? {
        return Ok(s.to_owned());
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    match trimmed.rsplit_once('.') {
        Some((_, top)) if is_toplabel(top) => Ok(s.to_owned()),
        _ => perm(format!("{s}: a domain must end in a top label")),
    }
}

struct MacroSpec {
    letter: u8,
    upper: bool,
    digits: Option<usize>,
    reverse: bool,
    delimiters: Vec<u8>,
}

fn parse_macro(body: &str, in_exp: bool) -> Step<MacroSpec> {
    let b = body.as_bytes();
    let Some(&letter) = b.first() else {
        return perm("empty macro");
    };
    let lower = letter.to_ascii_lowercase();
    let ok = b"slodipvh".contains(&lower) || (in_exp && b"crt".contains(&lower));
    if !ok {
        return perm(format!("unknown macro letter {:?}", letter as char));
    }
    let mut i = 1;
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let digits = if i > start {
        let n: usize = body[start..i]
            .parse()
            .map_err(|_| Stop::Perm(format!("bad macro transformer {body}")))?;
        if n == 0 {
            return perm(format!("macro transformer 0 in {body}"));
        }
        Some(n)
    } else {
        None
    };
    let mut reverse = false;
    if i < b.len() && (b[i] == b'r' || b[i] == b'R') {
        reverse = true;
        i += 1;
    }
    let delimiters: Vec<u8> = b[i..].to_vec();
    if !delimiters.iter().all(|d| b".-+,/_=".contains(d)) {
        return perm(format!("bad macro delimiter in {body}"));
    }
    Ok(MacroSpec {
        letter: lower,
        upper: letter.is_ascii_uppercase(),
        digits,
        reverse,
        delimiters,
    })
}

fn parse_record(text: &str) -> Step<Record> {
    let mut rec = Record::default();
    // Terms are separated by one or more spaces, and only spaces.
    for term in text[6..].split(' ').filter(|t| !t.is_empty()) {
        let bytes = term.as_bytes();
        // A modifier: name "=" ...; name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
        let name_len = bytes
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || b"-_.".contains(&c)))
            .unwrap_or(bytes.len());
        if bytes.get(name_len) == Some(&b'=') {
            let name = &term[..name_len];
            if name.is_empty() || !bytes[0].is_ascii_alphabetic() {
                return perm(format!("bad modifier {term}"));
            }
            let value = &term[name_len + 1..];
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if rec.redirect.is_some() {
                        return perm("two redirect modifiers");
                    }
                    rec.redirect = Some(domain_spec(value)?);
                }
                "exp" => {
                    if rec.exp.is_some() {
                        return perm("two exp modifiers");
                    }
                    rec.exp = Some(domain_spec(value)?);
                }
                _ => {
                    check_macro_string(value, false)?;
                }
            }
            continue;
        }
        let (q, mech) = match bytes[0] {
            b'+' => (Qualifier::Pass, &term[1..]),
            b'-' => (Qualifier::Fail, &term[1..]),
            b'~' => (Qualifier::SoftFail, &term[1..]),
            b'?' => (Qualifier::Neutral, &term[1..]),
            _ => (Qualifier::Pass, term),
        };
        let split = mech.find([':', '/']).unwrap_or(mech.len());
        let (name, rest) = (mech[..split].to_ascii_lowercase(), &mech[split..]);
        let arg = rest.strip_prefix(':');
        let m = match (name.as_str(), arg) {
            ("all", None) if rest.is_empty() => Mechanism::All,
            ("include", Some(d)) => Mechanism::Include(domain_spec(d)?),
            ("exists", Some(d)) => Mechanism::Exists(domain_spec(d)?),
            ("ptr", None) if rest.is_empty() => Mechanism::Ptr(None),
            ("ptr", Some(d)) => Mechanism::Ptr(Some(domain_spec(d)?)),
            ("a" | "mx", _) => {
                let (spec, v4, v6) = split_dual_cidr(rest)?;
                let domain = match spec.strip_prefix(':') {
                    Some(d) => Some(domain_spec(d)?),
                    None if spec.is_empty() => None,
                    None => return perm(format!("bad mechanism {term}")),
                };
                if name == "a" {
                    Mechanism::A(domain, v4, v6)
                } else {
                    Mechanism::Mx(domain, v4, v6)
                }
            }
            ("ip4", Some(net)) => {
                let (addr, len) = address_and_prefix::<Ipv4Addr>(net, 32, "IPv4", term)?;
                Mechanism::Ip4(addr, len)
            }
            ("ip6", Some(net)) => {
                let (addr, len) = address_and_prefix::<Ipv6Addr>(net, 128, "IPv6", term)?;
                Mechanism::Ip6(addr, len)
            }
            _ => return perm(format!("unknown or malformed mechanism {term}")),
        };
        rec.directives.push((q, m));
    }
    Ok(rec)
}

fn in_net4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_net6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// A name that can be asked for: labels of 1 to 63 octets, 253 in all. A label may hold any
/// octet (a macro can put spaces or `%` in one), sent as it is.
fn valid_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty() && n.len() <= 253 && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// A name from an answer as text, its labels' octets as they are (not escaped).
fn name_text(n: &Name) -> String {
    n.iter()
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(".")
}

/// The wire name of `name` (valid by [`valid_name`]), labels taken as octets.
fn wire_name(name: &str) -> Option<Name> {
    let n = name.strip_suffix('.').unwrap_or(name);
    let mut w = Name::from_labels(n.split('.').map(str::as_bytes)).ok()?;
    w.set_fqdn(true);
    Some(w)
}

/// Whether a domain can be checked at all (RFC 7208 4.3): a valid multi-label name.
fn checkable(domain: &str) -> bool {
    valid_name(domain) && domain.trim_end_matches('.').contains('.') && !domain.starts_with('[')
}

fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Checker<'r> {
    resolver: &'r TokioResolver,
    started: Instant,
    dns_terms: u32,
    void: u32,
    ip: IpAddr,
    helo: String,
    receiver: String,
    /// The validated name of `ip` for `%{p}`, once looked up (per target domain).
    p_cache: Vec<(String, String)>,
}

impl Checker<'_> {
    fn time_left(&self) -> Step<Duration> {
        MAX_CHECK_TIME
            .checked_sub(self.started.elapsed())
            .ok_or_else(|| Stop::Temp(format!("the check took over {MAX_CHECK_TIME:?}")))
    }

    fn count_term(&mut self) -> Step<()> {
        self.dns_terms += 1;
        if self.dns_terms > MAX_DNS_TERMS {
            return perm(format!(
                "more than {MAX_DNS_TERMS} DNS-querying mechanisms and modifiers"
            ));
        }
        Ok(())
    }

    fn count_void<T>(&mut self, a: Answer<T>) -> Step<Vec<T>> {
        match a {
            Answer::Records(r) if !r.is_empty() => Ok(r),
            Answer::Records(_) | Answer::Void => {
                self.void += 1;
                if self.void > MAX_VOID_LOOKUPS {
                    return perm(format!("more than {MAX_VOID_LOOKUPS} void DNS lookups"));
                }
                Ok(Vec::new())
            }
            Answer::Error(e) => Err(Stop::Temp(e)),
        }
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer<RData> {
        if !valid_name(name) {
            return Answer::Void;
        }
        let left = match self.time_left() {
            Ok(l) => l,
            Err(Stop::Temp(e) | Stop::Perm(e)) => return Answer::Error(e),
        };
        let Some(wire) = wire_name(name) else {
            return Answer::Void;
        };
        let fut = self.resolver.lookup(wire, rtype);
        match tokio::time::timeout(left, fut).await {
            Err(_) => Answer::Error(format!("DNS lookups over {MAX_CHECK_TIME:?}")),
            Ok(Ok(l)) => Answer::Records(
                l.answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect(),
            ),
            Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Answer::Void,
            Ok(Err(e)) => Answer::Error(format!("DNS lookup of {name} ({rtype}): {e}")),
        }
    }

    async fn txt(&self, name: &str) -> Answer<Vec<u8>> {
        match self.lookup(name, RecordType::TXT).await {
            Answer::Records(rs) => Answer::Records(
                rs.into_iter()
                    .filter_map(|r| match r {
                        RData::TXT(t) => Some(t.txt_data.iter().flat_map(|s| s.to_vec()).collect()),
                        _ => None,
                    })
                    .collect(),
            ),
            Answer::Void => Answer::Void,
            Answer::Error(e) => Answer::Error(e),
        }
    }

    /// The client family's addresses of `name` (A for IPv4, AAAA for IPv6).
    async fn addresses(&self, name: &str, v6: bool) -> Answer<IpAddr> {
        let rtype = if v6 { RecordType::AAAA } else { RecordType::A };
        match self.lookup(name, rtype).await {
            Answer::Records(rs) => Answer::Records(
                rs.into_iter()
                    .filter_map(|r| match r {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect(),
            ),
            Answer::Void => Answer::Void,
            Answer::Error(e) => Answer::Error(e),
        }
    }

    fn ip_matches(&self, addr: IpAddr, v4: u8, v6: u8) -> bool {
        match (self.ip, addr) {
            (IpAddr::V4(ip), IpAddr::V4(a)) => in_net4(ip, a, v4),
            (IpAddr::V6(ip), IpAddr::V6(a)) => in_net6(ip, a, v6),
            _ => false,
        }
    }

    /// The names of the client's address that resolve back to it (RFC 7208 5.5), at most
    /// [`MAX_NAMES`] of the PTR answer checked. A failed PTR lookup gives none.
    async fn validated_names(&self) -> Vec<String> {
        let rev = match self.ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(a) => {
                nibbles(a).into_iter().rev().collect::<Vec<_>>().join(".") + ".ip6.arpa"
            }
        };
        let names: Vec<String> = match self.lookup(&rev, RecordType::PTR).await {
            Answer::Records(rs) => rs
                .into_iter()
                .filter_map(|r| match r {
                    RData::PTR(p) => Some(name_text(&p.0)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for n in names.into_iter().take(MAX_NAMES) {
            if let Answer::Records(addrs) = self.addresses(&n, self.ip.is_ipv6()).await
                && addrs.contains(&self.ip)
            {
                out.push(n);
            }
        }
        out
    }

    async fn p_macro(&mut self, domain: &str) -> String {
        if let Some((_, v)) = self.p_cache.iter().find(|(d, _)| d == domain) {
            return v.clone();
        }
        let names = self.validated_names().await;
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        let pick = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(&d))
            .or_else(|| {
                names
                    .iter()
                    .find(|n| n.to_ascii_lowercase().ends_with(&format!(".{d}")))
            })
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        self.p_cache.push((domain.to_owned(), pick.clone()));
        pick
    }

    /// Expands a macro-string for `domain` and `sender`.
    async fn expand(&mut self, s: &str, domain: &str, sender: &str, in_exp: bool) -> Step<String> {
        let b = s.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            if out.len() > MAX_EXPANSION {
                return perm(format!("a macro expansion over {MAX_EXPANSION} octets"));
            }
            if b[i] != b'%' {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            match b.get(i + 1) {
                Some(b'%') => {
                    out.push('%');
                    i += 2;
                }
                Some(b'_') => {
                    out.push(' ');
                    i += 2;
                }
                Some(b'-') => {
                    out.push_str("%20");
                    i += 2;
                }
                Some(b'{') => {
                    let close = s[i..]
                        .find('}')
                        .ok_or_else(|| Stop::Perm(format!("unterminated macro in {s}")))?;
                    let m = parse_macro(&s[i + 2..i + close], in_exp)?;
                    let value = self.macro_value(m.letter, domain, sender).await;
                    let delims: &[u8] = if m.delimiters.is_empty() {
                        b"."
                    } else {
                        &m.delimiters
                    };
                    let mut parts: Vec<&str> = value
                        .split(|c: char| c.is_ascii() && delims.contains(&(c as u8)))
                        .collect();
                    if m.reverse {
                        parts.reverse();
                    }
                    if let Some(n) = m.digits
                        && n < parts.len()
                    {
                        parts = parts.split_off(parts.len() - n);
                    }
                    let joined = parts.join(".");
                    if m.upper {
                        out.push_str(&url_escape(&joined));
                    } else {
                        out.push_str(&joined);
                    }
                    i += close + 1;
                }
                _ => return perm(format!("bad '%' in {s}")),
            }
        }
        Ok(out)
    }

    async fn macro_value(&mut self, letter: u8, domain: &str, sender: &str) -> String {
        let (local, sdomain) = sender.rsplit_once('@').unwrap_or(("postmaster", sender));
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        match letter {
            b's' => format!("{local}@{sdomain}"),
            b'l' => local.to_owned(),
            b'o' => sdomain.to_owned(),
            b'd' => domain.to_owned(),
            b'i' => match self.ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => nibbles(a).join("."),
            },
            b'p' => self.p_macro(domain).await,
            b'v' => if self.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_owned(),
            b'h' => self.helo.clone(),
            b'c' => self.ip.to_string(),
            b'r' => {
                if self.receiver.is_empty() {
                    "unknown".to_owned()
                } else {
                    self.receiver.clone()
                }
            }
            b't' => crate::clock::unix_now().to_string(),
            _ => String::new(),
        }
    }

    /// A domain-spec expanded into a name to ask for: over 253 octets, leading labels go.
    async fn target(&mut self, spec: &str, domain: &str, sender: &str) -> Step<String> {
        let mut name = self.expand(spec, domain, sender, false).await?;
        let mut t = name.trim_end_matches('.');
        while t.len() > 253 {
            match t.split_once('.') {
                Some((_, rest)) => t = rest,
                None => break,
            }
        }
        name = t.to_owned();
        Ok(name)
    }

    /// The SPF record of `domain`: `Ok(None)` when it has none.
    async fn record(&mut self, domain: &str) -> Step<Option<Record>> {
        let txts = match self.txt(domain).await {
            Answer::Records(r) => r,
            Answer::Void => return Ok(None),
            Answer::Error(e) => return Err(Stop::Temp(e)),
        };
        let spf: Vec<&Vec<u8>> = txts.iter().filter(|t| is_spf(t)).collect();
        match spf.as_slice() {
            [] => Ok(None),
            [one] => {
                if one.len() > MAX_RECORD_LEN {
                    return perm(format!(
                        "SPF record of {domain} over {MAX_RECORD_LEN} octets"
                    ));
                }
                let Ok(text) = std::str::from_utf8(one) else {
                    return perm(format!("SPF record of {domain} is not ASCII"));
                };
                if !text.is_ascii() {
                    return perm(format!("SPF record of {domain} is not ASCII"));
                }
                parse_record(text).map(Some)
            }
            _ => perm(format!("{domain} has {} SPF records", spf.len())),
        }
    }

    /// `check_host()` for `domain` and `sender`; the explanation is fetched by the caller.
    fn check<'a>(&'a mut self, domain: String, sender: &'a str, depth: u32) -> Checked<'a> {
        Box::pin(async move {
            if depth > MAX_DNS_TERMS + 1 {
                return perm("include and redirect nested too deep");
            }
            let Some(rec) = self.record(&domain).await? else {
                return Ok((SpfResult::None, None));
            };
            for (q, m) in &rec.directives {
                if self.matches(m, &domain, sender, depth).await? {
                    let exp = match (q, &rec.exp) {
                        (Qualifier::Fail, Some(e)) => Some((e.clone(), domain.clone())),
                        _ => None,
                    };
                    return Ok((q.result(), exp));
                }
            }
            if let Some(r) = &rec.redirect {
                self.count_term()?;
                let target = self.target(r, &domain, sender).await?;
                if !checkable(&target) {
                    return perm(format!("redirect to {target}, not a domain"));
                }
                return match self.check(target.clone(), sender, depth + 1).await? {
                    (SpfResult::None, _) => perm(format!("redirect to {target}: no SPF record")),
                    other => Ok(other),
                };
            }
            Ok((SpfResult::Neutral, None))
        })
    }

    async fn matches(
        &mut self,
        m: &Mechanism,
        domain: &str,
        sender: &str,
        depth: u32,
    ) -> Step<bool> {
        let v6 = self.ip.is_ipv6();
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => {
                Ok(matches!(self.ip, IpAddr::V4(ip) if in_net4(ip, *net, *len)))
            }
            Mechanism::Ip6(net, len) => {
                Ok(matches!(self.ip, IpAddr::V6(ip) if in_net6(ip, *net, *len)))
            }
            Mechanism::Include(spec) => {
                self.count_term()?;
                let target = self.target(spec, domain, sender).await?;
                if !valid_name(&target) {
                    return Ok(false);
                }
                match self.check(target.clone(), sender, depth + 1).await {
                    Ok((SpfResult::Pass, _)) => Ok(true),
                    Ok((SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral, _)) => {
                        Ok(false)
                    }
                    Ok((SpfResult::None, _)) => perm(format!("include:{target} has no SPF record")),
                    Ok((SpfResult::TempError, _)) => Err(Stop::Temp(format!("include:{target}"))),
                    Ok((SpfResult::PermError, _)) => perm(format!("include:{target}")),
                    Err(e) => Err(e),
                }
            }
            Mechanism::A(spec, v4len, v6len) => {
                self.count_term()?;
                let target = match spec {
                    Some(s) => self.target(s, domain, sender).await?,
                    None => domain.to_owned(),
                };
                if !valid_name(&target) {
                    return Ok(false);
                }
                let a = self.addresses(&target, v6).await;
                let addrs = self.count_void(a)?;
                Ok(addrs.iter().any(|&a| self.ip_matches(a, *v4len, *v6len)))
            }
            Mechanism::Mx(spec, v4len, v6len) => {
                self.count_term()?;
                let target = match spec {
                    Some(s) => self.target(s, domain, sender).await?,
                    None => domain.to_owned(),
                };
                if !valid_name(&target) {
                    return Ok(false);
                }
                let a = self.lookup(&target, RecordType::MX).await;
                let records = self.count_void(a)?;
                let exchanges: Vec<String> = records
                    .into_iter()
                    .filter_map(|r| match r {
                        RData::MX(mx) => Some(name_text(&mx.exchange)),
                        _ => None,
                    })
                    .collect();
                if exchanges.len() > MAX_NAMES {
                    return perm(format!(
                        "{target} has {} MX records (at most {MAX_NAMES})",
                        exchanges.len()
                    ));
                }
                for x in exchanges {
                    let a = self.addresses(&x, v6).await;
                    let addrs = self.count_void(a)?;
                    if addrs.iter().any(|&a| self.ip_matches(a, *v4len, *v6len)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_term()?;
                let target = match spec {
                    Some(s) => self.target(s, domain, sender).await?,
                    None => domain.to_owned(),
                };
                let t = target.trim_end_matches('.').to_ascii_lowercase();
                let names = self.validated_names().await;
                Ok(names.iter().any(|n| {
                    let n = n.to_ascii_lowercase();
                    n == t || n.ends_with(&format!(".{t}"))
                }))
            }
            Mechanism::Exists(spec) => {
                self.count_term()?;
                let target = self.target(spec, domain, sender).await?;
                if !valid_name(&target) {
                    return Ok(false);
                }
                // Always an A lookup, whatever the client's family (RFC 7208 5.7).
                let a = self.addresses(&target, false).await;
                Ok(!self.count_void(a)?.is_empty())
            }
        }
    }

    /// The explanation of a fail: the TXT record named by `exp=`, expanded; any trouble (no
    /// record, several, not ASCII, a bad macro, a DNS error) gives none (RFC 7208 6.2).
    async fn explanation(&mut self, spec: &str, domain: &str, sender: &str) -> Option<String> {
        let name = self.target(spec, domain, sender).await.ok()?;
        let txts = match self.txt(&name).await {
            Answer::Records(t) => t,
            _ => return None,
        };
        let [one] = txts.as_slice() else {
            return None;
        };
        let text = std::str::from_utf8(one).ok().filter(|t| t.is_ascii())?;
        // explanation-string = *( macro-string / SP )
        for piece in text.split(' ') {
            check_macro_string(piece, true).ok()?;
        }
        let expanded = self.expand(text, domain, sender, true).await.ok()?;
        // Printable ASCII only, and bounded.
        Some(
            expanded
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(512)
                .collect(),
        )
    }
}

/// The nibbles of an IPv6 address, most significant first, lowercase.
fn nibbles(a: Ipv6Addr) -> Vec<String> {
    a.octets()
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .map(|n| format!("{n:x}"))
        .collect()
}

/// `check_host()` (RFC 7208 4) through `resolver`.
pub async fn check_host(resolver: &TokioResolver, q: &Query<'_>) -> Outcome {
    let ip = match q.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(q.ip, IpAddr::V4),
        v4 => v4,
    };
    let domain = q.domain.trim_end_matches('.');
    if !checkable(domain) {
        return Outcome {
            result: SpfResult::None,
            explanation: None,
            reason: Some(format!("{domain:?} is not a domain that can be checked")),
        };
    }
    let mut c = Checker {
        resolver,
        started: Instant::now(),
        dns_terms: 0,
        void: 0,
        ip,
        helo: q.helo.to_owned(),
        receiver: q.receiver.to_owned(),
        p_cache: Vec::new(),
    };
    match c.check(domain.to_owned(), q.sender, 0).await {
        Ok((result, exp)) => {
            let explanation = match exp {
                Some((spec, d)) => c.explanation(&spec, &d, q.sender).await,
                None => None,
            };
            Outcome {
                result,
                explanation,
                reason: None,
            }
        }
        Err(Stop::Temp(e)) => Outcome {
            result: SpfResult::TempError,
            explanation: None,
            reason: Some(e),
        },
        Err(Stop::Perm(e)) => Outcome {
            result: SpfResult::PermError,
            explanation: None,
            reason: Some(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_grammar() {
        let ok = |t: &str| parse_record(t).is_ok();
        assert!(ok("v=spf1 ip4:192.0.2.0/24 a mx:example.org/24//64 -all"));
        assert!(ok("v=spf1 redirect=_spf.example.org"));
        assert!(ok("v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d}"));
        assert!(ok("v=spf1 a:a:b.example.com"));
        for bad in [
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip6:::1/129",
            "v=spf1 a/24/64",
            "v=spf1 a:museum",
            "v=spf1 a:111.222.33.44",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 exists:%{x}.example.org",
            "v=spf1 exists:%{d0}.example.org",
            "v=spf1 a:foo.example.com\0",
            "v=spf1 include",
            "v=spf1 allx",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any record text parses or is refused without panicking (bytes a hostile domain
        /// publishes), and whatever parses keeps within its grammar: prefix lengths in range,
        /// domain-specs whose macros all parse.
        #[test]
        fn any_record_parses_or_is_refused(
            body in "[ -~]{0,120}",
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "mx", "ptr", "all", "include:", "exists:", "ip4:", "ip6:", "redirect=",
                    "exp=", "%{", "}", "%%", "%_", "%-", "/", "//", ":", ".", "-", "~", "?", "+",
                    " ", "1", "32", "33", "128", "129", "0", "ir", "d2", "l1r+-", "p", "h", "x",
                    "example.org", "example.-com", "\u{0}", "\u{e9}",
                ]),
                0..24,
            ),
        ) {
            let text = format!("v=spf1 {body}{}", pieces.concat());
            if let Ok(rec) = parse_record(&text) {
                for (_, m) in &rec.directives {
                    match m {
                        Mechanism::Ip4(_, l) | Mechanism::A(_, l, _) | Mechanism::Mx(_, l, _) => {
                            proptest::prop_assert!(*l <= 32)
                        }
                        _ => {}
                    }
                    if let Mechanism::Ip6(_, l) | Mechanism::A(_, _, l) | Mechanism::Mx(_, _, l) = m {
                        proptest::prop_assert!(*l <= 128);
                    }
                }
                for spec in rec.redirect.iter().chain(&rec.exp) {
                    proptest::prop_assert!(check_macro_string(spec, false).is_ok());
                }
            }
            let _ = check_macro_string(&text, true);
        }
    }

    #[test]
    fn networks() {
        let net: Ipv4Addr = "192.0.2.0".parse().unwrap();
        assert!(in_net4("192.0.2.200".parse().unwrap(), net, 24));
        assert!(!in_net4("192.0.3.1".parse().unwrap(), net, 24));
        assert!(in_net4("10.0.0.1".parse().unwrap(), net, 0));
        let n6: Ipv6Addr = "2001:db8::".parse().unwrap();
        assert!(in_net6("2001:db8::1".parse().unwrap(), n6, 32));
        assert!(!in_net6("2001:db9::1".parse().unwrap(), n6, 32));
    }
}
