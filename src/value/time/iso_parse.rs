//! Parsing ISO 8601 text as Python 3.11's `datetime.fromisoformat` and `time.fromisoformat`
//! accept it: extended (`2024-01-02`) and basic (`20240102`) dates, ISO week dates
//! (`2024-W01-1`), any one-character separator, `HH[:MM[:SS[.f+]]]` or `HHMM[SS]` times with
//! `.` or `,` before 1 or more fraction digits (beyond six are dropped), and offsets `Z`,
//! `±HH`, `±HH:MM`, `±HHMM`, `±HH:MM:SS[.ffffff]`. A zero offset reads as `timezone.utc`.
//!
//! Deviation: offsets are kept to whole seconds (our [`TzInfo::Fixed`] holds seconds), so the
//! microseconds of an offset such as `+08:00:30.5` are dropped.

use chrono::NaiveDate;

use super::{Date, DateTime, Time, TzInfo};

/// The text was not an ISO format Python accepts. The message is Python's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid isoformat string: {text:?}")]
pub struct IsoParseError {
    /// The rejected text.
    pub text: String,
}

fn err(text: &str) -> IsoParseError {
    IsoParseError {
        text: text.to_owned(),
    }
}

/// A little cursor over ASCII digits.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let chunk = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in chunk {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// Length in bytes of the date part at the start of `b`.
fn date_len(b: &[u8]) -> usize {
    match (b.get(4), b.get(5)) {
        (Some(b'-'), Some(b'W')) if b.get(8) == Some(&b'-') => 10,
        (Some(b'-'), Some(b'W')) => 8,
        (Some(b'-'), _) => 10,
        (Some(b'W'), _) => {
            if b.get(7).is_some_and(u8::is_ascii_digit) {
                8
            } else {
                7
            }
        }
        _ => 8,
    }
}

fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let mut c = Cursor { b, i: 0 };
    let year = c.digits(4)? as i32;
    let extended = c.eat(b'-');
    let date = if c.eat(b'W') {
        let week = c.digits(2)?;
        let day = if c.done() {
            1
        } else {
            if extended && !c.eat(b'-') {
                return None;
            }
            c.digits(1)?
        };
        let weekday = chrono::Weekday::try_from(u8::try_from(day.checked_sub(1)?).ok()?).ok()?;
        NaiveDate::from_isoywd_opt(year, week, weekday)?
    } else {
        let month = c.digits(2)?;
        if extended && !c.eat(b'-') {
            return None;
        }
        let day = c.digits(2)?;
        NaiveDate::from_ymd_opt(year, month, day)?
    };
    if !c.done() || !(1..=9999).contains(&year) {
        return None;
    }
    Some(Date::from_chrono(date))
}

/// Parses `HH[:MM[:SS[.f+]]]` / `HHMM[SS[.f+]]` then an optional offset.
fn parse_time(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    let tz_at = b
        .iter()
        .position(|&c| matches!(c, b'Z' | b'+' | b'-'))
        .unwrap_or(b.len());
    let mut c = Cursor {
        b: &b[..tz_at],
        i: 0,
    };
    let hour = c.digits(2)?;
    let (mut minute, mut second, mut micro) = (0, 0, 0);
    if !c.done() {
        let extended = c.eat(b':');
        minute = c.digits(2)?;
        if !c.done() {
            if extended && !c.eat(b':') {
                return None;
            }
            second = c.digits(2)?;
            if !c.done() {
                if !(c.eat(b'.') || c.eat(b',')) {
                    return None;
                }
                micro = fraction(&mut c)?;
            }
        }
    }
    if !c.done() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let tz = match b.get(tz_at) {
        None => None,
        Some(b'Z') if tz_at + 1 == b.len() => Some(TzInfo::Utc),
        Some(b'Z') => return None,
        Some(&sign) => Some(parse_offset(sign, &b[tz_at + 1..])?),
    };
    Some(Time {
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        microsecond: micro,
        tz,
        fold: 0,
    })
}

/// One or more digits after the decimal mark, as microseconds (digits past six dropped).
fn fraction(c: &mut Cursor<'_>) -> Option<u32> {
    let start = c.i;
    let mut micro = 0u32;
    while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
        if c.i - start < 6 {
            micro = micro * 10 + u32::from(d - b'0');
        }
        c.i += 1;
    }
    let n = c.i - start;
    if n == 0 {
        return None;
    }
    for _ in n..6 {
        micro *= 10;
    }
    Some(micro)
}

fn parse_offset(sign: u8, b: &[u8]) -> Option<TzInfo> {
    let mut c = Cursor { b, i: 0 };
    let hours = c.digits(2)?;
    let (mut minutes, mut seconds) = (0, 0);
    if !c.done() {
        let extended = c.eat(b':');
        minutes = c.digits(2)?;
        if !c.done() {
            if extended && !c.eat(b':') {
                return None;
            }
            seconds = c.digits(2)?;
            if !c.done() {
                if !(c.eat(b'.') || c.eat(b',')) {
                    return None;
                }
                fraction(&mut c)?;
            }
        }
    }
    if !c.done() || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = (hours * 3600 + minutes * 60 + seconds) as i32;
    if total >= 86_400 {
        return None;
    }
    let offset = if sign == b'-' { -total } else { total };
    Some(if offset == 0 {
        TzInfo::Utc
    } else {
        TzInfo::Fixed {
            offset_seconds: offset,
            name: None,
        }
    })
}

