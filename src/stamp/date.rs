//! The DATE field: UTC `YY[MM[DD[hh[mm[ss]]]]]`, 2 to 12 digits in pairs.
//!
//! Two-digit years are read as hashcash reads them: in the century of the verifier's clock, moved by
//! 100 years when that puts them more than 50 years away. Missing parts default to the start of the
//! period (month 01, day 01, 00:00:00). Unlike hashcash, impossible calendar dates (month 13,
//! 31 April, day 00) are refused instead of being rolled into the next month.

use std::fmt;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::error::ParseError;

/// A stamp's date field, kept as its digits (inline, no allocation) so it formats back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StampDate {
    digits: [u8; 12],
    len: u8,
}

impl StampDate {
    /// Checks the shape (2, 4, 6, 8, 10 or 12 ASCII digits; month, day, hour, minute and second in
    /// range). The year is resolved later, against a clock, by [`StampDate::to_unix`].
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::BadDate(s.to_owned());
        let b = s.as_bytes();
        if !matches!(b.len(), 2 | 4 | 6 | 8 | 10 | 12) || !b.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let pair = |i: usize| -> Option<u8> {
            (i + 2 <= b.len()).then(|| (b[i] - b'0') * 10 + (b[i + 1] - b'0'))
        };
        let in_range = |v: Option<u8>, lo: u8, hi: u8| v.is_none_or(|v| (lo..=hi).contains(&v));
        if !(in_range(pair(2), 1, 12)
            && in_range(pair(4), 1, 31)
            && in_range(pair(6), 0, 23)
            && in_range(pair(8), 0, 59)
            && in_range(pair(10), 0, 59))
        {
            return Err(bad());
        }
        let mut digits = [0u8; 12];
        digits[..b.len()].copy_from_slice(b);
        Ok(StampDate {
            digits,
            len: b.len() as u8,
        })
    }

    /// Writes `unix` (seconds, UTC) as a date of `width` digits (6, 10 or 12 when minting; 2 to 12
    /// in pairs in general), truncating to the period the width can show.
    pub fn from_unix(unix: i64, width: usize) -> Result<Self, String> {
        if !matches!(width, 2 | 4 | 6 | 8 | 10 | 12) {
            return Err(format!(
                "date width {width} is not one of 2, 4, 6, 8, 10, 12"
            ));
        }
        let t = OffsetDateTime::from_unix_timestamp(unix).map_err(|e| e.to_string())?;
        if !(1970..=2069).contains(&t.year()) {
            return Err(format!(
                "year {} is outside 1970..2069, which a two-digit year can name",
                t.year()
            ));
        }
        let full = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        StampDate::parse(&full[..width]).map_err(|e| e.to_string())
    }

    /// The digits as they appear in the stamp.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..self.len as usize]).unwrap_or("")
    }

    /// The number of digits (2 to 12).
    pub fn width(&self) -> usize {
        self.len as usize
    }

    /// The date as Unix seconds (UTC), reading the two-digit year in the century of `now`
    /// (hashcash's rule). Fails for dates that do not exist, such as 29 February of a common year.
    pub fn to_unix(&self, now: i64) -> Result<i64, ParseError> {
        let bad = || ParseError::BadDate(self.as_str().to_owned());
        let b = &self.digits[..self.len as usize];
        let pair = |i: usize, default: u8| -> u8 {
            if i + 2 <= b.len() {
                (b[i] - b'0') * 10 + (b[i + 1] - b'0')
            } else {
                default
            }
        };
        let now_year = OffsetDateTime::from_unix_timestamp(now)
            .map(|t| t.year())
            .unwrap_or(1970);
        let mut year = now_year - now_year.rem_euclid(100) + i32::from(pair(0, 0));
        if year - now_year > 50 {
            year -= 100;
        } else if year - now_year < -50 {
            year += 100;
        }
        let month = Month::try_from(pair(2, 1)).map_err(|_| bad())?;
        let date = Date::from_calendar_date(year, month, pair(4, 1)).map_err(|_| bad())?;
        let time = Time::from_hms(pair(6, 0), pair(8, 0), pair(10, 0)).map_err(|_| bad())?;
        Ok(PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp())
    }
}

impl fmt::Display for StampDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats Unix seconds as RFC 3339 UTC, for messages.
pub(crate) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_2026: i64 = 1_795_000_000; // 2026-11-19

    #[test]
    fn widths_and_defaults() {
        let d = |s: &str| StampDate::parse(s).unwrap().to_unix(NOW_2026).unwrap();
        assert_eq!(rfc3339(d("25")), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(d("2502")), "2025-02-01T00:00:00Z");
        assert_eq!(rfc3339(d("250203")), "2025-02-03T00:00:00Z");
        assert_eq!(rfc3339(d("25020304")), "2025-02-03T04:00:00Z");
        assert_eq!(rfc3339(d("2502030405")), "2025-02-03T04:05:00Z");
        assert_eq!(rfc3339(d("250203040506")), "2025-02-03T04:05:06Z");
    }

    #[test]
    fn century_window_follows_the_clock() {
        let y = |s: &str, now| {
            OffsetDateTime::from_unix_timestamp(StampDate::parse(s).unwrap().to_unix(now).unwrap())
                .unwrap()
                .year()
        };
        assert_eq!(y("76", NOW_2026), 2076);
        assert_eq!(y("77", NOW_2026), 1977);
        assert_eq!(y("99", NOW_2026), 1999);
        assert_eq!(y("00", NOW_2026), 2000);
        assert_eq!(y("99", 0), 1999); // now = 1970
        assert_eq!(y("19", 0), 2019);
    }

    #[test]
    fn refuses_impossible_dates() {
        for s in [
            "",
            "2",
            "250",
            "2513",
            "2500",
            "250100",
            "250132",
            "2501012400",
            "2501011260",
            "250101125960",
            "25010a",
            "２５",
        ] {
            assert!(StampDate::parse(s).is_err(), "{s:?} should be refused");
        }
        // shape is fine but 2025-02-29 does not exist
        let d = StampDate::parse("250229").unwrap();
        assert!(d.to_unix(NOW_2026).is_err());
        assert!(
            StampDate::parse("240229")
                .unwrap()
                .to_unix(NOW_2026)
                .is_ok()
        );
    }

    #[test]
    fn from_unix_truncates_to_width() {
        let t = 1_735_734_896; // 2025-01-01T12:34:56Z
        assert_eq!(StampDate::from_unix(t, 6).unwrap().as_str(), "250101");
        assert_eq!(StampDate::from_unix(t, 10).unwrap().as_str(), "2501011234");
        assert_eq!(
            StampDate::from_unix(t, 12).unwrap().as_str(),
            "250101123456"
        );
        assert!(StampDate::from_unix(t, 7).is_err());
        assert!(StampDate::from_unix(4_000_000_000, 6).is_err()); // 2096
    }
}
