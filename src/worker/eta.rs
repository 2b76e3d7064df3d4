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
    dt.to_utc_assuming_utc()
        .is_some_and(|due| due <= Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(text: &str) -> DateTime {
        DateTime::parse_iso(text).expect("an ISO datetime")
    }

    fn in_offset(seconds_from_now: i64, offset_hours: i32) -> DateTime {
        let offset = chrono::FixedOffset::east_opt(offset_hours * 3600).expect("offset");
        let t = (Utc::now() + chrono::Duration::seconds(seconds_from_now)).with_timezone(&offset);
        dt(&t.to_rfc3339())
    }

    #[test]
    fn past_times_are_due() {
        assert_eq!(until(&dt("2000-01-01T00:00:00+00:00")), None);
        assert!(has_passed(&dt("2000-01-01T00:00:00")));
    }

    #[test]
    fn the_offset_is_honoured() {
        // The same instant written in +08:00 and -05:00 waits the same time.
        for hours in [8, -5, 0] {
            let wait = until(&in_offset(60, hours)).expect("in the future");
            assert!((55..=60).contains(&wait.as_secs()), "{hours}: {wait:?}");
            assert!(!has_passed(&in_offset(60, hours)));
            assert!(has_passed(&in_offset(-1, hours)));
        }
    }

    #[test]
    fn naive_times_are_utc() {
        let naive = (Utc::now() + chrono::Duration::seconds(30)).naive_utc();
        let wait = until(&dt(&naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())).expect("future");
        assert!((25..=30).contains(&wait.as_secs()), "{wait:?}");
    }
}
