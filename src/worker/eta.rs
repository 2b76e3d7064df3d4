//! Turning message datetimes (ETA, expires) into instants.

use chrono::Utc;

use crate::value::DateTime;

/// How long until `dt`, or `None` if it is due.
pub fn until(dt: &DateTime) -> Option<std::time::Duration> {
    // Naive values are UTC, as Celery's `maybe_make_aware` takes them.
    let due = dt.to_utc_assuming_utc()?;
    (due - Utc::now()).to_std().ok().filter(|d| !d.is_zero())
}

/// True if `dt` has passed.
pub fn has_passed(dt: &DateTime) -> bool {
    dt.to_utc_assuming_utc().is_some_and(|due| due <= Utc::now())
}
