//! Task errors as Python exceptions.

use std::fmt;

use crate::value::{py_repr, Value};

/// A task failure, described as the Python exception a Python client will see raised by
/// `AsyncResult.get()`: type name, module and constructor args.
///
/// Any `std::error::Error` converts into one (as a builtin `Exception`), so `?` works in tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// Exception class name, e.g. `ValueError`.
    pub exc_type: String,
    /// Module the class lives in, e.g. `builtins`.
    pub exc_module: String,
    /// The exception's `args`.
    pub args: Vec<Value>,
    /// A traceback text, if the task has a better one than rcelery's default.
    pub traceback: Option<String>,
    /// Set when this is Celery's `Retry`: the task asked to run again.
    pub retry: Option<Box<super::retry::RetryRequest>>,
    /// Set when this is Celery's `Reject(reason, requeue)`: `Some(requeue)`. The message is
    /// rejected (back on the queue when `requeue`); without requeue the task is stored as
    /// FAILURE `Reject` (Celery 5.7), with requeue nothing is stored.
    pub reject: Option<bool>,
}

/// The module of Celery's time-limit exceptions (as Celery stores `exc_module`).
const BILLIARD: &str = "billiard.exceptions";

/// What a task returns.
pub type TaskResult<T> = Result<T, TaskError>;

impl TaskError {
    /// A builtin exception with one message argument, e.g. `TaskError::new("KeyError", "k")`.
    pub fn new(exc_type: &str, message: impl Into<String>) -> Self {
        TaskError::with_args(exc_type, "builtins", vec![Value::Str(message.into())])
    }

    /// Any exception class with any args.
    pub fn with_args(exc_type: &str, exc_module: &str, args: Vec<Value>) -> Self {
        TaskError {
            exc_type: exc_type.to_owned(),
            exc_module: exc_module.to_owned(),
            args,
            traceback: None,
            retry: None,
            reject: None,
        }
    }

    /// Celery's `Reject(reason, requeue)` (`celery.exceptions`): the task rejects its
    /// message. With `requeue` it goes back to the queue; without, it is dropped and (since
    /// Celery 5.7) stored as FAILURE `Reject(reason, False)`, and the task's errbacks run.
    pub fn reject(reason: impl Into<Value>, requeue: bool) -> Self {
        let mut e = TaskError::with_args(
            "Reject",
            "celery.exceptions",
            vec![reason.into(), Value::Bool(requeue)],
        );
        e.reject = Some(requeue);
        e
    }

    /// `ValueError(message)`.
    pub fn value_error(message: impl Into<String>) -> Self {
        TaskError::new("ValueError", message)
    }

    /// `TypeError(message)`.
    pub fn type_error(message: impl Into<String>) -> Self {
        TaskError::new("TypeError", message)
    }

    /// `KeyError(key)`.
    pub fn key_error(key: impl Into<String>) -> Self {
        TaskError::new("KeyError", key)
    }

    /// `RuntimeError(message)`.
    pub fn runtime_error(message: impl Into<String>) -> Self {
        TaskError::new("RuntimeError", message)
    }

    /// Celery's `NotRegistered(name)`.
    pub fn not_registered(name: &str) -> Self {
        TaskError::with_args("NotRegistered", "celery.exceptions", vec![Value::str(name)])
    }

    /// The error a panicking task ends with: `RuntimeError("task panicked: ...")`.
    pub fn panic(message: &str) -> Self {
        TaskError::runtime_error(format!("task panicked: {message}"))
    }

    /// Celery's `SoftTimeLimitExceeded()` (class in `billiard.exceptions`, re-exported by
    /// `celery.exceptions`): what a task that does not handle its soft time limit ends with.
    pub fn soft_time_limit_exceeded() -> Self {
        TaskError::with_args("SoftTimeLimitExceeded", BILLIARD, Vec::new())
    }

