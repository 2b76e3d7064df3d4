//! The user API for tasks: plain Rust functions, async or blocking, turned into
//! [`TaskDef`]s by the [`crate::task`] attribute macro.
//!
//! ```ignore
//! #[rcelery::task(name = "tasks.add")]
//! fn add(x: Value, y: Value) -> TaskResult<Value> {
//!     Ok(x.py_add(&y)?)
//! }
//! app.register(add::task());
//! ```
//!
//! Arguments are bound from the message's args and kwargs by parameter name, as Python binds
//! them ([`bind`]); a task error carries a Python exception type ([`TaskError`]) so that
//! `AsyncResult.get()` raises the same exception in Python.

mod autoretry;
mod bind;
mod context;
mod def;
mod error;
mod registry;
mod retry;
mod seconds;
mod soft_limit;
mod subtasks;
#[doc(hidden)]
pub mod __private {
    pub use super::private::*;
}
mod private;

pub use autoretry::{backoff_interval, AutoRetry};
pub use bind::{bind, missing_error, type_mismatch, Bound, Signature};
pub use context::{Context, Request};
pub use def::{AsyncFn, BlockingFn, Handler, IntoTaskResult, TaskDef, TaskOptions};
pub use error::{TaskError, TaskResult};
pub use registry::Registry;
pub use retry::{retry_message, Retry, RetryRequest, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_DELAY};
pub use seconds::Seconds;
pub use soft_limit::SoftLimit;
pub use subtasks::{SendError, TaskEnv};
