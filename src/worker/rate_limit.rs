//! Rate limits as Celery reads and applies them: the notation (`"10/s"`, `"100/m"`,
//! `"1000/h"`, a plain number per second; Celery's `rate()`) and kombu's token bucket, with
//! its arithmetic kept exactly (capacity 1, refilled continuously).

use std::time::{Duration, Instant};

/// A rate limit that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitError {
    /// The number before the `/` is not a number.
    #[error("invalid rate limit {0:?}: not a number of tasks (expected e.g. \"10/s\", \"100/m\", \"1000/h\")")]
    NotANumber(String),
    /// The unit after the `/` is not `s`, `m` or `h`.
    #[error("invalid rate limit {0:?}: the unit must be s, m or h")]
    Unit(String),
    /// A negative (or NaN) rate, which Celery would turn into a bucket that never refills.
    #[error("invalid rate limit {0:?}: must not be negative")]
    Negative(String),
}

/// Reads a rate limit as Celery's `rate()` does, in tasks per second. `None` means no limit:
/// an empty string, `0`, `"0/m"`, or an infinite rate.
pub fn parse_rate(text: &str) -> Result<Option<f64>, RateLimitError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (ops, unit) = text.split_once('/').unwrap_or((text, ""));
    let n: f64 = ops
        .trim()
        .parse()
        .map_err(|_| RateLimitError::NotANumber(text.to_owned()))?;
    let per_second = match unit {
        "" | "s" => n,
        "m" => n / 60.0,
        "h" => n / 60.0 / 60.0,
        _ => return Err(RateLimitError::Unit(text.to_owned())),
    };
    if per_second.is_nan() || per_second < 0.0 {
        return Err(RateLimitError::Negative(text.to_owned()));
    }
    Ok((per_second > 0.0 && per_second.is_finite()).then_some(per_second))
}

/// kombu's `TokenBucket(fill_rate, capacity=1)`: one token, refilled at `fill_rate` per second.
///
/// Like kombu's, the refill clock only advances while the bucket is not full, so the first
/// refill after an idle period counts from the last refill: after idling, two tasks pass at
/// once, then one every `1 / fill_rate` seconds (what a Celery worker does too).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    fill_rate: f64,
    capacity: f64,
    tokens: f64,
    timestamp: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `fill_rate` tokens per second (`> 0`).
    pub fn new(fill_rate: f64, now: Instant) -> Self {
        TokenBucket {
            fill_rate,
            capacity: 1.0,
            tokens: 1.0,
            timestamp: now,
        }
    }

    /// Takes one token if there is one (kombu's `can_consume(1)`).
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.tokens(now) >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (kombu's `expected_time(1)`).
    pub fn expected_wait(&mut self, now: Instant) -> Duration {
        let have = self.tokens(now);
        let need = 1.0_f64.max(have);
        Duration::try_from_secs_f64((need - have) / self.fill_rate).unwrap_or(Duration::ZERO)
    }

    fn tokens(&mut self, now: Instant) -> f64 {
        if self.tokens < self.capacity {
            let delta =
                self.fill_rate * now.saturating_duration_since(self.timestamp).as_secs_f64();
            self.tokens = self.capacity.min(self.tokens + delta);
            self.timestamp = now;
        }
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_celery_rate() {
        assert_eq!(parse_rate("10/s"), Ok(Some(10.0)));
        assert_eq!(parse_rate("120/m"), Ok(Some(2.0)));
        assert_eq!(parse_rate("3600/h"), Ok(Some(1.0)));
        assert_eq!(parse_rate("5"), Ok(Some(5.0)));
        assert_eq!(parse_rate("0.5/s"), Ok(Some(0.5)));
        assert_eq!(parse_rate("1e1/s"), Ok(Some(10.0)));
        assert_eq!(parse_rate(""), Ok(None));
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(parse_rate("0/m"), Ok(None));
        assert_eq!(parse_rate("inf"), Ok(None));
        assert!(matches!(
            parse_rate("x/s"),
            Err(RateLimitError::NotANumber(_))
        ));
        assert!(matches!(parse_rate("10/d"), Err(RateLimitError::Unit(_))));
        assert!(matches!(
            parse_rate("-1/s"),
            Err(RateLimitError::Negative(_))
        ));
    }

    #[test]
    fn one_token_then_refill_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert_eq!(b.expected_wait(t0), Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(250);
        assert!(!b.try_take(t1));
        assert_eq!(b.expected_wait(t1), Duration::from_millis(250));
        let t2 = t0 + Duration::from_millis(500);
        assert_eq!(b.expected_wait(t2), Duration::ZERO);
        assert!(b.try_take(t2));
        assert!(!b.try_take(t2));
    }

    #[test]
    fn never_more_than_one_token_banked() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, t0);
        assert!(b.try_take(t0));
        let later = t0 + Duration::from_secs(60);
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn after_idling_two_pass_at_once_as_in_kombu() {
        // The clock is not advanced while full, so the first refill counts from creation.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, t0);
        let later = t0 + Duration::from_secs(10);
        assert!(b.try_take(later));
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
        assert_eq!(b.expected_wait(later), Duration::from_secs(1));
    }
}
