//! What every SQL result backend shares (the SQLAlchemy layout here, django-celery-results'
//! tables in [`crate::backend::django_db`]): the sqlx pool, the retries through outages, the
//! bounded buffer of waiting results, and the one writer task that stores the waiting
//! results together in one transaction.

use std::future::Future;
use std::sync::{Arc, Once};

use futures::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::url::{DatabaseUrl, Dialect};
use super::DatabaseSettings;
use crate::backend::BackendError;
use crate::health::LinkKind;
use crate::redis_client::mask::mask_secrets_in_text;

/// Results stored in one transaction at most.
const BATCH: usize = 256;

static DRIVERS: Once = Once::new();

/// The pool, the settings and the room left in the result buffer.
pub struct Engine {
    /// The database URL (read).
    pub url: DatabaseUrl,
    /// The connections (opened on first use).
    pub pool: AnyPool,
    /// Retries, timeouts, the buffer.
    pub settings: DatabaseSettings,
    room: Arc<Semaphore>,
}

impl Engine {
    /// A lazily connecting pool for `url`.
    pub fn new(url: DatabaseUrl, settings: DatabaseSettings) -> Result<Engine, BackendError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        // One connection for SQLite: it holds an in-memory database, and SQLite takes one
        // writer at a time anyway.
        let max = match url.dialect {
            Dialect::Sqlite => 1,
            _ => settings.options.pool_size.unwrap_or(10).max(1),
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(settings.connect_timeout)
            .acquire_slow_threshold(settings.connect_timeout)
            .test_before_acquire(true);
        if url.in_memory {
            options = options.idle_timeout(None).max_lifetime(None);
        } else if let Some(recycle) = settings.options.pool_recycle {
            options = options.max_lifetime(recycle);
        }
        let pool = options
            .connect_lazy(&url.connect)
            .map_err(|e| BackendError::Url(format!("{}: {}", url.masked, masked(&e))))?;
        Ok(Engine {
            url,
            pool,
            room: Arc::new(Semaphore::new(settings.buffer.max(1))),
            settings,
        })
    }

    /// Runs `attempt` until it succeeds, retrying what a reconnect may cure (`patient`: for
    /// ever, else a few times), and reporting the outage and the recovery once each.
    pub async fn retrying<T, F, Fut>(
        &self,
        patient: bool,
        mut attempt: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let health = &self.settings.health;
        let mut tries: u32 = 0;
        loop {
            let outcome = tokio::time::timeout(self.settings.statement_timeout, attempt())
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut));
            match outcome {
                Ok(value) => {
                    if let Some(outage) = health.link_up(LinkKind::Backend) {
                        tracing::info!(
                            "result backend {} reachable again after {:.1}s",
                            self.url.masked,
                            outage.as_secs_f64()
                        );
                    }
                    return Ok(value);
                }
                Err(e) if is_transient(&e) && (patient || tries < 5) => {
                    tries += 1;
                    let text = masked(&e);
                    if health.link_down(LinkKind::Backend, &text) {
                        tracing::warn!(error = %text, "result backend {} unreachable; retrying until results can be stored", self.url.masked);
                    }
                    tokio::time::sleep(self.settings.retry.delay(tries)).await;
                }
                Err(e) => return Err(BackendError::Server(masked(&e))),
            }
        }
    }

    /// Runs each of `statements` (deletions of rows done before the bound time) with
    /// `before` bound; returns how many rows went (`backend.cleanup()`).
    pub async fn delete_before(
        &self,
        statements: &[&str],
        before: &str,
    ) -> Result<u64, sqlx::Error> {
        let mut deleted = 0;
        for statement in statements {
            deleted += sqlx::query(statement)
                .bind(before.to_owned())
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// Takes a place in the result buffer (waits while it is full).
    pub async fn room(&self) -> Result<OwnedSemaphorePermit, BackendError> {
        Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| BackendError::Closed)
    }

    /// Waits until the buffer has room ([`crate::backend::ResultBackend::wait_for_room`]).
    pub async fn wait_for_room(&self) {
        drop(self.room.acquire().await);
    }

    /// Results waiting in the buffer.
    pub fn pending_results(&self) -> usize {
        self.settings
            .buffer
            .max(1)
            .saturating_sub(self.room.available_permits())
    }

    /// [`crate::backend::ResultBackend::check_at_start`] for a backend whose first use is
    /// `prepare`: a refusal fails the start, a server that is down is waited for (unless
    /// `must_reach`).
    pub async fn check_at_start<T, Fut>(
        &self,
        prepare: Fut,
        must_reach: bool,
    ) -> Result<(), BackendError>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        match tokio::time::timeout(self.settings.connect_timeout, prepare).await {
            Ok(Ok(_)) => Ok(()),
            // A server certificate TLS cannot trust will not change by waiting: a start-up
            // error, as refused credentials are.
            Ok(Err(e)) if !is_transient(&e) || must_reach || is_tls_refusal(&e) => {
                Err(BackendError::Server(masked(&e)))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %masked(&e), "result backend {} unreachable at start; results wait for it", self.url.masked);
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    "result backend {} did not answer at start; results wait for it",
                    self.url.masked
                );
                Ok(())
            }
        }
    }
}

