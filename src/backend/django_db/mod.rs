//! django-celery-results' result backend (`result_backend = "django-db"`): results in the
//! Django project's own database, in the tables its migrations create
//! (`django_celery_results_taskresult`, `_groupresult`, `_chordcounter`), rows as
//! django-celery-results 2.6 writes them, so the Django admin and
//! `TaskResult.objects.get(task_id=...)` show rcelery's tasks and `AsyncResult.get()` reads
//! them.
//!
//! - The database: the `database_url` setting, or Django's `DATABASES["default"]` when the
//!   settings come from the Python app (see `src/config/`). PostgreSQL, MariaDB/MySQL and
//!   SQLite, as Django supports them; its URL is read by [`crate::backend::database::url`].
//! - rcelery never creates these tables (Django's migrations own them): a missing table is a
//!   start-up error asking for `manage.py migrate`.
//! - [`row`] encodes a result as its row; [`sql`] holds the statements; `DjangoDbBackend` (in
//!   `backend.rs`, with the `sql` feature) stores them through the engine the SQLAlchemy
//!   backend uses ([`crate::backend::database::engine`]: pool, batching writer, retries).
//! - Chords ([`crate::backend::NativeChords`]): the counter row the client creates when it
//!   applies a chord is counted down by each finished header part in a transaction holding
//!   its row lock, so Python and rcelery workers share one chord and its body fires once.
//!   Chords rcelery itself applies from a task are joined by `celery.chord_unlock`.

#[cfg(feature = "sql")]
mod backend;
pub mod row;
pub mod sql;

#[cfg(feature = "sql")]
pub use backend::DjangoDbBackend;

/// True when `result_backend` names this backend (Celery's alias `django-db`).
pub fn is_django_db(url: &str) -> bool {
    url.trim() == "django-db"
}
