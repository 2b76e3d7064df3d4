//! The database backend itself: the sqlx pool, the tables found or created at first use, the
//! writer that batches results into transactions, and the retries through outages.

use std::future::Future;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, OnceCell, OwnedSemaphorePermit, Semaphore};

use super::row::{self, ReadRow, TaskRow};
use super::schema::{self, Tables};
use super::sql::{Layout, Statements};
use super::url::{DatabaseUrl, Dialect};
use super::DatabaseSettings;
use crate::backend::{BackendError, MetaEncoder, ResultBackend, ResultRecord};
use crate::health::LinkKind;
use crate::redis_client::mask::mask_secrets_in_text;
use crate::value::Value;

/// The tables as found (or created) at first use, and the statements for them.
#[derive(Debug)]
struct Prepared {
    layout: Layout,
    statements: Statements,
}

/// The SQLAlchemy-layout result backend. Results go through one writer task, which stores
/// the results that are waiting together in one transaction (one commit, one flush of the
/// database's log, however many results finished at once).
pub struct DatabaseBackend {
    store: Arc<Store>,
    writes: mpsc::UnboundedSender<Write>,
}

/// A result waiting for the writer.
struct Write {
    row: TaskRow,
    done: oneshot::Sender<Result<(), BackendError>>,
    _room: OwnedSemaphorePermit,
}

/// Results stored in one transaction at most.
const BATCH: usize = 256;

/// The pool, the tables and the settings, shared by the backend and its writer.
struct Store {
    url: DatabaseUrl,
    pool: AnyPool,
    encoder: MetaEncoder,
    expires: Option<Duration>,
    tables: Tables,
    prepared: OnceCell<Prepared>,
    settings: DatabaseSettings,
    room: Arc<Semaphore>,
}

static DRIVERS: Once = Once::new();

impl DatabaseBackend {
    /// A backend for `url`; connects on first use (see [`ResultBackend::check_at_start`]).
    pub fn new(
        url: DatabaseUrl,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        settings: DatabaseSettings,
    ) -> Result<DatabaseBackend, BackendError> {
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
        let tables = Tables::new(url.dialect, &settings.options.tables);
        let store = Arc::new(Store {
            url,
            pool,
            encoder,
            expires,
            tables,
            prepared: OnceCell::new(),
            room: Arc::new(Semaphore::new(settings.buffer.max(1))),
            settings,
        });
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(Arc::clone(&store), queue));
        Ok(DatabaseBackend { store, writes })
    }
}

/// The writer: takes every result waiting (up to [`BATCH`]) and stores them in one
/// transaction, retried as one until it lands.
async fn write_batches(store: Arc<Store>, mut queue: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let rows: Vec<&TaskRow> = batch.iter().map(|w| &w.row).collect();
        let outcome = store.retrying(true, || store.write(&rows)).await;
        if outcome.is_err() && batch.len() > 1 {
            // A row the database refuses (a task name longer than the column) fails the
            // whole transaction: store each alone, so only that one fails.
            for w in batch.drain(..) {
                let one = [&w.row];
                let alone = store.retrying(true, || store.write(&one)).await;
                let _ = w.done.send(alone);
            }
            continue;
        }
        for w in batch.drain(..) {
            let _ = w.done.send(outcome.clone());
        }
    }
}

