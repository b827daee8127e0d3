//! DKIM tag lists (RFC 6376 section 3.2): `name=value; name=value`, parsed strictly.

use super::DkimError;

/// The most tags a list may hold (RFC 6376 defines 14 for signatures and 7 for key records).
pub const MAX_TAGS: usize = 64;

/// A parsed tag list, in order, names unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    /// Parses a tag list. Folding white space around names and values is removed (and, inside
    /// values, kept as it is); a repeated tag, an empty name or a bad character is an error.
    pub fn parse(text: &str) -> Result<Tags, DkimError> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let specs: Vec<&str> = text.split(';').collect();
        if specs.len() > MAX_TAGS + 1 {
            return Err(DkimError::Syntax(format!("more than {MAX_TAGS} tags")));
        }
        for (i, spec) in specs.iter().enumerate() {
            let trimmed = spec.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            if trimmed.is_empty() {
                if i + 1 == specs.len() {
                    break; // a trailing ';' is allowed
                }
                return Err(DkimError::Syntax("empty tag".into()));
            }
            let Some((name, value)) = trimmed.split_once('=') else {
                return Err(DkimError::Syntax(format!("tag without '=': {trimmed:.40}")));
            };
            let name = name.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                return Err(DkimError::Syntax(format!("bad tag name {name:.40?}")));
            }
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
            {
                return Err(DkimError::Syntax(format!(
                    "control character in tag {name}"
                )));
            }
            if !seen.insert(name) {
                return Err(DkimError::Syntax(format!("tag {name} appears twice")));
            }
            out.push((name.to_owned(), value.to_owned()));
        }
        Ok(Tags(out))
    }

    /// The value of tag `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required tag.
    pub fn require(&self, name: &str) -> Result<&str, DkimError> {
        self.get(name)
            .ok_or_else(|| DkimError::Syntax(format!("required tag {name}= is missing")))
    }

    /// A base64 value with all folding white space removed, decoded.
    pub fn base64(&self, name: &str) -> Result<Vec<u8>, DkimError> {
        use base64::Engine;
        let v: String = self
            .require(name)?
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| DkimError::Syntax(format!("{name}= is not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_tag_lists() {
        let t = Tags::parse("v=1; a=rsa-sha256;\r\n\tb=ab\r\n cd; h = from : to ;").unwrap();
        assert_eq!(t.get("a"), Some("rsa-sha256"));
        assert_eq!(t.get("h"), Some("from : to"));
        assert_eq!(t.base64("b").unwrap(), vec![0x69, 0xb7, 0x1d]);
        for bad in [
            "v=1; v=1",
            "v=1;; a=b",
            "=1",
            "1a=2",
            "v",
            "v=1; a\x01=b",
            "v=\x01",
        ] {
            assert!(Tags::parse(bad).is_err(), "{bad:?}");
        }
    }
}
