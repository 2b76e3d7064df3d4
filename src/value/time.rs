//! Python's `datetime` family, kept field for field so that values round-trip exactly
//! (microseconds, naive vs aware, `timezone.utc` vs a fixed offset vs a named zone).

/// `datetime.date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    /// Year, 1..=9999.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
}

/// A `tzinfo` attached to a `datetime` or `time`.
#[derive(Debug, Clone, PartialEq)]
pub enum TzInfo {
    /// `datetime.timezone.utc` (isoformat `+00:00`).
    Utc,
    /// `datetime.timezone(timedelta(seconds=offset), name)`; also what a parsed ISO offset gives.
    Fixed {
        /// Offset east of UTC, in seconds.
        offset_seconds: i32,
        /// The optional name given to `timezone(...)`.
        name: Option<String>,
    },
    /// A named IANA zone (`zoneinfo.ZoneInfo("Asia/Shanghai")`, a pytz zone).
    Zone(String),
}

/// `datetime.time`.
#[derive(Debug, Clone, PartialEq)]
pub struct Time {
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
    /// Microsecond, 0..=999_999.
    pub microsecond: u32,
    /// The time zone, or `None` for naive.
    pub tz: Option<TzInfo>,
    /// PEP 495 `fold` (0 or 1).
    pub fold: u8,
}

/// `datetime.datetime`: a date and a time (whose `tz` says naive or aware).
#[derive(Debug, Clone, PartialEq)]
pub struct DateTime {
    /// The calendar date.
    pub date: Date,
    /// The wall-clock time and zone.
    pub time: Time,
}

/// `datetime.timedelta`, normalized as Python does: `0 <= seconds < 86400`,
/// `0 <= microseconds < 1_000_000`, the sign carried by `days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeDelta {
    /// Whole days (may be negative).
    pub days: i64,
    /// Seconds within the day.
    pub seconds: i32,
    /// Microseconds within the second.
    pub microseconds: i32,
}

impl TimeDelta {
    /// True for `timedelta(0)`.
    pub fn is_zero(&self) -> bool {
        self.days == 0 && self.seconds == 0 && self.microseconds == 0
    }
}

mod clock;
mod delta;
mod iso_format;
mod iso_parse;

pub use iso_parse::IsoParseError;