impl Store {
    /// Finds the tables, creating the missing ones, and writes the statements for them.
    async fn prepare(&self) -> Result<&Prepared, sqlx::Error> {
        self.prepared
            .get_or_try_init(|| async {
                let dialect = self.url.dialect;
                let conn = &self.pool;
                let mut task_columns = columns(conn, dialect, &self.tables.task).await?;
                let mut group_columns = columns(conn, dialect, &self.tables.group).await?;
                if task_columns.is_empty() || group_columns.is_empty() {
                    let sequences = match dialect {
                        Dialect::Postgres => true,
                        Dialect::MySql => mariadb_with_sequences(conn).await?,
                        Dialect::Sqlite => false,
                    };
                    for statement in schema::create_statements(dialect, &self.tables, sequences) {
                        sqlx::raw_sql(&statement).execute(conn).await?;
                    }
                    tracing::info!(
                        "result tables {} and {} are ready",
                        self.tables.task.qualified,
                        self.tables.group.qualified
                    );
                    task_columns = columns(conn, dialect, &self.tables.task).await?;
                    group_columns = columns(conn, dialect, &self.tables.group).await?;
                }
                let has = |cols: &[(String, bool)], name: &str| cols.iter().any(|(c, _)| c == name);
                let numbered =
                    |cols: &[(String, bool)]| cols.iter().any(|(c, auto)| c == "id" && *auto);
                let layout = Layout {
                    children: has(&task_columns, "children"),
                    task_id_numbered: numbered(&task_columns),
                    group_id_numbered: numbered(&group_columns),
                };
                if !layout.children {
                    tracing::info!(
                        "{} has no children column (created by Celery 5.6 or older): results are stored pickled, as those versions read them",
                        self.tables.task.qualified
                    );
                }
                Ok(Prepared {
                    layout,
                    statements: Statements::new(dialect, &self.tables, layout),
                })
            })
            .await
    }

    /// Runs `attempt` until it succeeds, retrying what a reconnect may cure (`patient`: for
    /// ever, else a few times), and reporting the outage and the recovery once each.
    async fn retrying<T, F, Fut>(&self, patient: bool, mut attempt: F) -> Result<T, BackendError>
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

