//! A number of seconds as Python code wrote it (time limits).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::value::{py_repr, Value};

/// Seconds, kept as the `int` or `float` they were written as: Celery stores a hard time
/// limit in the failure as written (`TimeLimitExceeded(10)` vs `TimeLimitExceeded(10.0)`) and
/// logs it with Python's `str` (`Hard time limit (10s) exceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Seconds {
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
}

impl Seconds {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Seconds::Int(i) => i as f64,
            Seconds::Float(f) => f,
        }
    }

    /// True when Python would treat it as a limit: Celery falls back to the next source with
    /// `limit or default`, so 0 (and NaN, which no timer accepts) mean "not set".
    pub fn is_set(self) -> bool {
        let f = self.as_f64();
        f != 0.0 && !f.is_nan()
    }

    /// How long to wait: a negative limit fires at once (as a Python timer does), an infinite
    /// one never (`None`).
    pub fn duration(self) -> Option<Duration> {
        Duration::try_from_secs_f64(self.as_f64().max(0.0)).ok()
    }

    /// The Python value (`int` or `float`).
    pub fn to_value(self) -> Value {
        match self {
            Seconds::Int(i) => Value::Int(i),
            Seconds::Float(f) => Value::Float(f),
        }
    }

    /// Reads an `int` or `float` message value; anything else is `None`.
    pub fn from_value(v: &Value) -> Option<Seconds> {
        match v {
            Value::Int(i) => Some(Seconds::Int(*i)),
            Value::Float(f) => Some(Seconds::Float(*f)),
            _ => None,
        }
    }
}

/// Python's `str()` of the number: `10`, `1.5`, `10.0`.
impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&py_repr(&self.to_value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        assert_eq!(Seconds::Int(10).to_string(), "10");
        assert_eq!(Seconds::Float(1.5).to_string(), "1.5");
        assert_eq!(Seconds::Float(10.0).to_string(), "10.0");
    }

    #[test]
    fn zero_is_not_a_limit_and_odd_values_do_not_panic() {
        assert!(!Seconds::Int(0).is_set());
        assert!(!Seconds::Float(f64::NAN).is_set());
        assert!(Seconds::Float(-1.0).is_set());
        assert_eq!(Seconds::Float(-1.0).duration(), Some(Duration::ZERO));
        assert_eq!(Seconds::Float(f64::INFINITY).duration(), None);
        assert_eq!(
            Seconds::Float(0.25).duration(),
            Some(Duration::from_millis(250))
        );
    }
}