/// Stores rows of one kind in one transaction (the backend's own statements).
pub trait RowSink: Send + Sync + 'static {
    /// One result's row.
    type Row: Send + Sync + 'static;

    /// The shared engine.
    fn engine(&self) -> &Engine;

    /// Stores `rows` in one transaction, in order.
    fn write<'a>(&'a self, rows: &'a [&'a Self::Row]) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

/// A row waiting for the writer.
struct Write<R> {
    row: R,
    done: oneshot::Sender<Result<(), BackendError>>,
    _room: OwnedSemaphorePermit,
}

/// The one writer task of a backend: takes every row waiting (up to 256) and stores them in
/// one transaction, retried as one until it lands.
pub struct Writer<R> {
    writes: mpsc::UnboundedSender<Write<R>>,
}

impl<R: Send + Sync + 'static> Writer<R> {
    /// Starts the writer for `sink`.
    pub fn spawn<S: RowSink<Row = R>>(sink: Arc<S>) -> Writer<R> {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(sink, queue));
        Writer { writes }
    }

    /// Hands `row` to the writer (holding its place `room` in the buffer) and waits until it
    /// is stored.
    pub async fn store(&self, row: R, room: OwnedSemaphorePermit) -> Result<(), BackendError> {
        let (done, stored) = oneshot::channel();
        self.writes
            .send(Write {
                row,
                done,
                _room: room,
            })
            .map_err(|_| BackendError::Closed)?;
        stored.await.map_err(|_| BackendError::Closed)?
    }
}

async fn write_batches<S: RowSink>(
    sink: Arc<S>,
    mut queue: mpsc::UnboundedReceiver<Write<S::Row>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let engine = sink.engine();
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let rows: Vec<&S::Row> = batch.iter().map(|w| &w.row).collect();
        let outcome = engine.retrying(true, || sink.write(&rows)).await;
        if outcome.is_err() && batch.len() > 1 {
            // A row the database refuses (a task name longer than the column) fails the
            // whole transaction: store each alone, so only that one fails.
            for w in batch.drain(..) {
                let one = [&w.row];
                let alone = engine.retrying(true, || sink.write(&one)).await;
                let _ = w.done.send(alone);
            }
            continue;
        }
        for w in batch.drain(..) {
            let _ = w.done.send(outcome.clone());
        }
    }
}

/// True when the TLS handshake itself refused the server (an unknown issuer, a name that does
/// not match): rustls reports these through the I/O error.
fn is_tls_refusal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// True for errors a new connection or a later try may cure: the server gone, restarting,
/// failing over, out of connections, a lock conflict, or two workers creating the tables at
/// once. Refused credentials, a missing database and malformed statements are not.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let message = db.message().to_ascii_lowercase();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || matches!(&*code, "40001" | "40P01" | "42P07" | "23505")
                || message.contains("database is locked")
                || message.contains("lock wait timeout")
                || message.contains("gone away")
                || message.contains("lost connection")
                || message.contains("deadlock")
        }
        _ => false,
    }
}

/// A driver error's text with any URL or password in it masked.
pub fn masked(e: &sqlx::Error) -> String {
    mask_secrets_in_text(&e.to_string())
}
