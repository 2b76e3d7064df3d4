//! Turning message datetimes (ETA, expires) into instants.

use chrono::{NaiveDate, TimeZone, Utc};

use crate::value::{DateTime, TzInfo};

/// The UTC instant of a message datetime. Naive values are taken as UTC, as Celery does
/// (`maybe_make_aware`). `None` if the fields do not form a valid time.
pub fn to_utc(dt: &DateTime) -> Option<chrono::DateTime<Utc>> {
    let date = NaiveDate::from_ymd_opt(dt.date.year, u32::from(dt.date.month), u32::from(dt.date.day))?;
    let t = &dt.time;
    let naive = date.and_hms_micro_opt(u32::from(t.hour), u32::from(t.minute), u32::from(t.second), t.microsecond)?;
    match &t.tz {
        None | Some(TzInfo::Utc) => Some(Utc.from_utc_datetime(&naive)),
        Some(TzInfo::Fixed { offset_seconds, .. }) => {
            Some(Utc.from_utc_datetime(&(naive - chrono::Duration::seconds(i64::from(*offset_seconds)))))
        }
        Some(TzInfo::Zone(name)) => {
            let tz: chrono_tz::Tz = name.parse().ok()?;
            tz.from_local_datetime(&naive).earliest().map(|d| d.with_timezone(&Utc))
        }
    }
}

/// How long until `dt`, or `None` if it is due.
pub fn until(dt: &DateTime) -> Option<std::time::Duration> {
    let due = to_utc(dt)?;
    (due - Utc::now()).to_std().ok().filter(|d| !d.is_zero())
}

/// True if `dt` has passed.
pub fn has_passed(dt: &DateTime) -> bool {
    to_utc(dt).is_some_and(|due| due <= Utc::now())
}