    /// Stores `rows` in one transaction, in order.
    async fn write(&self, rows: &[&TaskRow]) -> Result<(), sqlx::Error> {
        let prepared = self.prepare().await?;
        let mut tx = self.pool.begin().await?;
        for row in rows {
            let mut q = sqlx::query(&prepared.statements.store)
                .bind(row.task_id.clone())
                .bind(row.status)
                .bind(row.result.clone())
                .bind(row.date_done.clone())
                .bind(row.traceback.clone());
            if prepared.layout.children {
                q = q.bind(row.children.clone());
            }
            q.bind(row.name.clone())
                .bind(row.args.clone())
                .bind(row.kwargs.clone())
                .bind(row.worker.clone())
                .bind(row.retries)
                .bind(row.queue.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    async fn read(&self, task_id: &str) -> Result<Option<ReadRow>, sqlx::Error> {
        let prepared = self.prepare().await?;
        let found = sqlx::query(&prepared.statements.select)
            .bind(task_id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        found
            .map(|r| read_row(&r, &prepared.statements.select_columns))
            .transpose()
    }

    async fn read_group(&self, group_id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let prepared = self.prepare().await?;
        let found = sqlx::query(&prepared.statements.restore_group)
            .bind(group_id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        found
            .map(|r| r.try_get::<Option<Vec<u8>>, _>(0))
            .transpose()
            .map(Option::flatten)
    }

    async fn delete_expired(&self, before: &str) -> Result<u64, sqlx::Error> {
        let prepared = self.prepare().await?;
        let mut deleted = 0;
        for statement in [
            &prepared.statements.cleanup_tasks,
            &prepared.statements.cleanup_groups,
        ] {
            deleted += sqlx::query(statement)
                .bind(before.to_owned())
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}

/// A table's columns, with whether the database fills each in itself; empty if the table
/// does not exist.
async fn columns(
    conn: &AnyPool,
    dialect: Dialect,
    table: &schema::Table,
) -> Result<Vec<(String, bool)>, sqlx::Error> {
    let query = schema::columns_query(dialect, table);
    let mut q = sqlx::query(&query);
    if dialect != Dialect::Sqlite {
        q = q.bind(table.name.clone()).bind(table.schema.clone());
    }
    let rows = q.fetch_all(conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)? != 0)))
        .collect()
}

/// True on MariaDB 10.3 and later, where SQLAlchemy numbers ids from sequences.
async fn mariadb_with_sequences(conn: &AnyPool) -> Result<bool, sqlx::Error> {
    let version: String = sqlx::query("SELECT VERSION()")
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    if !version.to_ascii_lowercase().contains("mariadb") {
        return Ok(false);
    }
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Ok((major, minor) >= (10, 3))
}

fn read_row(r: &AnyRow, columns: &[&str]) -> Result<ReadRow, sqlx::Error> {
    let mut out = ReadRow::default();
    for (i, column) in columns.iter().enumerate() {
        match *column {
            "status" => out.status = r.try_get(i)?,
            "result" => out.result = r.try_get(i)?,
            "date_done" => out.date_done = r.try_get(i)?,
            "traceback" => out.traceback = r.try_get(i)?,
            "children" => out.children = r.try_get(i)?,
            "name" => out.name = r.try_get(i)?,
            "args" => out.args = r.try_get(i)?,
            "kwargs" => out.kwargs = r.try_get(i)?,
            "worker" => out.worker = r.try_get(i)?,
            "retries" => out.retries = r.try_get(i)?,
            "queue" => out.queue = r.try_get(i)?,
            _ => {}
        }
    }
    Ok(out)
}

/// True for errors a new connection or a later try may cure: the server gone, restarting,
/// failing over, out of connections, a lock conflict, or two workers creating the tables at
/// once. Refused credentials, a missing database and malformed statements are not.
fn is_transient(e: &sqlx::Error) -> bool {
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

/// True when the TLS handshake itself refused the server (an unknown issuer, a name that does
/// not match, TLS required but not offered): rustls reports these through the I/O error.
fn is_tls_refusal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// A driver error's text with any URL or password in it masked.
fn masked(e: &sqlx::Error) -> String {
    mask_secrets_in_text(&e.to_string())
}

impl ResultBackend for DatabaseBackend {
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        async move {
            let store = &self.store;
            let room = Arc::clone(&store.room)
                .acquire_owned()
                .await
                .map_err(|_| BackendError::Closed)?;
            let layout = store
                .retrying(true, || async { Ok(store.prepare().await?.layout) })
                .await?;
            let row = TaskRow::new(&record, &store.encoder, store.url.dialect, layout);
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
        .boxed()
    }

    fn get_meta<'a>(
        &'a self,
        task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        async move {
            let row = self
                .store
                .retrying(false, || self.store.read(task_id))
                .await?;
            row.map(|r| r.into_meta(task_id, self.store.encoder.extended))
                .transpose()
        }
        .boxed()
    }

    fn restore_group<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        async move {
            let raw = self
                .store
                .retrying(false, || self.store.read_group(group_id))
                .await?;
            raw.as_deref()
                .map(crate::backend::meta::decode_stored)
                .transpose()
        }
        .boxed()
    }

    fn cleanup(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        async move {
            let Some(expires) = self.store.expires else {
                return Ok(0);
            };
            let before = row::expired_before(self.store.url.dialect, expires);
            self.store
                .retrying(false, || self.store.delete_expired(&before))
                .await
        }
        .boxed()
    }

    fn check_at_start(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        async move {
            let attempt = tokio::time::timeout(self.store.settings.connect_timeout, self.store.prepare());
            match attempt.await {
                Ok(Ok(_)) => Ok(()),
                // A certificate the server's TLS cannot be trusted with will not change by
                // waiting: a start-up error, as refused credentials are.
                Ok(Err(e)) if !is_transient(&e) || is_tls_refusal(&e) => {
                    Err(BackendError::Server(masked(&e)))
                }
                Ok(Err(e)) if self.store.settings.options.create_tables_at_setup => {
                    Err(BackendError::Server(masked(&e)))
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %masked(&e), "result backend {} unreachable at start; results wait for it", self.store.url.masked);
                    Ok(())
                }
                Err(_) => {
                    tracing::warn!("result backend {} did not answer at start; results wait for it", self.store.url.masked);
                    Ok(())
                }
            }
        }
        .boxed()
    }

    fn wait_for_room(&self) -> BoxFuture<'_, ()> {
        async move {
            drop(self.store.room.acquire().await);
        }
        .boxed()
    }

    fn pending_results(&self) -> usize {
        self.store
            .settings
            .buffer
            .max(1)
            .saturating_sub(self.store.room.available_permits())
    }

    fn display_url(&self) -> String {
        self.store.url.masked.clone()
    }
}
