//! A result as the columns of its row, encoded as Celery's `DatabaseBackend` encodes them, and
//! a row read back as the meta dict the rest of the worker reads.
//!
//! Celery 5.7 stores `result` as the result serializer's bytes of the value (the exception
//! dict for a failure), `children` the same way (NULL when there are none), `args` and
//! `kwargs` (with `result_extended`) likewise; Celery 5.6 and older kept `result` as a pickle
//! (SQLAlchemy's `PickleType`) and had no `children`. `date_done` is set for the ready states
//! only: `app.now()`, which PostgreSQL stores in its session time zone and MySQL and SQLite as
//! the wall-clock time of the app's timezone.

use chrono::Utc;
use chrono_tz::Tz;

use super::sql::Layout;
use super::url::Dialect;
use crate::backend::meta::decode_stored;
use crate::backend::meta::{MetaEncoder, ResultRecord};
use crate::backend::BackendError;
use crate::codec::pickle;
use crate::value::{Dict, Value};

/// One result's column values, in the order of [`super::sql::RESULT_COLUMNS`].
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// `task_id`.
    pub task_id: String,
    /// `status`.
    pub status: &'static str,
    /// `result`.
    pub result: Vec<u8>,
    /// `date_done`, as the bound text (see [`date_done`]).
    pub date_done: Option<String>,
    /// `traceback`.
    pub traceback: Option<String>,
    /// `children` (NULL when none, or when the layout has no such column).
    pub children: Option<Vec<u8>>,
    /// `name`.
    pub name: Option<String>,
    /// `args`.
    pub args: Option<Vec<u8>>,
    /// `kwargs`.
    pub kwargs: Option<Vec<u8>>,
    /// `worker`.
    pub worker: Option<String>,
    /// `retries`.
    pub retries: Option<i32>,
    /// `queue`.
    pub queue: Option<String>,
}

impl TaskRow {
    /// The row Celery would write for `record`.
    pub fn new(
        record: &ResultRecord,
        encoder: &MetaEncoder,
        dialect: Dialect,
        layout: Layout,
    ) -> Self {
        let serializer = encoder.serializer;
        let result = if layout.children {
            serializer.encode(&record.result)
        } else {
            // SQLAlchemy's PickleType (Celery 5.6 and older).
            pickle::encode(&record.result, 4)
        };
        let children = (layout.children && !record.children.is_empty())
            .then(|| serializer.encode(&Value::List(record.children.clone())));
        let ext = record.extended.as_ref().filter(|_| encoder.extended);
        let encoded = |v: &Value| Some(serializer.encode(v));
        TaskRow {
            task_id: record.task_id.clone(),
            status: record.state.as_str(),
            result,
            date_done: record
                .state
                .is_ready()
                .then(|| date_done(dialect, encoder.timezone)),
            traceback: record.traceback.clone(),
            children,
            name: ext.and_then(|e| e.name.clone()),
            args: ext.and_then(|e| encoded(&e.args)),
            kwargs: ext.and_then(|e| encoded(&e.kwargs)),
            worker: ext.and_then(|e| e.worker.clone()),
            retries: ext
                .and_then(|e| e.retries)
                .map(|r| r.clamp(0, i32::MAX as i64) as i32),
            queue: ext.and_then(|e| e.queue.clone()),
        }
    }
}

/// `date_done` as the text bound for it: an RFC 3339 instant for PostgreSQL (converted into
/// the session's time zone there), the app timezone's wall-clock time for the others.
pub fn date_done(dialect: Dialect, timezone: Tz) -> String {
    let now = Utc::now();
    match dialect {
        Dialect::Postgres => now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        Dialect::MySql | Dialect::Sqlite => now
            .with_timezone(&timezone)
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string(),
    }
}

/// The time `expires` ago, as [`super::sql::Statements::cleanup_tasks`] binds it: Celery 5.7
/// compares with an aware UTC datetime, which PostgreSQL converts and the others read as UTC
/// wall-clock time.
pub fn expired_before(dialect: Dialect, expires: std::time::Duration) -> String {
    let at = Utc::now() - chrono::Duration::from_std(expires).unwrap_or(chrono::Duration::MAX);
    match dialect {
        Dialect::Postgres => at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        Dialect::MySql | Dialect::Sqlite => at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
    }
}

/// A row's columns as read (`None` for NULL or a column the layout has not).
#[derive(Debug, Default)]
pub struct ReadRow {
    /// `status`.
    pub status: Option<String>,
    /// `result`.
    pub result: Option<Vec<u8>>,
    /// `date_done` as text.
    pub date_done: Option<String>,
    /// `traceback`.
    pub traceback: Option<String>,
    /// `children`.
    pub children: Option<Vec<u8>>,
    /// `name`.
    pub name: Option<String>,
    /// `args`.
    pub args: Option<Vec<u8>>,
    /// `kwargs`.
    pub kwargs: Option<Vec<u8>>,
    /// `worker`.
    pub worker: Option<String>,
    /// `retries`.
    pub retries: Option<i64>,
    /// `queue`.
    pub queue: Option<String>,
}

