//! Accepted-resource patterns, matched as hashcash's default `-W` wildcard mode does:
//!
//! * without `*` or `?`: the whole resource, compared ASCII case-insensitively (or exactly, if
//!   case-sensitive matching was asked for);
//! * with wildcards and an `@`: the local parts are matched as a wildcard pattern, then the domains
//!   label by label (a `*` never crosses a `.`, and both must have the same number of labels), so
//!   `*@example.org` matches `bob@example.org` but not `bob@mail.example.org`;
//! * with wildcards and no `@`: the whole resource as one wildcard pattern (`*` alone matches
//!   anything; hashcash 1.22 crashes on that case).
//!
//! `*` matches any run of characters, `?` exactly one (hashcash itself only knows `*`).

/// One accepted resource or wildcard pattern, or one recipient's address.
///
/// An address ([`ResourcePattern::address`], what an MTA gives as an envelope recipient) is
/// compared as a mail address and never as a pattern: `*` in it is a plain character. It also
/// accepts a stamp that names it in hidden form (see [`crate::bind::hidden_resource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePattern {
    pattern: String,
    /// For an address: its normalized form.
    address: Option<String>,
    case_sensitive: bool,
    wild: bool,
    /// Where the pattern's first `@` is, if it has one.
    at: Option<usize>,
    /// Whether the domain after that `@` has no wildcard: then matching it label by label is
    /// comparing it whole (`*@example.org`, the usual shape, costs one comparison).
    literal_domain: bool,
}

impl ResourcePattern {
    /// A pattern, matched ASCII case-insensitively (hashcash's default).
    pub fn new(pattern: impl Into<String>) -> Self {
        let pattern = pattern.into();
        let at = pattern.find('@');
        ResourcePattern {
            address: None,
            wild: pattern.contains(['*', '?']),
            literal_domain: at.is_some_and(|i| !pattern[i + 1..].contains(['*', '?'])),
            at,
            pattern,
            case_sensitive: false,
        }
    }

    /// A recipient's address, matched literally as a mail address (domain case-insensitive,
    /// needless quotes ignored), or in its hidden form.
    pub fn address(addr: impl Into<String>) -> Self {
        let pattern = addr.into();
        ResourcePattern {
            address: Some(crate::bind::normalize_address(&pattern)),
            wild: false,
            at: None,
            literal_domain: false,
            pattern,
            case_sensitive: false,
        }
    }

    /// Whether this is a recipient's address rather than an operator's pattern.
    pub fn is_address(&self) -> bool {
        self.address.is_some()
    }

    /// Whether a stamp is for this resource: its resource matches, or (for an address) it names
    /// the address in hidden form, keyed by its random field.
    pub fn accepts(&self, stamp: &crate::Stamp) -> bool {
        match &self.address {
            Some(a) => crate::bind::resource_names(stamp.resource(), stamp.rand(), a),
            None => self.matches(stamp.resource()),
        }
    }

    /// The same pattern, matched case-sensitively (hashcash's `-C`).
    pub fn case_sensitive(mut self, yes: bool) -> Self {
        self.case_sensitive = yes;
        self
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `resource` matches. Allocates nothing.
    pub fn matches(&self, resource: &str) -> bool {
        if let Some(a) = &self.address {
            return crate::bind::same_address(resource, a);
        }
        let cs = self.case_sensitive;
        let (pat, res) = (self.pattern.as_bytes(), resource.as_bytes());
        if !self.wild {
            return if cs {
                pat == res
            } else {
                pat.eq_ignore_ascii_case(res)
            };
        }
        let split = |b: &'_ [u8]| -> Option<(usize, usize)> {
            b.iter().position(|&c| c == b'@').map(|i| (i, i + 1))
        };
        match (self.at.map(|i| (i, i + 1)), split(res)) {
            (Some((pu, pd)), Some((ru, rd))) => {
                let (pdom, rdom) = (&pat[pd..], &res[rd..]);
                let domain = if self.literal_domain {
                    if cs {
                        pdom == rdom
                    } else {
                        pdom.eq_ignore_ascii_case(rdom)
                    }
                } else {
                    pdom.split(|&c| c == b'.').count() == rdom.split(|&c| c == b'.').count()
                        && pdom
                            .split(|&c| c == b'.')
                            .zip(rdom.split(|&c| c == b'.'))
                            .all(|(p, r)| wild(p, r, cs))
                };
                domain && wild(&pat[..pu], &res[..ru], cs)
            }
            (Some(_), None) => false,
            (None, _) => wild(pat, res, cs),
        }
    }
}

