//! Celery's automatic retries (`autoretry_for`, `dont_autoretry_for`, `retry_backoff`,
//! `retry_backoff_max`, `retry_jitter`): a task failing with one of the named exceptions is
//! retried as if it had called `self.retry(exc=exc)`.

use rand::Rng;

use super::TaskError;

/// A task's autoretry settings. Exception names match a [`TaskError`]'s `exc_type`, or
/// `module.Type`; `Exception` and `BaseException` match every error (Rust errors have no
/// class hierarchy to walk, so other base classes match only themselves).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRetry {
    /// `autoretry_for`.
    pub on: Vec<String>,
    /// `dont_autoretry_for`: checked first.
    pub not_on: Vec<String>,
    /// `retry_backoff`: `None` (False), else the factor in seconds (True is 1).
    pub backoff: Option<f64>,
    /// `retry_backoff_max` in seconds (600).
    pub backoff_max: i64,
    /// `retry_jitter` (True): a random countdown between 0 and the backoff.
    pub jitter: bool,
}

impl Default for AutoRetry {
    fn default() -> Self {
        AutoRetry {
            on: Vec::new(),
            not_on: Vec::new(),
            backoff: None,
            backoff_max: 600,
            jitter: true,
        }
    }
}

impl AutoRetry {
    /// True when `err` should be retried.
    pub fn matches(&self, err: &TaskError) -> bool {
        let named = |names: &[String]| {
            names.iter().any(|n| {
                n == "Exception"
                    || n == "BaseException"
                    || *n == err.exc_type
                    || n.strip_prefix(err.exc_module.as_str())
                        .and_then(|r| r.strip_prefix('.'))
                        == Some(err.exc_type.as_str())
            })
        };
        err.retry.is_none() && named(&self.on) && !named(&self.not_on)
    }

    /// The countdown for the retry after `retries` earlier retries: the exponential backoff
    /// when `retry_backoff` is set, else `None` (the retry's own default applies).
    pub fn countdown(&self, retries: i64, rng: &mut impl Rng) -> Option<f64> {
        let factor = self.backoff.filter(|b| *b != 0.0)?;
        // Celery: int(max(1.0, retry_backoff)).
        let factor = factor.max(1.0) as i64;
        Some(backoff_interval(
            factor,
            retries,
            self.backoff_max,
            self.jitter.then_some(rng),
        ) as f64)
    }
}

/// Celery's `get_exponential_backoff_interval`: `min(maximum, factor * 2**retries)`, with full
/// jitter a uniform pick in `0..=countdown`; never negative.
pub fn backoff_interval(
    factor: i64,
    retries: i64,
    maximum: i64,
    jitter: Option<&mut impl Rng>,
) -> i64 {
    let exp = u32::try_from(retries.clamp(0, 62)).unwrap_or(62);
    let grown = factor.saturating_mul(2i64.saturating_pow(exp));
    let countdown = maximum.min(grown);
    let countdown = match jitter {
        Some(rng) if countdown >= 0 => rng.gen_range(0..=countdown),
        _ => countdown,
    };
    countdown.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    fn none() -> Option<&'static mut StepRng> {
        None
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let got: Vec<i64> = (0..8)
            .map(|r| backoff_interval(1, r, 600, none()))
            .collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 64, 128]);
        assert_eq!(backoff_interval(3, 10, 600, none()), 600);
        assert_eq!(backoff_interval(0, 5, 600, none()), 0);
        assert_eq!(backoff_interval(1, 1000, 600, none()), 600);
    }

    #[test]
    fn jitter_stays_within_the_backoff() {
        let mut rng = rand::thread_rng();
        for retries in 0..10 {
            let max = backoff_interval(2, retries, 100, none());
            let j = backoff_interval(2, retries, 100, Some(&mut rng));
            assert!((0..=max).contains(&j), "{j} not in 0..={max}");
        }
    }

    #[test]
    fn factor_is_celerys_int_of_at_least_one() {
        let a = AutoRetry {
            backoff: Some(0.5),
            jitter: false,
            ..AutoRetry::default()
        };
        assert_eq!(a.countdown(3, &mut rand::thread_rng()), Some(8.0));
        let a = AutoRetry {
            backoff: Some(2.9),
            jitter: false,
            ..AutoRetry::default()
        };
        assert_eq!(a.countdown(1, &mut rand::thread_rng()), Some(4.0));
        let a = AutoRetry {
            backoff: None,
            ..AutoRetry::default()
        };
        assert_eq!(a.countdown(1, &mut rand::thread_rng()), None);
    }

    #[test]
    fn matching_by_name_module_and_catch_all() {
        let a = AutoRetry {
            on: vec!["ValueError".into(), "myapp.Flaky".into()],
            not_on: vec!["KeyError".into()],
            ..AutoRetry::default()
        };
        assert!(a.matches(&TaskError::value_error("x")));
        assert!(a.matches(&TaskError::with_args("Flaky", "myapp", vec![])));
        assert!(!a.matches(&TaskError::type_error("x")));
        let all = AutoRetry {
            on: vec!["Exception".into()],
            not_on: vec!["KeyError".into()],
            ..AutoRetry::default()
        };
        assert!(all.matches(&TaskError::type_error("x")));
        assert!(!all.matches(&TaskError::key_error("k")));
    }
}
