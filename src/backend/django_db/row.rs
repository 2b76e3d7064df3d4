//! A result as its `django_celery_results_taskresult` row, encoded as django-celery-results
//! 2.6 encodes it (golden/django_db/ holds what it writes), and a row read back as the meta
//! dict the rest of the worker reads.
//!
//! - `result` and `meta` (`{"children": [...]}`) are the result serializer's text: JSON as
//!   is (`content_encoding` `utf-8`), pickle in base64 (`binary`); `content_type` names the
//!   serializer.
//! - With `result_extended`: `task_name`, `worker` (the node name), `periodic_task_name`
//!   (beat's header), `task_args` / `task_kwargs` (the message's `argsrepr` / `kwargsrepr`
//!   strings encoded by the result serializer, so JSON `"\"(2, 3)\""`; the argument values
//!   when the message has no repr, protocol 1) and `traceback`. Without it all of them are
//!   NULL, `traceback` too, even for a failure (django-celery-results overwrites it).
//! - `date_created` at insert, `date_done` at every write (Django's `auto_now`, a STARTED
//!   row too), `date_started` when the state is STARTED; instants in UTC as Django stores
//!   them with `USE_TZ = True`.

use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::backend::database::row::meta_head;
use crate::backend::database::url::Dialect;
use crate::backend::meta::decode_stored;
use crate::backend::meta::{MetaEncoder, ResultRecord, State};
use crate::backend::BackendError;
use crate::codec::Serializer;
use crate::value::{Dict, Value};

/// One result's column values, in the order of [`super::sql::STORE_COLUMNS`].
#[derive(Debug, Clone, PartialEq)]
pub struct DjangoRow {
    /// `task_id`.
    pub task_id: String,
    /// `status`.
    pub status: &'static str,
    /// `result`.
    pub result: String,
    /// `traceback`.
    pub traceback: Option<String>,
    /// `meta`.
    pub meta: String,
    /// `content_encoding`.
    pub content_encoding: &'static str,
    /// `content_type`.
    pub content_type: &'static str,
    /// `periodic_task_name`.
    pub periodic_task_name: Option<String>,
    /// `task_name`.
    pub task_name: Option<String>,
    /// `task_args`.
    pub task_args: Option<String>,
    /// `task_kwargs`.
    pub task_kwargs: Option<String>,
    /// `worker`.
    pub worker: Option<String>,
    /// `date_created` and `date_done` (the bound text, see [`time_text`]).
    pub now: String,
    /// `date_started`: set for STARTED (else the stored value stays).
    pub date_started: Option<String>,
}

/// `data` as django-celery-results' `encode_content` writes it: the serializer's text, in
/// base64 for a binary serializer.
pub fn encode_content(serializer: Serializer, data: &Value) -> String {
    let bytes = serializer.encode(data);
    match serializer {
        Serializer::Json => String::from_utf8_lossy(&bytes).into_owned(),
        Serializer::Pickle => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// A stored column read back (`decode_content`): base64 first when `binary`.
pub fn decode_content(encoding: Option<&str>, raw: &str) -> Result<Value, BackendError> {
    if encoding == Some("binary") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|e| BackendError::Decode(e.to_string()))?;
        decode_stored(&bytes)
    } else {
        decode_stored(raw.as_bytes())
    }
}

/// An instant as bound for `dialect`: RFC 3339 for PostgreSQL (a `timestamptz`), UTC
/// wall-clock text for MySQL's `datetime(6)` and SQLite, as Django writes them.
pub fn time_text(dialect: Dialect, at: DateTime<Utc>) -> String {
    match dialect {
        Dialect::Postgres => at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        Dialect::MySql | Dialect::Sqlite => at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
    }
}

impl DjangoRow {
    /// The row django-celery-results would write for `record`, at `now`.
    pub fn new(
        record: &ResultRecord,
        encoder: &MetaEncoder,
        dialect: Dialect,
        now: DateTime<Utc>,
    ) -> DjangoRow {
        let serializer = encoder.serializer;
        let mut meta = Dict::with_capacity(1);
        meta.insert("children", Value::List(record.children.clone()));
        let ext = record.extended.as_ref().filter(|_| encoder.extended);
        let repr_or = |repr: &Option<String>, value: &Value| match repr {
            Some(text) => encode_content(serializer, &Value::Str(text.clone())),
            None => encode_content(serializer, value),
        };
        let now_text = time_text(dialect, now);
        DjangoRow {
            task_id: record.task_id.clone(),
            status: record.state.as_str(),
            result: encode_content(serializer, &record.result),
            traceback: ext.and(record.traceback.clone()),
            meta: encode_content(serializer, &Value::Dict(meta)),
            content_encoding: serializer.content_encoding(),
            content_type: serializer.content_type(),
            periodic_task_name: ext.and_then(|e| e.periodic_task_name.clone()),
            task_name: ext.and_then(|e| e.name.clone()),
            task_args: ext.map(|e| repr_or(&e.argsrepr, &e.args)),
            task_kwargs: ext.map(|e| repr_or(&e.kwargsrepr, &e.kwargs)),
            worker: ext.and_then(|e| e.worker.clone()),
            date_started: (record.state == State::Started).then(|| now_text.clone()),
            now: now_text,
        }
    }
}

