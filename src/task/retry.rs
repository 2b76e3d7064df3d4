//! `self.retry(...)` for Rust tasks: [`Context::retry`] builds the error a task returns to be
//! run again (same id, `retries + 1`), or, past `max_retries`, the error it ends with.

use super::{Context, TaskError};
use crate::value::{py_repr, DateTime, Dict, Value};

/// Celery's `Task.default_retry_delay`: 3 minutes.
pub const DEFAULT_RETRY_DELAY: f64 = 180.0;

/// Celery's `Task.max_retries`.
pub const DEFAULT_MAX_RETRIES: i64 = 3;

/// What the worker needs to send the retry, carried inside the [`TaskError`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRequest {
    /// Seconds from now (when no `eta`).
    pub countdown: Option<f64>,
    /// When to run again.
    pub eta: Option<DateTime>,
    /// The exception that caused the retry (stored with the RETRY state).
    pub exc: Option<TaskError>,
    /// New positional arguments (default: the same).
    pub args: Option<Vec<Value>>,
    /// New keyword arguments (default: the same).
    pub kwargs: Option<Dict>,
    /// Queue to send the retry to (default: the one it came from).
    pub queue: Option<String>,
}

/// Builder returned by [`Context::retry`]; turn it into the task's error with `.into()` or
/// `?`: `return Err(ctx.retry().countdown(5.0).exc(e).into())`.
#[derive(Debug)]
pub struct Retry<'a> {
    ctx: &'a Context,
    request: RetryRequest,
    max_retries: Option<Option<i64>>,
}

impl<'a> Retry<'a> {
    pub(super) fn new(ctx: &'a Context) -> Retry<'a> {
        Retry {
            ctx,
            request: RetryRequest {
                countdown: None,
                eta: None,
                exc: None,
                args: None,
                kwargs: None,
                queue: None,
            },
            max_retries: None,
        }
    }

    /// Run again in `seconds` (default: the task's `default_retry_delay`, 180 s).
    pub fn countdown(mut self, seconds: f64) -> Self {
        self.request.countdown = Some(seconds);
        self
    }

    /// Run again at `eta`.
    pub fn eta(mut self, eta: DateTime) -> Self {
        self.request.eta = Some(eta);
        self
    }

    /// The exception behind the retry: stored with RETRY, and raised instead of
    /// `MaxRetriesExceededError` once retries run out.
    pub fn exc(mut self, exc: impl Into<TaskError>) -> Self {
        self.request.exc = Some(exc.into());
        self
    }

    /// Overrides the task's `max_retries` for this call (`None`: unlimited).
    pub fn max_retries(mut self, max: Option<i64>) -> Self {
        self.max_retries = Some(max);
        self
    }

    /// Retry with these positional arguments.
    pub fn args(mut self, args: Vec<Value>) -> Self {
        self.request.args = Some(args);
        self
    }

    /// Retry with these keyword arguments.
    pub fn kwargs(mut self, kwargs: Dict) -> Self {
        self.request.kwargs = Some(kwargs);
        self
    }

    /// Retry on another queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.request.queue = Some(queue.into());
        self
    }

    /// The error to return: `Retry`, or past `max_retries` the given `exc` or
    /// `MaxRetriesExceededError`, as Celery's `Task.retry` decides.
    pub fn error(mut self) -> TaskError {
        let request = self.ctx.request();
        let retries = request.retries() + 1;
        let max = self.max_retries.unwrap_or_else(|| self.ctx.max_retries());
        if max.is_some_and(|m| retries > m) {
            if let Some(exc) = self.request.exc.take() {
                return exc;
            }
            // A signature holds its args as a tuple, whatever the message carried.
            let args = Value::Tuple(
                self.request
                    .args
                    .clone()
                    .unwrap_or_else(|| request.args().to_vec()),
            );
            let kwargs = Value::Dict(
                self.request
                    .kwargs
                    .clone()
                    .unwrap_or_else(|| request.kwargs().clone()),
            );
            let message = format!(
                "Can't retry {}[{}] args:{} kwargs:{}",
                request.task(),
                request.id(),
                py_repr(&args),
                py_repr(&kwargs)
            );
            return TaskError::with_args(
                "MaxRetriesExceededError",
                "celery.exceptions",
                vec![Value::Str(message)],
            );
        }
        if self.request.eta.is_none() && self.request.countdown.is_none() {
            self.request.countdown = Some(self.ctx.default_retry_delay());
        }
        let mut error = TaskError::with_args(
            "Retry",
            "celery.exceptions",
            vec![Value::Str(retry_message(&self.request))],
        );
        error.retry = Some(Box::new(self.request));
        error
    }
}

impl From<Retry<'_>> for TaskError {
    fn from(r: Retry<'_>) -> TaskError {
        r.error()
    }
}

/// `str(Retry(...))`: `Retry in 5s: KeyError('k')` or `Retry at <eta>`.
pub fn retry_message(r: &RetryRequest) -> String {
    let when = match (&r.eta, r.countdown) {
        (Some(eta), _) => {
            let mut text = String::from("at ");
            eta.push_isoformat_sep(' ', &mut text);
            text
        }
        (None, Some(c)) => format!("in {}s", py_number(c)),
        (None, None) => format!("in {}s", py_number(DEFAULT_RETRY_DELAY)),
    };
    match &r.exc {
        Some(exc) => format!("Retry {when}: {}", exc.repr()),
        None => format!("Retry {when}"),
    }
}

/// A number as Python prints it when it came in as an int or a float.
fn py_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        py_repr(&Value::Float(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_celerys() {
        let mut r = RetryRequest {
            countdown: Some(0.0),
            eta: None,
            exc: None,
            args: None,
            kwargs: None,
            queue: None,
        };
        assert_eq!(retry_message(&r), "Retry in 0s");
        r.countdown = Some(1.5);
        r.exc = Some(TaskError::key_error("k"));
        assert_eq!(retry_message(&r), "Retry in 1.5s: KeyError('k')");
    }
}
