//! `timedelta` arithmetic helpers: normalisation and `total_seconds()`.

use super::TimeDelta;

/// Python's `timedelta.max.days`: 999999999.
const MAX_DAYS: i64 = 999_999_999;

const MICROS_PER_DAY: i128 = 86_400_000_000;

impl TimeDelta {
    /// `timedelta(0)`.
    pub const ZERO: TimeDelta = TimeDelta {
        days: 0,
        seconds: 0,
        microseconds: 0,
    };

    /// `timedelta(days=days, seconds=seconds, microseconds=micros)`, normalised as Python
    /// does (`0 <= seconds < 86400`, `0 <= microseconds < 10**6`, the sign on `days`).
    /// `None` where Python raises `OverflowError` (`|days| > 999999999`).
    pub fn from_parts(days: i64, seconds: i64, micros: i64) -> Option<TimeDelta> {
        let total = i128::from(days) * MICROS_PER_DAY
            + i128::from(seconds) * 1_000_000
            + i128::from(micros);
        Self::from_total_micros(total)
    }

    /// A timedelta of `total` microseconds, or `None` when out of Python's range.
    pub fn from_total_micros(total: i128) -> Option<TimeDelta> {
        let days = total.div_euclid(MICROS_PER_DAY);
        let rest = total.rem_euclid(MICROS_PER_DAY);
        if days.abs() > i128::from(MAX_DAYS) {
            return None;
        }
        Some(TimeDelta {
            days: days as i64,
            seconds: (rest / 1_000_000) as i32,
            microseconds: (rest % 1_000_000) as i32,
        })
    }

    /// The whole duration in microseconds.
    pub fn total_micros(&self) -> i128 {
        i128::from(self.days) * MICROS_PER_DAY
            + i128::from(self.seconds) * 1_000_000
            + i128::from(self.microseconds)
    }

    /// Python's `timedelta.total_seconds()`.
    pub fn total_seconds(&self) -> f64 {
        // Exact for any |duration| below 2**53 microseconds (285 years); Python divides the
        // integer exactly, which only differs beyond that in the last bit.
        self.total_micros() as f64 / 1e6
    }
}

impl Default for TimeDelta {
    fn default() -> Self {
        TimeDelta::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_python() {
        // timedelta(days=1, seconds=-1, microseconds=-1) == timedelta(seconds=86398, microseconds=999999)
        assert_eq!(
            TimeDelta::from_parts(1, -1, -1),
            Some(TimeDelta {
                days: 0,
                seconds: 86398,
                microseconds: 999_999
            })
        );
        // timedelta(seconds=-0.5) == timedelta(days=-1, seconds=86399, microseconds=500000)
        assert_eq!(
            TimeDelta::from_parts(0, 0, -500_000),
            Some(TimeDelta {
                days: -1,
                seconds: 86399,
                microseconds: 500_000
            })
        );
        assert_eq!(TimeDelta::from_parts(1_000_000_000, 0, 0), None);
    }

    #[test]
    fn total_seconds_matches_python() {
        let td = TimeDelta::from_parts(1, 5, 250_000).unwrap_or_default();
        assert_eq!(td.total_seconds(), 86405.25);
        let neg = TimeDelta::from_parts(0, 0, -500_000).unwrap_or_default();
        assert_eq!(neg.total_seconds(), -0.5);
    }
}
