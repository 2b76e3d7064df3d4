//! Python's `isoformat()` for `date`, `time` and `datetime`.

use std::fmt::Write as _;

use super::{Date, DateTime, Time};

/// Appends `+HH:MM`, with `:SS` only when the offset has seconds (Python's `_format_offset`).
pub(crate) fn push_offset(offset_seconds: i32, out: &mut String) {
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let a = offset_seconds.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60);
    if !a.is_multiple_of(60) {
        let _ = write!(out, ":{:02}", a % 60);
    }
}

fn push_clock(t: &Time, out: &mut String) {
    let _ = write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second);
    if t.microsecond != 0 {
        let _ = write!(out, ".{:06}", t.microsecond);
    }
}

impl Date {
    /// `date.isoformat()`: `YYYY-MM-DD`.
    pub fn isoformat(&self) -> String {
        let mut out = String::with_capacity(10);
        self.push_isoformat(&mut out);
        out
    }

    /// Appends `date.isoformat()` to `out`.
    pub fn push_isoformat(&self, out: &mut String) {
        let _ = write!(out, "{:04}-{:02}-{:02}", self.year, self.month, self.day);
    }
}

impl Time {
    /// `time.isoformat()`: `HH:MM:SS[.ffffff][+HH:MM]`. A named zone adds no offset, as with
    /// `zoneinfo`, whose `utcoffset(None)` is `None`.
    pub fn isoformat(&self) -> String {
        let mut out = String::with_capacity(21);
        self.push_isoformat(&mut out);
        out
    }

    /// Appends `time.isoformat()` to `out`.
    pub fn push_isoformat(&self, out: &mut String) {
        push_clock(self, out);
        match &self.tz {
            Some(super::TzInfo::Utc) => push_offset(0, out),
            Some(super::TzInfo::Fixed { offset_seconds, .. }) => push_offset(*offset_seconds, out),
            Some(super::TzInfo::Zone(_)) | None => {}
        }
    }
}

impl DateTime {
    /// `datetime.isoformat()`: `YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM[:SS]]`, a named zone
    /// giving its offset at that wall time.
    pub fn isoformat(&self) -> String {
        let mut out = String::with_capacity(32);
        self.push_isoformat_sep('T', &mut out);
        out
    }

    /// Appends `datetime.isoformat(sep)` to `out` (`str(dt)` uses `' '`).
    pub fn push_isoformat_sep(&self, sep: char, out: &mut String) {
        self.date.push_isoformat(out);
        out.push(sep);
        push_clock(&self.time, out);
        if let Some(offset) = self.utc_offset_seconds() {
            push_offset(offset, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TzInfo;
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn dt(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32, tz: Option<TzInfo>) -> DateTime {
        DateTime {
            date: Date {
                year: y,
                month: mo,
                day: d,
            },
            time: Time {
                hour: h,
                minute: mi,
                second: s,
                microsecond: us,
                tz,
                fold: 0,
            },
        }
    }

    #[test]
    fn matches_python_isoformat() {
        // Expected texts printed by CPython 3.11.
        assert_eq!(
            dt(2024, 1, 2, 3, 4, 5, 0, None).isoformat(),
            "2024-01-02T03:04:05"
        );
        assert_eq!(
            dt(2024, 1, 2, 3, 4, 5, 6, Some(TzInfo::Utc)).isoformat(),
            "2024-01-02T03:04:05.000006+00:00"
        );
        let minus = TzInfo::Fixed {
            offset_seconds: -3601,
            name: None,
        };
        assert_eq!(
            dt(2024, 1, 1, 0, 0, 0, 0, Some(minus)).isoformat(),
            "2024-01-01T00:00:00-01:00:01"
        );
        let ny = TzInfo::Zone("America/New_York".into());
        assert_eq!(
            dt(2024, 3, 10, 2, 30, 0, 0, Some(ny.clone())).isoformat(),
            "2024-03-10T02:30:00-05:00"
        );
        let mut late = dt(2024, 11, 3, 1, 30, 0, 0, Some(ny));
        assert_eq!(late.isoformat(), "2024-11-03T01:30:00-04:00");
        late.time.fold = 1;
        assert_eq!(late.isoformat(), "2024-11-03T01:30:00-05:00");
        assert_eq!(
            Date {
                year: 33,
                month: 1,
                day: 2
            }
            .isoformat(),
            "0033-01-02"
        );
        let t = Time {
            hour: 1,
            minute: 2,
            second: 0,
            microsecond: 0,
            tz: Some(TzInfo::Zone("Asia/Shanghai".into())),
            fold: 0,
        };
        assert_eq!(t.isoformat(), "01:02:00");
    }
}
