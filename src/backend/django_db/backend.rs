//! The django-db backend itself: django-celery-results' tables checked at first use, results
//! stored through the shared [`crate::backend::database::engine`] (pool, batching writer,
//! retries), and chords counted in `django_celery_results_chordcounter`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::any::AnyRow;
use sqlx::Row;
use tokio::sync::OnceCell;

use super::row::{self, DjangoRow, ReadRow};
use super::sql::{Statements, SELECT_COLUMNS};
use crate::backend::chord::{ChordPart, ChordProgress};
use crate::backend::database::engine::{is_transient, Engine, RowSink, Writer};
use crate::backend::database::row::expired_before;
use crate::backend::database::url::DatabaseUrl;
use crate::backend::database::DatabaseSettings;
use crate::backend::{BackendError, MetaEncoder, NativeChords, ResultBackend, ResultRecord};
use crate::redis_client::mask::mask_secrets_in_text;
use crate::value::Value;

/// The `django-db` result backend (django-celery-results' tables).
pub struct DjangoDbBackend {
    store: Arc<Store>,
    writer: Writer<DjangoRow>,
}

struct Store {
    engine: Engine,
    encoder: MetaEncoder,
    expires: Option<Duration>,
    statements: Statements,
    checked: OnceCell<()>,
}

/// Why the tables cannot be used: a missing migration is not cured by retrying.
const MIGRATE: &str = "django-celery-results' tables are missing or incomplete in this database (rcelery does not create them: run `python manage.py migrate django_celery_results`)";

impl DjangoDbBackend {
    /// A backend storing into the database `url` (Django's); connects on first use.
    pub fn new(
        url: DatabaseUrl,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        settings: DatabaseSettings,
    ) -> Result<DjangoDbBackend, BackendError> {
        let statements = Statements::new(url.dialect);
        let store = Arc::new(Store {
            engine: Engine::new(url, settings)?,
            encoder,
            expires,
            statements,
            checked: OnceCell::new(),
        });
        let writer = Writer::spawn(Arc::clone(&store));
        Ok(DjangoDbBackend { store, writer })
    }
}

/// A failed probe: a transient error is retried; anything else (a missing migration, refused
/// credentials) is not.
#[derive(Debug)]
enum Probe {
    Down(sqlx::Error),
    Missing(String),
}

