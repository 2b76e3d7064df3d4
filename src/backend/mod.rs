//! Result backends, behind the [`ResultBackend`] trait, all writing Celery's result meta
//! ([`meta`]) so that Python's `AsyncResult` reads rcelery's results unchanged.

pub mod chord;
pub mod database;
pub mod django_db;
pub mod factory;
pub mod file;
pub mod join;
pub mod meta;
pub mod redis;
pub mod rpc;

use futures::future::BoxFuture;

pub use chord::{ChordPart, ChordProgress};
pub use meta::{ExtendedMeta, MetaEncoder, ResultRecord, State};

/// Errors storing or reading results. No variant names a transport: each backend turns its
/// driver's errors into these (see the `From` impls beside each backend).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend's server could not be reached, or refused or failed a command; the text
    /// names the server's own error (passwords never appear in it).
    #[error("{0}")]
    Server(String),
    /// The backend cannot do what was asked (a setting or feature it does not have).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A batch of results could not be written.
    #[error("storing result failed: {0}")]
    Store(String),
    /// The writer task is gone (shutting down).
    #[error("result backend is closed")]
    Closed,
    /// A stored meta could not be decoded.
    #[error("cannot decode stored result: {0}")]
    Decode(String),
    /// The backend URL cannot be used (password-free message).
    #[error("invalid result backend URL: {0}")]
    Url(String),
}

/// Where task results go.
pub trait ResultBackend: Send + Sync + 'static {
    /// Stores a task's state and result. Resolves once it is durable in the backend.
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Reads a task's stored meta dict (`status`, `result`, `traceback`, ...); `None` while
    /// nothing is stored (Celery's PENDING).
    fn get_meta<'a>(
        &'a self,
        task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::value::Value>, BackendError>>;

    /// Reads several tasks' metas at once, in the order of `task_ids` (`None` for PENDING).
    fn get_many_meta<'a>(
        &'a self,
        task_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<crate::value::Value>>, BackendError>> {
        Box::pin(async move {
            let mut metas = Vec::with_capacity(task_ids.len());
            for id in task_ids {
                metas.push(self.get_meta(id).await?);
            }
            Ok(metas)
        })
    }

    /// Reads a saved `GroupResult` (Celery's `GroupResult.restore`): the `result` of its
    /// stored meta, the group's `as_tuple()`; `None` if the group was not saved.
    fn restore_group<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::value::Value>, BackendError>> {
        let _ = group_id;
        Box::pin(async { Ok(None) })
    }

    /// The backend's native chord counters, if it has them (Redis keys, django-db's
    /// `chordcounter` table). A chord on a backend without them is joined by
    /// `celery.chord_unlock`, as Celery's base backend does.
    fn native_chords(&self) -> Option<&dyn NativeChords> {
        None
    }

    /// Why this backend cannot run chords, if it cannot: the message of the
    /// `NotImplementedError` Celery's backend raises from `ensure_chords_allowed` (rpc://).
    /// A task applying a chord then fails with it.
    fn chords_refused(&self) -> Option<&'static str> {
        None
    }

    /// True when [`ResultBackend::store`] has queued the write, in order with the broker's
    /// acks, by the time it returns (before its future is polled): a worker may then ack the
    /// message at once instead of waiting for the write's reply, and the write still lands
    /// first. (Redis backend sharing the broker's server; see [`crate::redis_client::lane`].)
    fn orders_writes_before_acks(&self) -> bool {
        false
    }

    /// Waits until the backend can take another result without growing its buffer past
    /// its bound (results waiting for an unreachable server). The worker calls this before
    /// it starts another task, so that a backend outage stops the worker taking on work
    /// instead of piling up results in memory.
    fn wait_for_room(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Results handed to [`ResultBackend::store`] and not yet stored (waiting for an
    /// unreachable server); reported at shutdown.
    fn pending_results(&self) -> usize {
        0
    }

    /// Deletes expired results (Celery's `backend.cleanup()`, run by the built-in task
    /// `celery.backend_cleanup`); returns how many rows went. Nothing to do where the store
    /// expires results itself (Redis).
    fn cleanup(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async { Ok(0) })
    }

    /// Checks at start-up what can be checked without waiting: refused credentials or a
    /// missing database fail the start; a server that is merely down is retried later.
    fn check_at_start(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }

    /// The backend URL with the password masked, for logs and the banner.
    fn display_url(&self) -> String;
}

/// Chords as a capability: a backend that counts finished header parts itself, so the part
/// that completes a chord fires its body (Celery's `on_chord_part_return` on the Redis and
/// django-db backends).
pub trait NativeChords: Send + Sync {
    /// Records a finished chord header part (Celery's `on_chord_part_return`) and says
    /// whether it completed the chord. `record`, the part's own result, is stored first, as
    /// Celery stores it before `on_chord_part_return` (`None` when results are ignored).
    fn chord_part_return(
        &self,
        part: ChordPart,
        record: Option<ResultRecord>,
    ) -> BoxFuture<'_, Result<ChordProgress, BackendError>>;

    /// Records how many parts a chord's header has, before they are sent (Celery's
    /// `set_chord_size`).
    fn set_chord_size<'a>(
        &'a self,
        group_id: &'a str,
        size: usize,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Deletes a fired chord's counters.
    fn chord_cleanup<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Called by the part that completed a chord just before it sends the body: true while
    /// this worker still owns the chord's dispatch (Celery 5.7's claim on the Redis backend,
    /// extended to cover the publish). False: another worker took it over, and the body must
    /// not be sent from here.
    fn keep_dispatch_claim<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let _ = group_id;
        Box::pin(async { Ok(true) })
    }

    /// Called after a chord failed (a failed part, a join error) and its body was stored as
    /// FAILURE: forgets the chord's size, so a copy of a header part arriving later does not
    /// fail it again (Celery 5.7); the parts' results stay.
    fn chord_failed<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        let _ = group_id;
        Box::pin(async { Ok(()) })
    }

    /// False when the counters are created by the client applying a chord with more than
    /// its size (django-db's `apply_chord` stores the header's result tuples): chords rcelery
    /// applies itself are then joined by `celery.chord_unlock`.
    fn counts_chords_it_applies(&self) -> bool {
        true
    }
}

/// The backend for `result_backend` unset or `disabled`: results are dropped.
#[derive(Debug, Default)]
pub struct DisabledBackend;

impl ResultBackend for DisabledBackend {
    fn store(&self, _record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }

    fn get_meta<'a>(
        &'a self,
        _task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::value::Value>, BackendError>> {
        Box::pin(async {
            Err(BackendError::Unsupported(
                "disabled://: no results are stored".into(),
            ))
        })
    }

    fn display_url(&self) -> String {
        "disabled://".to_owned()
    }
}
