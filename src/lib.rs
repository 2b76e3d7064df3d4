//! rcelery: a Rust worker that is a drop-in replacement for a Celery worker.
//!
//! Data flows one way through the layers, each a module:
//! [`broker`] (Redis, kombu layout) → [`protocol`] (Celery message v1/v2, decoded with
//! [`codec`] into [`value::Value`]s) → [`worker`] (prefetch, acks, execution) → [`task`]
//! (your functions) → [`backend`] (results in Celery's format).
//! [`app::App`] wires them; [`cli`] is the `rcelery` command line.

pub mod app;
pub mod backend;
pub mod broker;
pub mod cli;
pub mod codec;
pub mod config;
pub mod control;
pub mod events;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod producer;
pub mod protocol;
pub mod redis_client;
pub mod state;
pub mod task;
pub mod value;
pub mod worker;

pub use app::App;
pub use rcelery_macros::task;
pub use state::State;
pub use task::{Context, TaskError, TaskResult};
pub use value::{Dict, FromValue, IntoValue, Value};
