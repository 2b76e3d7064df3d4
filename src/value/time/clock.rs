//! Offsets, the current time and conversions to and from `chrono`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc};

use super::{Date, DateTime, Time, TzInfo};

impl Date {
    /// The date as a `chrono` date, `None` when the fields are not a real date.
    pub fn to_chrono(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, u32::from(self.month), u32::from(self.day))
    }

    /// A date from a `chrono` date.
    pub fn from_chrono(d: NaiveDate) -> Date {
        Date {
            year: d.year(),
            month: d.month() as u8,
            day: d.day() as u8,
        }
    }
}

impl Time {
    /// The wall-clock time as a `chrono` time (zone ignored), `None` when out of range.
    pub fn to_chrono(&self) -> Option<NaiveTime> {
        NaiveTime::from_hms_micro_opt(
            u32::from(self.hour),
            u32::from(self.minute),
            u32::from(self.second),
            self.microsecond,
        )
    }

    /// A naive or aware time from a `chrono` time (sub-microsecond digits dropped).
    pub fn from_chrono(t: NaiveTime, tz: Option<TzInfo>) -> Time {
        Time {
            hour: t.hour() as u8,
            minute: t.minute() as u8,
            second: t.second().min(59) as u8,
            microsecond: (t.nanosecond() / 1000).min(999_999),
            tz,
            fold: 0,
        }
    }
}

impl TzInfo {
    /// The offset east of UTC, in seconds, at the wall time `local` (PEP 495 `fold` picks
    /// between the two readings of a repeated or skipped wall time, as `zoneinfo` does).
    /// `None` for a zone name unknown to the tz database.
    pub fn offset_at_local(&self, local: &NaiveDateTime, fold: u8) -> Option<i32> {
        match self {
            TzInfo::Utc => Some(0),
            TzInfo::Fixed { offset_seconds, .. } => Some(*offset_seconds),
            TzInfo::Zone(name) => {
                let tz: chrono_tz::Tz = name.parse().ok()?;
                let secs = |o: <chrono_tz::Tz as TimeZone>::Offset| o.fix().local_minus_utc();
                match tz.offset_from_local_datetime(local) {
                    chrono::LocalResult::Single(o) => Some(secs(o)),
                    chrono::LocalResult::Ambiguous(early, late) => {
                        Some(if fold == 0 { secs(early) } else { secs(late) })
                    }
                    chrono::LocalResult::None => {
                        // In a gap: fold=0 uses the offset before the transition, fold=1 after.
                        let day = chrono::Duration::days(1);
                        let probe = if fold == 0 {
                            local.checked_sub_signed(day)?
                        } else {
                            local.checked_add_signed(day)?
                        };
                        Some(secs(tz.offset_from_utc_datetime(&probe)))
                    }
                }
            }
        }
    }

    /// The offset east of UTC, in seconds, at the UTC instant `utc`.
    pub fn offset_at_utc(&self, utc: &NaiveDateTime) -> Option<i32> {
        match self {
            TzInfo::Utc => Some(0),
            TzInfo::Fixed { offset_seconds, .. } => Some(*offset_seconds),
            TzInfo::Zone(name) => {
                let tz: chrono_tz::Tz = name.parse().ok()?;
                Some(tz.offset_from_utc_datetime(utc).fix().local_minus_utc())
            }
        }
    }
}

impl DateTime {
    /// The wall-clock date and time as a `chrono` naive value, `None` when out of range.
    pub fn to_naive_chrono(&self) -> Option<NaiveDateTime> {
        Some(NaiveDateTime::new(
            self.date.to_chrono()?,
            self.time.to_chrono()?,
        ))
    }

    /// A datetime with the given wall-clock reading and zone.
    pub fn from_naive_chrono(n: &NaiveDateTime, tz: Option<TzInfo>) -> DateTime {
        DateTime {
            date: Date::from_chrono(n.date()),
            time: Time::from_chrono(n.time(), tz),
        }
    }

