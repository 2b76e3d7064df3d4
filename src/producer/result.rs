//! `AsyncResult`: waiting for a task's result in the backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::meta::exception_parts;
use crate::backend::{BackendError, ResultBackend};
use crate::value::Value;

/// Why waiting for a result did not give a value.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// No result within the timeout (Celery's `TimeoutError`).
    #[error("The operation timed out.")]
    Timeout,
    /// The task failed or was revoked; `get()` in Python would raise this exception.
    #[error("{exc_type}({message})")]
    Failed {
        /// The state (`FAILURE`, `REVOKED`).
        state: String,
        /// Exception class name.
        exc_type: String,
        /// `repr` of the exception args, joined.
        message: String,
    },
    /// No backend to read from.
    #[error("no result backend configured")]
    NoBackend,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A handle on a task's result (Celery's `AsyncResult`).
#[derive(Clone)]
pub struct AsyncResult {
    id: String,
    backend: Option<Arc<dyn ResultBackend>>,
}

impl std::fmt::Debug for AsyncResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<AsyncResult: {}>", self.id)
    }
}

impl AsyncResult {
    /// A handle on task `id`'s result in `backend`.
    pub fn new(id: &str, backend: Option<Arc<dyn ResultBackend>>) -> AsyncResult {
        AsyncResult {
            id: id.to_owned(),
            backend,
        }
    }

    /// The task id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stored meta dict, `None` while PENDING.
    pub async fn meta(&self) -> Result<Option<Value>, WaitError> {
        let backend = self.backend.as_ref().ok_or(WaitError::NoBackend)?;
        Ok(backend.get_meta(&self.id).await?)
    }

    /// The state name (`PENDING` when nothing is stored).
    pub async fn state(&self) -> Result<String, WaitError> {
        Ok(self
            .meta()
            .await?
            .and_then(|m| {
                m.as_dict()
                    .and_then(|d| d.get("status"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "PENDING".to_owned()))
    }

    /// Waits until the task is ready (SUCCESS, FAILURE, REVOKED) and returns its result, or
    /// the failure as [`WaitError::Failed`] (Celery's `get()`).
    pub async fn get(&self, timeout: Option<Duration>) -> Result<Value, WaitError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(meta) = self.meta().await? {
                if let Some(d) = meta.as_dict() {
                    let status = d.get("status").and_then(Value::as_str).unwrap_or("");
                    let result = d.get("result").cloned().unwrap_or(Value::None);
                    match status {
                        "SUCCESS" => return Ok(result),
                        "FAILURE" | "REVOKED" => return Err(failed(status, &result)),
                        _ => {}
                    }
                }
            }
            if timeout.is_some_and(|t| started.elapsed() >= t) {
                return Err(WaitError::Timeout);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

fn failed(state: &str, result: &Value) -> WaitError {
    let (exc_type, message) = exception_parts(result);
    WaitError::Failed {
        state: state.to_owned(),
        exc_type,
        message,
    }
}