impl Store {
    /// Checks once that Django's migrations created the tables and columns used.
    async fn check(&self) -> Result<(), Probe> {
        self.checked
            .get_or_try_init(|| async {
                for probe in &self.statements.probes {
                    match sqlx::query(probe).fetch_all(&self.engine.pool).await {
                        Ok(_) => {}
                        Err(e) if is_transient(&e) => return Err(Probe::Down(e)),
                        Err(sqlx::Error::Database(db)) => {
                            let text = mask_secrets_in_text(db.message());
                            let code = db.code().unwrap_or_default();
                            let missing = matches!(&*code, "42P01" | "42703" | "42S02" | "42S22")
                                || text.contains("no such");
                            return Err(Probe::Missing(if missing {
                                format!("{MIGRATE}: {text}")
                            } else {
                                text
                            }));
                        }
                        Err(e) => return Err(Probe::Down(e)),
                    }
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// [`Store::check`] as the engine retries it.
    async fn ready(&self) -> Result<(), sqlx::Error> {
        match self.check().await {
            Ok(()) => Ok(()),
            Err(Probe::Down(e)) => Err(e),
            Err(Probe::Missing(text)) => Err(sqlx::Error::Configuration(text.into())),
        }
    }

    async fn write_rows(&self, rows: &[&DjangoRow]) -> Result<(), sqlx::Error> {
        self.ready().await?;
        let mut tx = self.engine.pool.begin().await?;
        for r in rows {
            sqlx::query(&self.statements.store)
                .bind(r.task_id.clone())
                .bind(r.status)
                .bind(r.result.clone())
                .bind(r.traceback.clone())
                .bind(r.meta.clone())
                .bind(r.content_encoding)
                .bind(r.content_type)
                .bind(r.periodic_task_name.clone())
                .bind(r.task_name.clone())
                .bind(r.task_args.clone())
                .bind(r.task_kwargs.clone())
                .bind(r.worker.clone())
                .bind(r.now.clone())
                .bind(r.now.clone())
                .bind(r.date_started.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    async fn read(&self, task_id: &str) -> Result<Option<ReadRow>, sqlx::Error> {
        self.ready().await?;
        let found = sqlx::query(&self.statements.select)
            .bind(task_id.to_owned())
            .fetch_optional(&self.engine.pool)
            .await?;
        found.map(|r| read_row(&r)).transpose()
    }

    async fn read_group(
        &self,
        group_id: &str,
    ) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
        self.ready().await?;
        let found = sqlx::query(&self.statements.restore_group)
            .bind(group_id.to_owned())
            .fetch_optional(&self.engine.pool)
            .await?;
        let Some(r) = found else { return Ok(None) };
        let result = text_at(&r, 0)?;
        Ok(result.map(|text| (text, text_at(&r, 1).ok().flatten())))
    }

    /// django-celery-results' `on_chord_part_return`: in one transaction, the counter row
    /// locked, decremented, and deleted when it reaches zero. Returns the header's result
    /// tuples (`sub_tasks`) when this part completed the chord; `None` when the counter is
    /// missing (the chord was not applied through django-db).
    async fn count_down(&self, group_id: &str) -> Result<Option<Option<String>>, sqlx::Error> {
        self.ready().await?;
        let s = &self.statements;
        let mut tx = self.engine.pool.begin().await?;
        let found = sqlx::query(&s.lock_counter)
            .bind(group_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(counter) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        let count: i64 = counter.try_get(0)?;
        let sub_tasks = text_at(&counter, 1)?.unwrap_or_default();
        let left = count - 1;
        if left != 0 {
            sqlx::query(&s.update_counter)
                .bind(left)
                .bind(group_id.to_owned())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Some(None));
        }
        sqlx::query(&s.delete_counter)
            .bind(group_id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Some(sub_tasks)))
    }

    async fn delete_expired(&self, before: &str) -> Result<u64, sqlx::Error> {
        self.ready().await?;
        let statements = [
            self.statements.cleanup_tasks.as_str(),
            self.statements.cleanup_groups.as_str(),
        ];
        self.engine.delete_before(&statements, before).await
    }

    async fn meta(&self, task_id: &str) -> Result<Option<Value>, BackendError> {
        let row = self.engine.retrying(false, || self.read(task_id)).await?;
        row.map(|r| r.into_meta(task_id, self.encoder.extended))
            .transpose()
    }
}

impl RowSink for Store {
    type Row = DjangoRow;

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn write<'a>(&'a self, rows: &'a [&'a DjangoRow]) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        self.write_rows(rows).boxed()
    }
}

fn read_row(r: &AnyRow) -> Result<ReadRow, sqlx::Error> {
    let mut out = ReadRow::default();
    for (i, column) in SELECT_COLUMNS.iter().enumerate() {
        let value = text_at(r, i)?;
        match *column {
            "status" => out.status = value,
            "result" => out.result = value,
            "traceback" => out.traceback = value,
            "meta" => out.meta = value,
            "content_encoding" => out.content_encoding = value,
            "date_done" => out.date_done = value,
            "task_name" => out.task_name = value,
            "task_args" => out.task_args = value,
            "task_kwargs" => out.task_kwargs = value,
            "worker" => out.worker = value,
            _ => {}
        }
    }
    Ok(out)
}

/// A text column: MySQL's driver reports TEXT columns as BLOB, read as bytes then.
fn text_at(r: &AnyRow, i: usize) -> Result<Option<String>, sqlx::Error> {
    match r.try_get::<Option<String>, _>(i) {
        Ok(text) => Ok(text),
        Err(_) => Ok(r
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())),
    }
}

/// The id in a result tuple `((id, parent), children)`, and its children when it is a group.
fn tuple_parts(tuple: &Value) -> Option<(String, Option<Vec<Value>>)> {
    let items = tuple.as_seq()?;
    let head = items.first()?.as_seq()?;
    let id = head.first()?.as_str()?.to_owned();
    let children = match items.get(1) {
        Some(Value::List(c)) | Some(Value::Tuple(c)) => Some(c.clone()),
        _ => None,
    };
    Some((id, children))
}

impl DjangoDbBackend {
    /// One header result as a chord part `[1, id, state, result]`: a task's stored meta, or
    /// for a group its members' results as one list (the first failed member's state and
    /// exception otherwise). `None` while it is not ready (Celery's `deps.ready()`).
    fn part<'a>(&'a self, tuple: &'a Value) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        async move {
            let Some((id, children)) = tuple_parts(tuple) else {
                return Err(BackendError::Decode(format!(
                    "unreadable chord sub task {tuple:?}"
                )));
            };
            let part = |state: &str, result: Value| {
                Value::List(vec![
                    Value::Int(1),
                    Value::Str(id.clone()),
                    Value::str(state),
                    result,
                ])
            };
            if let Some(children) = children {
                let mut results = Vec::with_capacity(children.len());
                for child in &children {
                    let Some(p) = self.part(child).await? else {
                        return Ok(None);
                    };
                    let items = p.as_seq().unwrap_or_default();
                    let state = items.get(2).and_then(Value::as_str).unwrap_or("");
                    let result = items.get(3).cloned().unwrap_or(Value::None);
                    if matches!(state, "FAILURE" | "REVOKED") {
                        return Ok(Some(p));
                    }
                    results.push(result);
                }
                return Ok(Some(part("SUCCESS", Value::List(results))));
            }
            let Some(meta) = self.store.meta(&id).await? else {
                return Ok(None);
            };
            let d = meta.as_dict();
            let state = d
                .and_then(|d| d.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !matches!(state, "SUCCESS" | "FAILURE" | "REVOKED") {
                return Ok(None);
            }
            let result = d
                .and_then(|d| d.get("result"))
                .cloned()
                .unwrap_or(Value::None);
            Ok(Some(part(state, result)))
        }
        .boxed()
    }
}

