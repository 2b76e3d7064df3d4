//! A registered task: its name, options and the function that runs it.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Context, Seconds, TaskError};
use crate::value::{Dict, IntoValue, Value};

/// An async task body: gets the context and the raw args/kwargs, binds them itself.
pub type AsyncFn = Arc<
    dyn Fn(Context, Vec<Value>, Dict) -> BoxFuture<'static, Result<Value, TaskError>> + Send + Sync,
>;

/// A synchronous task body.
pub type BlockingFn =
    Arc<dyn Fn(Context, Vec<Value>, Dict) -> Result<Value, TaskError> + Send + Sync>;

/// How a task runs.
#[derive(Clone)]
pub enum Handler {
    /// An `async fn`: runs on the async runtime.
    Async(AsyncFn),
    /// A plain `fn`: runs on the bounded blocking pool, so it may block.
    Blocking(BlockingFn),
    /// A plain `fn` declared `inline`: quick and non-blocking, runs on the runtime directly.
    Inline(BlockingFn),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Async(_) => "Handler::Async",
            Handler::Blocking(_) => "Handler::Blocking",
            Handler::Inline(_) => "Handler::Inline",
        })
    }
}

/// Per-task options (Celery's task attributes); `None` falls back to the app's setting.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// `ignore_result`: never store a result.
    pub ignore_result: Option<bool>,
    /// `acks_late`.
    pub acks_late: Option<bool>,
    /// `track_started`.
    pub track_started: Option<bool>,
    /// `max_retries`: `None` is Celery's default (3), `Some(None)` unlimited.
    pub max_retries: Option<Option<i64>>,
    /// `default_retry_delay` in seconds (180).
    pub default_retry_delay: Option<f64>,
    /// `time_limit`: hard limit in seconds (overridden by the message's `timelimit`).
    pub time_limit: Option<Seconds>,
    /// `soft_time_limit` in seconds (overridden by the message's `timelimit`).
    pub soft_time_limit: Option<Seconds>,
    /// `rate_limit` in Celery's notation: `"10/s"`, `"100/m"`, `"1000/h"`, `"5"` (per second).
    pub rate_limit: Option<String>,
    /// `autoretry_for` and its companions.
    pub autoretry: Option<super::AutoRetry>,
}

/// A task as registered with the app.
#[derive(Debug, Clone)]
pub struct TaskDef {
    /// The Celery task name, e.g. `tasks.add`.
    pub name: String,
    /// The function.
    pub handler: Handler,
    /// Options.
    pub options: TaskOptions,
    /// The state types its parameters take (`State<T>`), checked when the worker starts.
    pub requires: Vec<crate::state::Requirement>,
}

/// What a task function may return: `Result<T, E>` with `T` a value and `E` an error that
/// converts into a [`TaskError`].
pub trait IntoTaskResult {
    /// Converts into the worker's uniform result.
    fn into_task_result(self) -> Result<Value, TaskError>;
}

impl<T: IntoValue, E: Into<TaskError>> IntoTaskResult for Result<T, E> {
    fn into_task_result(self) -> Result<Value, TaskError> {
        self.map(IntoValue::into_value).map_err(Into::into)
    }
}