/// Glob matching with `*` (any run) and `?` (one byte), backtracking only to the last `*`.
fn wild(p: &[u8], s: &[u8], case_sensitive: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(&b)
        }
    };
    let same = |a: &[u8], b: &[u8]| a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| eq(x, y));
    // The usual shapes, `literal`, `*` and `*literal`, without backtracking.
    if !p.contains(&b'*') && !p.contains(&b'?') {
        return same(p, s);
    }
    if let Some(rest) = p.strip_prefix(b"*")
        && !rest.contains(&b'*')
        && !rest.contains(&b'?')
    {
        return s.len() >= rest.len() && same(&s[s.len() - rest.len()..], rest);
    }
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && (p[pi] == b'?' || eq(p[pi], s[si])) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, r: &str) -> bool {
        ResourcePattern::new(p).matches(r)
    }

    /// The glob, by its definition (recursive, exponential): the reference for `wild`.
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, _) => s.is_empty(),
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => {
                (c == b'?' || c.eq_ignore_ascii_case(&d)) && glob(&p[1..], &s[1..])
            }
        }
    }

    #[test]
    fn wild_agrees_with_the_definition_on_every_short_input() {
        fn all(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
            let mut out = vec![vec![]];
            let mut last = vec![vec![]];
            for _ in 0..max {
                last = last
                    .iter()
                    .flat_map(|w| alphabet.iter().map(move |&c| [w.as_slice(), &[c]].concat()))
                    .collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        let patterns = all(b"aB*?", 4);
        let subjects = all(b"abA", 4);
        for p in &patterns {
            for s in &subjects {
                assert_eq!(wild(p, s, false), glob(p, s), "{p:?} {s:?}");
            }
        }
    }

    /// A domain without wildcards compared whole agrees with the label-by-label rule.
    #[test]
    fn literal_domain_shortcut_agrees_with_label_matching() {
        let resources = [
            "bob@example.org",
            "bob@EXAMPLE.org",
            "bob@example.org.",
            "bob@mail.example.org",
            "bob@exampleorg",
            "bob@example",
            "@example.org",
            "bob@",
            "bob",
            "a@b@example.org",
            "bob@example.org@x",
        ];
        for p in [
            "*@example.org",
            "b?b@Example.Org",
            "*@example",
            "*@",
            "x*@a.b.c",
        ] {
            for cs in [false, true] {
                let fast = ResourcePattern::new(p).case_sensitive(cs);
                assert!(fast.literal_domain, "{p}");
                let mut slow = fast.clone();
                slow.literal_domain = false;
                for r in resources {
                    assert_eq!(fast.matches(r), slow.matches(r), "{p} {r} cs={cs}");
                }
            }
        }
    }

    /// An envelope recipient is never a pattern: `*` or `*@domain` names only itself.
    #[test]
    fn addresses_are_literal() {
        let star = ResourcePattern::address("*");
        assert!(star.matches("*"));
        assert!(!star.matches("bob@example.org"));
        let dom = ResourcePattern::address("*@example.org");
        assert!(!dom.matches("bob@example.org"));
        assert!(ResourcePattern::address("\"Bob\"@EXAMPLE.org").matches("bob@example.org"));
    }

    #[test]
    fn exact_is_case_insensitive_by_default() {
        assert!(m("Bob@Example.org", "bob@example.ORG"));
        assert!(!m("bob@example.org", "bob@example.org.evil"));
        assert!(
            !ResourcePattern::new("Bob@x")
                .case_sensitive(true)
                .matches("bob@x")
        );
    }

    #[test]
    fn wildcards_fold_case_unless_asked() {
        assert!(m("B*@EXAMPLE.org", "bob@example.ORG"));
        assert!(
            !ResourcePattern::new("B*@example.org")
                .case_sensitive(true)
                .matches("bob@example.org")
        );
        assert!(
            ResourcePattern::new("b*@example.org")
                .case_sensitive(true)
                .matches("bob@example.org")
        );
    }

    #[test]
    fn wildcards_follow_hashcash_email_rules() {
        assert!(m("*@example.org", "bob@example.org"));
        assert!(!m("*@example.org", "bob@mail.example.org"));
        assert!(m("*@*.example.org", "bob@mail.example.org"));
        assert!(m("b*@ex*.org", "bob@example.org"));
        assert!(!m("b*@ex*.org", "alice@example.org"));
        assert!(m("?ob@example.org", "bob@example.org"));
        assert!(!m("?ob@example.org", "bbob@example.org"));
        assert!(!m("*@example.org", "plain-resource"));
        assert!(m("*", "anything@at.all"));
        assert!(m("foo*bar", "foo-x-bar"));
        assert!(!m("foo*bar", "foo-x-baz"));
        assert!(m("a*b*c", "aXbYbZc"));
    }
}
