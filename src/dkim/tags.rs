//! DKIM tag lists (RFC 6376 section 3.2): `name=value; name=value`, parsed strictly.

use super::SyntaxError;
use super::error::clip;

/// The most tags a list may hold (RFC 6376 defines 14 for signatures and 7 for key records).
pub const MAX_TAGS: usize = 64;

/// A parsed tag list, in order, names unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    /// Parses a tag list. Folding white space around names and values is removed (and, inside
    /// values, kept as it is); a repeated tag, an empty name or a bad character is an error.
    pub fn parse(text: &str) -> Result<Tags, SyntaxError> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let specs: Vec<&str> = text.split(';').collect();
        if specs.len() > MAX_TAGS + 1 {
            return Err(SyntaxError::TooManyTags);
        }
        for (i, spec) in specs.iter().enumerate() {
            let trimmed = spec.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            if trimmed.is_empty() {
                if i + 1 == specs.len() {
                    break; // a trailing ';' is allowed
                }
                return Err(SyntaxError::EmptyTag);
            }
            let Some((name, value)) = trimmed.split_once('=') else {
                return Err(SyntaxError::NoEquals {
                    text: clip(trimmed, 40),
                });
            };
            let name = name.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                return Err(SyntaxError::BadTagName {
                    name: clip(name, 40),
                });
            }
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
            {
                return Err(SyntaxError::ControlCharacter {
                    tag: name.to_owned(),
                });
            }
            if !seen.insert(name) {
                return Err(SyntaxError::RepeatedTag {
                    tag: name.to_owned(),
                });
            }
            if out.len() == MAX_TAGS {
                return Err(SyntaxError::TooManyTags); // 65 tags without a trailing ';'
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
    pub fn require(&self, name: &str) -> Result<&str, SyntaxError> {
        self.get(name).ok_or_else(|| SyntaxError::MissingTag {
            tag: name.to_owned(),
        })
    }

    /// A base64 value with all folding white space removed, decoded.
    pub fn base64(&self, name: &str) -> Result<Vec<u8>, SyntaxError> {
        use base64::Engine;
        let v: String = self
            .require(name)?
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|source| SyntaxError::NotBase64 {
                tag: name.to_owned(),
                source,
            })
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
        let tag = |t: &str| t.to_owned();
        for (bad, want) in [
            ("v=1; v=1", SyntaxError::RepeatedTag { tag: tag("v") }),
            ("a=1; a=2", SyntaxError::RepeatedTag { tag: tag("a") }),
            ("v=1;; a=b", SyntaxError::EmptyTag),
            ("=1", SyntaxError::BadTagName { name: tag("") }),
            ("1a=2", SyntaxError::BadTagName { name: tag("1a") }),
            ("v", SyntaxError::NoEquals { text: tag("v") }),
            (
                "v=1; a\x01=b",
                SyntaxError::BadTagName { name: tag("a\x01") },
            ),
            ("v=\x01", SyntaxError::ControlCharacter { tag: tag("v") }),
        ] {
            assert_eq!(Tags::parse(bad), Err(want), "{bad:?}");
        }
        // quoted input is cut short
        let long = format!("{}-=1", "x".repeat(99));
        let Err(SyntaxError::BadTagName { name }) = Tags::parse(&long) else {
            panic!("{long}");
        };
        assert_eq!(name.len(), 40);
        let many: String = (0..MAX_TAGS).map(|i| format!("t{i}=1;")).collect();
        assert!(
            Tags::parse(&many).is_ok(),
            "{MAX_TAGS} tags and a trailing ';'"
        );
        assert_eq!(
            Tags::parse(&format!("{many}x=1;")),
            Err(SyntaxError::TooManyTags)
        );
        assert_eq!(
            Tags::parse(&format!("{many}x=1")),
            Err(SyntaxError::TooManyTags),
            "65 tags without a trailing ';'"
        );
        assert_eq!(
            t.require("x"),
            Err(SyntaxError::MissingTag { tag: tag("x") })
        );
        assert!(matches!(
            t.base64("a"),
            Err(SyntaxError::NotBase64 { tag, .. }) if tag == "a"
        ));
    }
}