impl DateTime {
    /// Python 3.11's `datetime.fromisoformat(text)`.
    pub fn parse_iso(text: &str) -> Result<DateTime, IsoParseError> {
        let n = date_len(text.as_bytes());
        let date_part = text.get(..n).ok_or_else(|| err(text))?;
        let date = parse_date(date_part).ok_or_else(|| err(text))?;
        let rest = &text[n..];
        let mut chars = rest.chars();
        let time = match chars.next() {
            None => Time {
                hour: 0,
                minute: 0,
                second: 0,
                microsecond: 0,
                tz: None,
                fold: 0,
            },
            Some(_sep) => parse_time(chars.as_str()).ok_or_else(|| err(text))?,
        };
        Ok(DateTime { date, time })
    }
}

impl Date {
    /// What kombu's `date` tag decoder does: `datetime.fromisoformat(text).date()`, so any
    /// datetime text is accepted and its time dropped.
    pub fn parse_iso(text: &str) -> Result<Date, IsoParseError> {
        DateTime::parse_iso(text).map(|dt| dt.date)
    }
}

impl Time {
    /// Python 3.11's `time.fromisoformat(text)` (an optional leading `T` is allowed).
    pub fn parse_iso(text: &str) -> Result<Time, IsoParseError> {
        let body = text.strip_prefix('T').unwrap_or(text);
        parse_time(body).ok_or_else(|| err(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(text: &str) -> String {
        match DateTime::parse_iso(text) {
            Ok(dt) => crate::value::py_repr(&crate::value::Value::DateTime(Box::new(dt))),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn datetime_fromisoformat_matches_python() {
        // Expected reprs printed by CPython 3.11's datetime.fromisoformat.
        let cases = [
            ("2024-01-02", "datetime.datetime(2024, 1, 2, 0, 0)"),
            ("20240102", "datetime.datetime(2024, 1, 2, 0, 0)"),
            ("2024-01-02 03", "datetime.datetime(2024, 1, 2, 3, 0)"),
            ("2024-01-02x03:04", "datetime.datetime(2024, 1, 2, 3, 4)"),
            ("2024-01-02é03:04", "datetime.datetime(2024, 1, 2, 3, 4)"),
            ("2024-01-02T0304", "datetime.datetime(2024, 1, 2, 3, 4)"),
            ("2024W011", "datetime.datetime(2024, 1, 1, 0, 0)"),
            ("2024W01T03", "datetime.datetime(2024, 1, 1, 3, 0)"),
            ("2024-W01-1", "datetime.datetime(2024, 1, 1, 0, 0)"),
            ("2024-01-02T03:04:05.1Z", "datetime.datetime(2024, 1, 2, 3, 4, 5, 100000, tzinfo=datetime.timezone.utc)"),
            ("2024-01-02T03:04:05.1234567", "datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)"),
            ("2024-01-02T030405,123456789+0800", "datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone(datetime.timedelta(seconds=28800)))"),
            ("2024-01-02T03:04:05+08", "datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(seconds=28800)))"),
            ("2024-01-02T03:04:05-00:00", "datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)"),
            ("2024-01-02T03:04:05+23:59", "datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(seconds=86340)))"),
            ("2024-01-02T03Z", "datetime.datetime(2024, 1, 2, 3, 0, tzinfo=datetime.timezone.utc)"),
        ];
        for (text, want) in cases {
            assert_eq!(repr(text), want, "{text}");
        }
        for bad in [
            "2024-01-02T3:04",
            "2024-01-02T03:4",
            "2024-01-02T03:04:05.",
            "2024-01-02T",
            "2024-01-02T03:04:05 ",
            "0000-01-01",
            "2024-01-02T03:04:05+08:0",
            "2024-01-02T03:04:05Z+1",
            "2024-01-02T03:04:05+2400",
            "2024-02-30",
            "",
            "2024-01-02T24:00",
        ] {
            assert!(DateTime::parse_iso(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_fromisoformat_matches_python() {
        let t = |s: &str| {
            Time::parse_iso(s)
                .map(|t| crate::value::py_repr(&crate::value::Value::Time(Box::new(t))))
        };
        assert_eq!(t("03:04").as_deref(), Ok("datetime.time(3, 4)"));
        assert_eq!(t("T03:04:05").as_deref(), Ok("datetime.time(3, 4, 5)"));
        assert_eq!(t("030405").as_deref(), Ok("datetime.time(3, 4, 5)"));
        assert_eq!(t("03").as_deref(), Ok("datetime.time(3, 0)"));
        assert_eq!(
            t("03:04:05.5+01:00").as_deref(),
            Ok("datetime.time(3, 4, 5, 500000, tzinfo=datetime.timezone(datetime.timedelta(seconds=3600)))")
        );
        assert_eq!(
            t("03:04:05Z").as_deref(),
            Ok("datetime.time(3, 4, 5, tzinfo=datetime.timezone.utc)")
        );
        assert!(t("24:00").is_err());
    }
}
