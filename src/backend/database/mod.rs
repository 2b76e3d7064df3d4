//! Celery's SQLAlchemy result backend (`db+postgresql://`, `db+mysql://`, `db+sqlite://`):
//! the same tables, rows and encodings as `celery.backends.database`, so Python's
//! `AsyncResult.get()` reads rcelery's rows and rcelery reads Python's.
//!
//! - [`url`] reads the URL; [`schema`] creates the tables where missing, as SQLAlchemy does;
//!   [`sql`] holds the statements; [`row`] encodes a result as its row and reads one back.
//! - [`DatabaseBackend`] (in `backend.rs`, with the `sql` feature, on by default) stores
//!   results through a pool of the sqlx driver: one atomic statement per result, which never
//!   overwrites a SUCCESS, the results waiting together in one transaction.
//! - Chords: this layout has no chord counters, so the worker joins chords with
//!   `celery.chord_unlock`, as Celery does (no [`super::NativeChords`]).
//! - Faults: a write that fails because the database is unreachable, restarting or failing
//!   over is retried with backoff until it lands (Celery gives up after 3 tries and loses the
//!   result); at most `rcelery_result_buffer` results wait at once, and the worker takes no
//!   new task while the buffer is full. Refused credentials or a missing database are a
//!   start-up error, password masked.

#[cfg(feature = "sql")]
mod backend;
#[cfg(feature = "sql")]
pub mod engine;
pub mod row;
pub mod schema;
pub mod sql;
pub mod url;

use std::sync::Arc;
use std::time::Duration;

use crate::health::Health;
use crate::redis_client::link::RetryPolicy;
use schema::TableNames;

#[cfg(feature = "sql")]
pub use backend::DatabaseBackend;

/// Celery's `database_*` settings, as they apply here.
#[derive(Debug, Clone, Default)]
pub struct DatabaseOptions {
    /// `database_table_names` and `database_table_schemas`.
    pub tables: TableNames,
    /// `database_create_tables_at_setup`: create the tables at start, and fail the start if
    /// the database cannot be reached (else at first use).
    pub create_tables_at_setup: bool,
    /// `database_engine_options["pool_size"]` (+ `max_overflow`): connections at most (10).
    pub pool_size: Option<u32>,
    /// `database_engine_options["pool_recycle"]`: a connection's longest life.
    pub pool_recycle: Option<Duration>,
    /// The `django-db` backend's database: the `database_url` setting, or the URL of
    /// Django's `DATABASES["default"]` (holds the password).
    pub django_url: Option<String>,
}

/// How the database backend is set up: the options and the worker's retry and buffer
/// settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The `database_*` settings.
    pub options: DatabaseOptions,
    /// How long to wait for a connection (`broker_connection_timeout`).
    pub connect_timeout: Duration,
    /// How long a statement may take before it is retried on a new connection.
    pub statement_timeout: Duration,
    /// Waits between attempts (`result_backend_base_sleep_between_retries_ms` and
    /// `result_backend_max_sleep_between_retries_ms`).
    pub retry: RetryPolicy,
    /// `rcelery_result_buffer`: results that may wait for the database at once.
    pub buffer: usize,
    /// Where outages are reported.
    pub health: Arc<Health>,
}