    /// True when the datetime carries a zone.
    pub fn is_aware(&self) -> bool {
        self.time.tz.is_some()
    }

    /// Python's `utcoffset()` in seconds: `None` for naive values (and unknown zone names).
    pub fn utc_offset_seconds(&self) -> Option<i32> {
        let tz = self.time.tz.as_ref()?;
        tz.offset_at_local(&self.to_naive_chrono()?, self.time.fold)
    }

    /// The instant in UTC, for aware values; `None` for naive ones or invalid fields.
    pub fn to_utc_chrono(&self) -> Option<chrono::DateTime<Utc>> {
        let offset = self.utc_offset_seconds()?;
        let local = self.to_naive_chrono()?;
        let utc = local.checked_sub_signed(chrono::Duration::seconds(i64::from(offset)))?;
        Some(Utc.from_utc_datetime(&utc))
    }

    /// Like [`DateTime::to_utc_chrono`], but a naive value is taken to be in UTC (Celery's
    /// reading of a naive `eta` when `enable_utc` is on).
    pub fn to_utc_assuming_utc(&self) -> Option<chrono::DateTime<Utc>> {
        if self.is_aware() {
            self.to_utc_chrono()
        } else {
            Some(Utc.from_utc_datetime(&self.to_naive_chrono()?))
        }
    }

    /// An aware datetime in `timezone.utc` from a `chrono` UTC instant.
    pub fn from_chrono_utc(dt: &chrono::DateTime<Utc>) -> DateTime {
        DateTime::from_naive_chrono(&dt.naive_utc(), Some(TzInfo::Utc))
    }

    /// The instant `utc` as a wall-clock reading in `tz` (an unknown zone name reads as UTC).
    pub fn from_utc_in(utc: &chrono::DateTime<Utc>, tz: &TzInfo) -> DateTime {
        let naive = utc.naive_utc();
        let offset = tz.offset_at_utc(&naive).unwrap_or(0);
        let local = naive
            .checked_add_signed(chrono::Duration::seconds(i64::from(offset)))
            .unwrap_or(naive);
        let mut dt = DateTime::from_naive_chrono(&local, Some(tz.clone()));
        // The second reading of a repeated wall time is `fold=1` (PEP 495).
        if tz.offset_at_local(&local, 0) != Some(offset) {
            dt.time.fold = 1;
        }
        dt
    }

    /// `datetime.now(timezone.utc)`.
    pub fn now_utc() -> DateTime {
        DateTime::from_chrono_utc(&Utc::now())
    }

    /// `datetime.now(tz)`.
    pub fn now_in(tz: &TzInfo) -> DateTime {
        DateTime::from_utc_in(&Utc::now(), tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_conversions_round_trip_and_mark_the_second_reading() {
        let dt =
            DateTime::parse_iso("2024-01-02T03:04:05.5+08:00").unwrap_or_else(|e| panic!("{e}"));
        let utc = dt.to_utc_chrono().map(|u| u.to_rfc3339());
        assert_eq!(utc.as_deref(), Some("2024-01-01T19:04:05.500+00:00"));
        let naive = DateTime::parse_iso("2024-01-02T03:04:05").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(naive.to_utc_chrono(), None);
        assert!(naive.to_utc_assuming_utc().is_some());
        // 2024-11-03 05:30 UTC is the second 01:30 in New York (fold=1, -05:00).
        let ny = TzInfo::Zone("America/New_York".into());
        let instant = Utc.with_ymd_and_hms(2024, 11, 3, 6, 30, 0).single();
        let local = instant.map(|i| DateTime::from_utc_in(&i, &ny));
        assert_eq!(local.as_ref().map(|l| l.time.fold), Some(1));
        assert_eq!(
            local.map(|l| l.isoformat()).as_deref(),
            Some("2024-11-03T01:30:00-05:00")
        );
        assert!(DateTime::now_in(&ny).is_aware());
        assert_eq!(DateTime::now_utc().utc_offset_seconds(), Some(0));
    }
}
