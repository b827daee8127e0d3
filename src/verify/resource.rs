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

/// One accepted resource or wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePattern {
    pattern: String,
    case_sensitive: bool,
}

impl ResourcePattern {
    /// A pattern, matched ASCII case-insensitively (hashcash's default).
    pub fn new(pattern: impl Into<String>) -> Self {
        ResourcePattern {
            pattern: pattern.into(),
            case_sensitive: false,
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

    /// Whether `resource` matches.
    pub fn matches(&self, resource: &str) -> bool {
        let fold = |s: &str| {
            if self.case_sensitive {
                s.to_owned()
            } else {
                s.to_ascii_lowercase()
            }
        };
        let (pat, res) = (fold(&self.pattern), fold(resource));
        if !pat.contains(['*', '?']) {
            return pat == res;
        }
        match (pat.split_once('@'), res.split_once('@')) {
            (Some((pu, pd)), Some((ru, rd))) => {
                let (pl, rl): (Vec<&str>, Vec<&str>) =
                    (pd.split('.').collect(), rd.split('.').collect());
                wild(pu.as_bytes(), ru.as_bytes())
                    && pl.len() == rl.len()
                    && pl
                        .iter()
                        .zip(&rl)
                        .all(|(p, r)| wild(p.as_bytes(), r.as_bytes()))
            }
            (Some(_), None) => false,
            (None, _) => wild(pat.as_bytes(), res.as_bytes()),
        }
    }
}

/// Glob matching with `*` (any run) and `?` (one byte), linear-time backtracking to the last `*`.
fn wild(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
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