/// A task row's columns as read (`None` for NULL).
#[derive(Debug, Default)]
pub struct ReadRow {
    /// `status`.
    pub status: Option<String>,
    /// `result`.
    pub result: Option<String>,
    /// `traceback`.
    pub traceback: Option<String>,
    /// `meta`.
    pub meta: Option<String>,
    /// `content_encoding`.
    pub content_encoding: Option<String>,
    /// `date_done` as text.
    pub date_done: Option<String>,
    /// `task_name`.
    pub task_name: Option<String>,
    /// `task_args`.
    pub task_args: Option<String>,
    /// `task_kwargs`.
    pub task_kwargs: Option<String>,
    /// `worker`.
    pub worker: Option<String>,
}

impl ReadRow {
    /// The meta dict django-celery-results' `_get_task_meta_for` returns: `status`,
    /// `result`, `traceback`, `date_done`, `children` (from `meta`), `task_id`, and with
    /// `extended` the request fields (`args`/`kwargs` as decoded: the repr strings).
    pub fn into_meta(self, task_id: &str, extended: bool) -> Result<Value, BackendError> {
        let encoding = self.content_encoding.as_deref();
        let decode = |raw: Option<String>| match raw.as_deref() {
            Some(text) if !text.is_empty() => decode_content(encoding, text).map(Some),
            _ => Ok(None),
        };
        let text = |s: Option<String>| s.map_or(Value::None, Value::Str);
        let children = decode(self.meta)?
            .as_ref()
            .and_then(Value::as_dict)
            .and_then(|d| d.get("children").cloned());
        let mut m = meta_head(
            self.status,
            decode(self.result)?,
            self.traceback,
            self.date_done,
            children,
        );
        if extended {
            m.insert("name", text(self.task_name));
            // Unreadable arguments stay as stored, as django-celery-results leaves them.
            let args = decode(self.task_args.clone())
                .unwrap_or_else(|_| self.task_args.clone().map(Value::Str))
                .unwrap_or(Value::None);
            let kwargs = decode(self.task_kwargs.clone())
                .unwrap_or_else(|_| self.task_kwargs.clone().map(Value::Str))
                .unwrap_or(Value::None);
            m.insert("args", args);
            m.insert("kwargs", kwargs);
            m.insert("worker", text(self.worker));
        }
        m.insert("task_id", task_id);
        Ok(Value::Dict(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::meta::ExtendedMeta;

    fn encoder(serializer: Serializer, extended: bool) -> MetaEncoder {
        MetaEncoder {
            serializer,
            extended,
            timezone: chrono_tz::Asia::Shanghai,
        }
    }

    fn failure() -> ResultRecord {
        let mut exc = Dict::new();
        exc.insert("exc_type", "ValueError");
        exc.insert("exc_message", Value::List(vec![Value::str("boom")]));
        exc.insert("exc_module", "builtins");
        let mut record = ResultRecord::failure("t", Value::Dict(exc), Some("Traceback".into()));
        record.extended = Some(ExtendedMeta {
            name: Some("tasks.fail".into()),
            args: Value::List(vec![Value::str("boom")]),
            kwargs: Value::Dict(Dict::new()),
            worker: Some("w1@h".into()),
            retries: Some(0),
            queue: Some("default".into()),
            argsrepr: Some("('boom',)".into()),
            kwargsrepr: Some("{}".into()),
            periodic_task_name: Some("every-minute".into()),
        });
        record
    }

    #[test]
    fn columns_are_encoded_as_django_celery_results_encodes_them() {
        let now = Utc::now();
        let row = DjangoRow::new(
            &failure(),
            &encoder(Serializer::Json, true),
            Dialect::Postgres,
            now,
        );
        // golden/django_db/extended_failure.json
        assert_eq!(
            row.result,
            r#"{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}"#
        );
        assert_eq!(row.meta, r#"{"children": []}"#);
        assert_eq!(row.task_args.as_deref(), Some(r#""('boom',)""#));
        assert_eq!(row.task_kwargs.as_deref(), Some(r#""{}""#));
        assert_eq!(
            (row.content_type, row.content_encoding),
            ("application/json", "utf-8")
        );
        assert_eq!(row.periodic_task_name.as_deref(), Some("every-minute"));
        assert_eq!(row.traceback.as_deref(), Some("Traceback"));
        assert_eq!(row.date_started, None);
        // golden/django_db/plain_failure.json: no traceback without result_extended.
        let plain = DjangoRow::new(
            &failure(),
            &encoder(Serializer::Json, false),
            Dialect::Sqlite,
            now,
        );
        assert_eq!(
            (plain.traceback, plain.task_args, plain.worker),
            (None, None, None)
        );
        assert_eq!(plain.now.len(), "2026-12-06 11:20:00.000000".len());
    }

    #[test]
    fn pickle_is_stored_in_base64_and_reads_back() {
        let mut record = failure();
        record.state = State::Started;
        let row = DjangoRow::new(
            &record,
            &encoder(Serializer::Pickle, false),
            Dialect::MySql,
            Utc::now(),
        );
        assert_eq!(row.content_encoding, "binary");
        assert!(row.result.starts_with("gAS"), "{}", row.result);
        assert_eq!(row.date_started.as_deref(), Some(row.now.as_str()));
        let read = ReadRow {
            status: Some("STARTED".into()),
            result: Some(row.result.clone()),
            meta: Some(row.meta.clone()),
            content_encoding: Some("binary".into()),
            ..ReadRow::default()
        };
        let meta = read.into_meta("t", false).expect("decodes");
        let d = meta.as_dict().expect("dict");
        assert_eq!(d.get("result"), Some(&record.result));
        assert_eq!(d.get("children"), Some(&Value::List(vec![])));
    }
}
