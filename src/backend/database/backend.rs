//! The database backend itself: the tables found or created at first use, the statements
//! run through the shared [`super::engine`] (pool, writer, retries).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::Row;
use tokio::sync::OnceCell;

use super::engine::{Engine, RowSink, Writer};
use super::row::{self, ReadRow, TaskRow};
use super::schema::{self, Tables};
use super::sql::{Layout, Statements};
use super::url::{DatabaseUrl, Dialect};
use super::DatabaseSettings;
use crate::backend::{BackendError, MetaEncoder, ResultBackend, ResultRecord};
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
    writer: Writer<TaskRow>,
}

/// The engine, the tables and the settings, shared by the backend and its writer.
struct Store {
    engine: Engine,
    encoder: MetaEncoder,
    expires: Option<Duration>,
    tables: Tables,
    prepared: OnceCell<Prepared>,
}

impl DatabaseBackend {
    /// A backend for `url`; connects on first use (see [`ResultBackend::check_at_start`]).
    pub fn new(
        url: DatabaseUrl,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        settings: DatabaseSettings,
    ) -> Result<DatabaseBackend, BackendError> {
        let tables = Tables::new(url.dialect, &settings.options.tables);
        let store = Arc::new(Store {
            engine: Engine::new(url, settings)?,
            encoder,
            expires,
            tables,
            prepared: OnceCell::new(),
        });
        let writer = Writer::spawn(Arc::clone(&store));
        Ok(DatabaseBackend { store, writer })
    }
}

impl RowSink for Store {
    type Row = TaskRow;

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn write<'a>(&'a self, rows: &'a [&'a TaskRow]) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        self.write_rows(rows).boxed()
    }
}

impl Store {
    /// Finds the tables, creating the missing ones, and writes the statements for them.
    async fn prepare(&self) -> Result<&Prepared, sqlx::Error> {
        self.prepared
            .get_or_try_init(|| async {
                let dialect = self.engine.url.dialect;
                let conn = &self.engine.pool;
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

    /// Stores `rows` in one transaction, in order.
    async fn write_rows(&self, rows: &[&TaskRow]) -> Result<(), sqlx::Error> {
        let prepared = self.prepare().await?;
        let mut tx = self.engine.pool.begin().await?;
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
            .fetch_optional(&self.engine.pool)
            .await?;
        found
            .map(|r| read_row(&r, &prepared.statements.select_columns))
            .transpose()
    }

    async fn read_group(&self, group_id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let prepared = self.prepare().await?;
        let found = sqlx::query(&prepared.statements.restore_group)
            .bind(group_id.to_owned())
            .fetch_optional(&self.engine.pool)
            .await?;
        found
            .map(|r| r.try_get::<Option<Vec<u8>>, _>(0))
            .transpose()
            .map(Option::flatten)
    }

    async fn delete_expired(&self, before: &str) -> Result<u64, sqlx::Error> {
        let prepared = self.prepare().await?;
        let statements = [
            prepared.statements.cleanup_tasks.as_str(),
            prepared.statements.cleanup_groups.as_str(),
        ];
        self.engine.delete_before(&statements, before).await
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

impl ResultBackend for DatabaseBackend {
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        async move {
            let store = &self.store;
            let room = store.engine.room().await?;
            let layout = store
                .engine
                .retrying(true, || async { Ok(store.prepare().await?.layout) })
                .await?;
            let row = TaskRow::new(&record, &store.encoder, store.engine.url.dialect, layout);
            self.writer.store(row, room).await
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
                .engine
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
                .engine
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
            let before = row::expired_before(self.store.engine.url.dialect, expires);
            self.store
                .engine
                .retrying(false, || self.store.delete_expired(&before))
                .await
        }
        .boxed()
    }

    fn check_at_start(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        let engine = &self.store.engine;
        let must_reach = engine.settings.options.create_tables_at_setup;
        engine
            .check_at_start(self.store.prepare(), must_reach)
            .boxed()
    }

    fn wait_for_room(&self) -> BoxFuture<'_, ()> {
        self.store.engine.wait_for_room().boxed()
    }

    fn pending_results(&self) -> usize {
        self.store.engine.pending_results()
    }

    fn display_url(&self) -> String {
        self.store.engine.url.masked.clone()
    }
}