    /// Celery's `TimeLimitExceeded(<hard limit>)`: what a task ended by its hard time limit is
    /// stored as.
    pub fn time_limit_exceeded(seconds: Value) -> Self {
        TaskError::with_args("TimeLimitExceeded", BILLIARD, vec![seconds])
    }

    /// Python's `str(exc)`.
    pub fn message(&self) -> String {
        if self.exc_module == BILLIARD
            && matches!(
                self.exc_type.as_str(),
                "SoftTimeLimitExceeded" | "TimeLimitExceeded"
            )
        {
            // billiard's __str__: "TimeLimitExceeded%s" % (self.args,)
            return format!(
                "{}{}",
                self.exc_type,
                py_repr(&Value::Tuple(self.args.clone()))
            );
        }
        match self.args.as_slice() {
            [] => String::new(),
            // KeyError (and its subclass NotRegistered) quote a lone message: str(KeyError("k")) == "'k'".
            [Value::Str(s)] if !matches!(self.exc_type.as_str(), "KeyError" | "NotRegistered") => {
                s.clone()
            }
            // A String cannot hold the lone surrogates of str(exc): U+FFFD in their place.
            [Value::SurrogateStr(s)]
                if !matches!(self.exc_type.as_str(), "KeyError" | "NotRegistered") =>
            {
                s.to_string_lossy()
            }
            [one] => py_repr(one),
            many => py_repr(&Value::Tuple(many.to_vec())),
        }
    }

    /// Python's `repr(exc)`, e.g. `ValueError('boom')`.
    pub fn repr(&self) -> String {
        let args: Vec<String> = self.args.iter().map(py_repr).collect();
        format!("{}({})", self.exc_type, args.join(", "))
    }

    /// The traceback text stored with the failure: the task's own, or a Python-shaped one
    /// naming the task.
    pub fn traceback_text(&self, task_name: &str) -> String {
        if let Some(tb) = &self.traceback {
            return tb.clone();
        }
        let qualified = if self.exc_module == "builtins" {
            self.exc_type.clone()
        } else {
            format!("{}.{}", self.exc_module, self.exc_type)
        };
        let message = self.message();
        let tail = if message.is_empty() {
            qualified
        } else {
            format!("{qualified}: {message}")
        };
        format!(
            "Traceback (most recent call last):\n  File \"<rcelery>\", in {task_name}\n{tail}\n"
        )
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}

impl From<crate::value::PyTypeError> for TaskError {
    fn from(e: crate::value::PyTypeError) -> Self {
        let module = if e.exception.starts_with("decimal.") {
            "decimal"
        } else {
            "builtins"
        };
        let name = e.exception.trim_start_matches("decimal.");
        TaskError::with_args(name, module, vec![Value::Str(e.message)])
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(e: E) -> Self {
        TaskError::new("Exception", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_and_repr_follow_python() {
        assert_eq!(TaskError::value_error("boom").message(), "boom");
        assert_eq!(TaskError::value_error("boom").repr(), "ValueError('boom')");
        assert_eq!(TaskError::key_error("k").message(), "'k'");
    }

    #[test]
    fn traceback_ends_with_the_exception_line() {
        let tb = TaskError::value_error("boom").traceback_text("tasks.fail");
        assert!(tb.ends_with("ValueError: boom\n"));
        let tb = TaskError::not_registered("x").traceback_text("x");
        assert!(tb.ends_with("celery.exceptions.NotRegistered: 'x'\n"));
    }

    #[test]
    fn time_limit_errors_read_like_billiards() {
        let soft = TaskError::soft_time_limit_exceeded();
        assert_eq!(soft.repr(), "SoftTimeLimitExceeded()");
        assert!(soft
            .traceback_text("tasks.sleep")
            .ends_with("billiard.exceptions.SoftTimeLimitExceeded: SoftTimeLimitExceeded()\n"));
        let hard = TaskError::time_limit_exceeded(Value::Int(1));
        assert_eq!(hard.repr(), "TimeLimitExceeded(1)");
        assert_eq!(hard.message(), "TimeLimitExceeded(1,)");
    }
}