impl ResultBackend for DjangoDbBackend {
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        async move {
            let store = &self.store;
            let room = store.engine.room().await?;
            let row = DjangoRow::new(
                &record,
                &store.encoder,
                store.engine.url.dialect,
                Utc::now(),
            );
            self.writer.store(row, room).await
        }
        .boxed()
    }

    fn get_meta<'a>(
        &'a self,
        task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        self.store.meta(task_id).boxed()
    }

    fn restore_group<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        async move {
            let found = self
                .store
                .engine
                .retrying(false, || self.store.read_group(group_id))
                .await?;
            found
                .map(|(text, encoding)| row::decode_content(encoding.as_deref(), &text))
                .transpose()
        }
        .boxed()
    }

    fn native_chords(&self) -> Option<&dyn NativeChords> {
        Some(self)
    }

    fn cleanup(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        async move {
            let Some(expires) = self.store.expires else {
                return Ok(0);
            };
            let before = expired_before(self.store.engine.url.dialect, expires);
            self.store
                .engine
                .retrying(false, || self.store.delete_expired(&before))
                .await
        }
        .boxed()
    }

    fn check_at_start(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        async move {
            match self.store.check().await {
                Err(Probe::Missing(text)) => Err(BackendError::Server(text)),
                Err(Probe::Down(e)) => {
                    let engine = &self.store.engine;
                    engine
                        .check_at_start(async { Err::<(), _>(e) }, false)
                        .await
                }
                Ok(()) => Ok(()),
            }
        }
        .boxed()
    }

    fn wait_for_room(&self) -> BoxFuture<'_, ()> {
        self.store.engine.wait_for_room().boxed()
    }

    fn pending_results(&self) -> usize {
        self.store.engine.pending_results()
    }

    fn display_url(&self) -> String {
        format!("django-db ({})", self.store.engine.url.masked)
    }
}

/// django-celery-results' chords: the client that applies a chord creates its counter row
/// (`apply_chord`); each finished header part counts it down here.
impl NativeChords for DjangoDbBackend {
    fn chord_part_return(
        &self,
        part: ChordPart,
        record: Option<ResultRecord>,
    ) -> BoxFuture<'_, Result<ChordProgress, BackendError>> {
        async move {
            if let Some(record) = record {
                self.store(record).await?;
            }
            let store = &self.store;
            let outcome = store
                .engine
                .retrying(true, || store.count_down(&part.group_id))
                .await?;
            let sub_tasks = match outcome {
                None => {
                    // (A chord rcelery applied itself: `celery.chord_unlock` joins it.)
                    tracing::debug!("Can't find ChordCounter for Group {}", part.group_id);
                    return Ok(ChordProgress::NoSize);
                }
                Some(None) => return Ok(ChordProgress::Pending),
                Some(Some(sub_tasks)) => sub_tasks,
            };
            let tuples = crate::codec::json::decode(sub_tasks.as_bytes())
                .map_err(|e| BackendError::Decode(e.to_string()))?;
            let mut parts = Vec::new();
            for tuple in tuples.as_seq().unwrap_or_default() {
                match self.part(tuple).await? {
                    Some(p) => parts.push(p),
                    None => {
                        // Celery's `deps.ready()` is false: it sends nothing either.
                        tracing::warn!(
                            "chord {}: counted down but a header result is not ready; body not sent",
                            part.group_id
                        );
                        return Ok(ChordProgress::Pending);
                    }
                }
            }
            Ok(ChordProgress::Ready(parts))
        }
        .boxed()
    }

    fn set_chord_size<'a>(
        &'a self,
        _group_id: &'a str,
        _size: usize,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        // Not called: chords rcelery applies are joined by `celery.chord_unlock`
        // (see `counts_chords_it_applies`).
        Box::pin(async { Ok(()) })
    }

    fn chord_cleanup<'a>(&'a self, _group_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        // The counter row went in the transaction that counted it down to zero.
        Box::pin(async { Ok(()) })
    }

    fn counts_chords_it_applies(&self) -> bool {
        false
    }
}