impl ReadRow {
    /// The meta dict Celery's `_get_task_meta_for` returns for this row: `status`, `result`,
    /// `traceback`, `date_done`, `children`, `task_id`, and with `extended` the request fields.
    pub fn into_meta(self, task_id: &str, extended: bool) -> Result<Value, BackendError> {
        let decode = |raw: Option<Vec<u8>>| raw.as_deref().map(decode_stored).transpose();
        let text = |s: Option<String>| s.map_or(Value::None, Value::Str);
        let mut m = meta_head(
            self.status,
            decode(self.result)?,
            self.traceback,
            self.date_done,
            decode(self.children)?,
        );
        if extended {
            m.insert("name", text(self.name));
            m.insert("args", decode(self.args)?.unwrap_or(Value::None));
            m.insert("kwargs", decode(self.kwargs)?.unwrap_or(Value::None));
            m.insert("worker", text(self.worker));
            m.insert("retries", self.retries.map_or(Value::None, Value::Int));
            m.insert("queue", text(self.queue));
        }
        m.insert("task_id", task_id);
        Ok(Value::Dict(m))
    }
}

/// The first keys of a meta read back from a row: `status`, `result`, `traceback`,
/// `date_done` (the database's text made ISO: `T` between date and time), `children` (`[]`
/// when none).
pub fn meta_head(
    status: Option<String>,
    result: Option<Value>,
    traceback: Option<String>,
    date_done: Option<String>,
    children: Option<Value>,
) -> Dict {
    let text = |s: Option<String>| s.map_or(Value::None, Value::Str);
    let mut m = Dict::with_capacity(12);
    m.insert("status", text(status));
    m.insert("result", result.unwrap_or(Value::None));
    m.insert("traceback", text(traceback));
    m.insert(
        "date_done",
        text(date_done.map(|d| d.replacen(' ', "T", 1))),
    );
    m.insert("children", children.unwrap_or(Value::List(Vec::new())));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::meta::{ExtendedMeta, State};
    use crate::codec::Serializer;

    fn encoder(extended: bool) -> MetaEncoder {
        MetaEncoder {
            serializer: Serializer::Json,
            extended,
            timezone: chrono_tz::Asia::Shanghai,
        }
    }

    const FRESH: Layout = Layout {
        children: true,
        task_id_numbered: false,
        group_id_numbered: false,
    };

    #[test]
    fn columns_are_encoded_as_celery_57_encodes_them() {
        let record = ResultRecord {
            task_id: "t".into(),
            state: State::Success,
            result: Value::Int(5),
            traceback: None,
            children: vec![],
            group_id: None,
            parent_id: None,
            extended: Some(ExtendedMeta {
                name: Some("tasks.add".into()),
                args: Value::List(vec![Value::Int(2), Value::Int(3)]),
                kwargs: Value::Dict(Dict::new()),
                worker: Some("w@h".into()),
                retries: Some(0),
                queue: Some("default".into()),
                argsrepr: Some("(2, 3)".into()),
                kwargsrepr: Some("{}".into()),
                periodic_task_name: None,
            }),
            reply_to: None,
            correlation_id: None,
        };
        let row = TaskRow::new(&record, &encoder(true), Dialect::Postgres, FRESH);
        assert_eq!(row.result, b"5");
        assert_eq!(row.args.as_deref(), Some(&b"[2, 3]"[..]));
        assert_eq!(row.kwargs.as_deref(), Some(&b"{}"[..]));
        assert_eq!(row.children, None);
        assert!(row.date_done.is_some_and(|d| d.ends_with("+00:00")));
        let plain = TaskRow::new(&record, &encoder(false), Dialect::MySql, FRESH);
        assert_eq!((plain.name, plain.args), (None, None));
        let legacy = Layout {
            children: false,
            ..FRESH
        };
        let old = TaskRow::new(&record, &encoder(false), Dialect::Sqlite, legacy);
        assert_eq!(old.result[0], 0x80, "pickled for Celery 5.6 and older");
    }

    #[test]
    fn only_ready_states_have_a_date_done() {
        let mut record = ResultRecord::failure("t", Value::None, None);
        record.state = State::Started;
        let row = TaskRow::new(&record, &encoder(false), Dialect::Postgres, FRESH);
        assert_eq!(row.date_done, None);
        let wall = date_done(Dialect::MySql, chrono_tz::Asia::Shanghai);
        assert_eq!(wall.len(), "2026-12-01 19:00:00.000000".len(), "{wall}");
    }

    #[test]
    fn a_row_reads_back_as_a_meta() {
        let row = ReadRow {
            status: Some("SUCCESS".into()),
            result: Some(b"{\"a\": 1}".to_vec()),
            date_done: Some("2026-12-01 19:17:49.665082".into()),
            ..ReadRow::default()
        };
        let meta = row.into_meta("t", false).expect("decodes");
        let d = meta.as_dict().expect("dict");
        assert_eq!(d.get("status").and_then(Value::as_str), Some("SUCCESS"));
        assert_eq!(
            d.get("date_done").and_then(Value::as_str),
            Some("2026-12-01T19:17:49.665082")
        );
        assert_eq!(d.get("children"), Some(&Value::List(vec![])));
    }
}
