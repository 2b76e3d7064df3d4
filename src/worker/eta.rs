//! Turning message datetimes (ETA, expires) into instants.

use chrono::Utc;

use crate::value::DateTime;

/// The UTC instant of a message datetime. Naive values are taken as UTC, as Celery does
/// (`maybe_make_aware`). `None` if the fields do not form a valid time.
pub fn to_utc(dt: &DateTime) -> Option<chrono::DateTime<Utc>> {
    dt.to_utc_assuming_utc()
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
