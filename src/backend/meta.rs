//! Celery's result meta: the dict a backend stores per task, with its exact key order.
//!
//! `{"status", "result", "traceback", "children", "date_done", ["group_id"], ["parent_id"],
//! [extended: "name", "args", "kwargs", "worker", "retries", "queue"], "task_id"}`

use chrono::Utc;
use chrono_tz::Tz;

use crate::codec::Serializer;
use crate::value::{Dict, Value};

/// Task states, spelled as Celery spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Started (only stored with `task_track_started`).
    Started,
    /// Succeeded.
    Success,
    /// Failed.
    Failure,
    /// Will be retried.
    Retry,
    /// Revoked or expired.
    Revoked,
}

impl State {
    /// Parses Celery's name of a state.
    pub fn from_name(name: &str) -> Option<State> {
        Some(match name {
            "STARTED" => State::Started,
            "SUCCESS" => State::Success,
            "FAILURE" => State::Failure,
            "RETRY" => State::Retry,
            "REVOKED" => State::Revoked,
            _ => return None,
        })
    }

    /// Celery's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Started => "STARTED",
            State::Success => "SUCCESS",
            State::Failure => "FAILURE",
            State::Retry => "RETRY",
            State::Revoked => "REVOKED",
        }
    }

    /// True for SUCCESS, FAILURE and REVOKED (Celery's `READY_STATES`).
    pub fn is_ready(self) -> bool {
        matches!(self, State::Success | State::Failure | State::Revoked)
    }
}

/// The request fields stored with `result_extended`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedMeta {
    /// Task name.
    pub name: Option<String>,
    /// Positional arguments (None when unknown).
    pub args: Value,
    /// Keyword arguments (None when unknown).
    pub kwargs: Value,
    /// Worker node name.
    pub worker: Option<String>,
    /// Retry count.
    pub retries: Option<i64>,
    /// `delivery_info.routing_key`.
    pub queue: Option<String>,
    /// The message's `argsrepr` header (django-db stores it as `task_args`).
    pub argsrepr: Option<String>,
    /// The message's `kwargsrepr` header (django-db's `task_kwargs`).
    pub kwargsrepr: Option<String>,
    /// The `periodic_task_name` header celery beat sends (django-db stores it).
    pub periodic_task_name: Option<String>,
}

/// One result to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRecord {
    /// Task id.
    pub task_id: String,
    /// State.
    pub state: State,
    /// The return value, the exception dict, or the STARTED info.
    pub result: Value,
    /// Formatted traceback for failures.
    pub traceback: Option<String>,
    /// Children as `as_tuple()` values.
    pub children: Vec<Value>,
    /// The request's group, if any.
    pub group_id: Option<String>,
    /// The request's parent task, if any.
    pub parent_id: Option<String>,
    /// Request fields, stored only when `result_extended` is on.
    pub extended: Option<ExtendedMeta>,
    /// The request's `reply_to` property: where the `rpc://` backend publishes the result
    /// (`None` or empty: nowhere, as Celery's rpc backend then sends nothing).
    pub reply_to: Option<String>,
    /// The request's `correlation_id` property, which the `rpc://` backend's message carries
    /// (the task id when unset, as Celery's `destination_for`).
    pub correlation_id: Option<String>,
}

impl ResultRecord {
    /// A FAILURE of `task_id` with the exception meta `result`, outside any group or chain
    /// (a message refused before it ran, a chord body that cannot run).
    pub fn failure(task_id: &str, result: Value, traceback: Option<String>) -> ResultRecord {
        ResultRecord {
            task_id: task_id.to_owned(),
            state: State::Failure,
            result,
            traceback,
            children: Vec::new(),
            group_id: None,
            parent_id: None,
            extended: None,
            reply_to: None,
            correlation_id: None,
        }
    }

    /// This record, to be replied to at `reply_to` with `correlation_id` (the request's
    /// properties of those names).
    pub fn replying_to(mut self, reply_to: Option<String>, correlation_id: Option<String>) -> Self {
        self.reply_to = reply_to;
        self.correlation_id = correlation_id;
        self
    }
}

/// Builds and serializes result metas as a Python worker of the same configuration would.
#[derive(Debug, Clone)]
pub struct MetaEncoder {
    /// `result_serializer`.
    pub serializer: Serializer,
    /// `result_extended`.
    pub extended: bool,
    /// The app timezone, in which Celery 5.5 stamps `date_done`.
    pub timezone: Tz,
}

impl MetaEncoder {
    /// The meta dict, keys in Celery's order, `date_done` now for ready states.
    pub fn meta(&self, r: &ResultRecord) -> Value {
        let date_done = r.state.is_ready().then(|| self.date_done());
        self.meta_at(r, date_done)
    }

    /// The meta dict with a given `date_done` (for reproducing a stored meta).
    pub fn meta_at(&self, r: &ResultRecord, date_done: Option<String>) -> Value {
        let mut m = Dict::with_capacity(14);
        m.insert("status", r.state.as_str());
        m.insert("result", r.result.clone());
        m.insert(
            "traceback",
            r.traceback.clone().map_or(Value::None, Value::Str),
        );
        m.insert("children", Value::List(r.children.clone()));
        m.insert("date_done", date_done.map_or(Value::None, Value::Str));
        if let Some(g) = &r.group_id {
            m.insert("group_id", g.as_str());
        }
        if let Some(p) = &r.parent_id {
            m.insert("parent_id", p.as_str());
        }
        if self.extended {
            let e = r.extended.clone().unwrap_or(ExtendedMeta {
                name: None,
                args: Value::None,
                kwargs: Value::None,
                worker: None,
                retries: None,
                queue: None,
                argsrepr: None,
                kwargsrepr: None,
                periodic_task_name: None,
            });
            let opt = |s: Option<String>| s.map_or(Value::None, Value::Str);
            m.insert("name", opt(e.name));
            m.insert("args", e.args);
            m.insert("kwargs", e.kwargs);
            m.insert("worker", opt(e.worker));
            m.insert("retries", e.retries.map_or(Value::None, Value::Int));
            m.insert("queue", opt(e.queue));
        }
        m.insert("task_id", r.task_id.as_str());
        Value::Dict(m)
    }

    /// The serialized meta.
    pub fn encode(&self, r: &ResultRecord) -> Vec<u8> {
        self.serializer.encode(&self.meta(r))
    }

    /// `app.now().isoformat()`: now, in the app timezone, Python's format.
    pub fn date_done(&self) -> String {
        let now = Utc::now();
        // Python's isoformat leaves out microseconds when they are zero.
        let micros = now.timestamp_subsec_micros().min(999_999);
        let mut s = String::with_capacity(32);
        SECOND.with(|cell| {
            let mut second = cell.borrow_mut();
            if second.utc != now.timestamp() || second.timezone != self.timezone {
                *second = Second::new(now, self.timezone);
            }
            s.push_str(&second.date_time);
            if micros != 0 {
                s.push('.');
                let mut div = 100_000;
                while div > 0 {
                    s.push(char::from(b'0' + (micros / div % 10) as u8));
                    div /= 10;
                }
            }
            s.push_str(&second.offset);
        });
        s
    }
}

/// The parts of an ISO timestamp that stay the same for a whole second: formatted once per
/// second (zone lookup and formatting were a visible cost per result).
struct Second {
    utc: i64,
    timezone: Tz,
    /// `YYYY-MM-DDTHH:MM:SS` in the zone.
    date_time: String,
    /// `+HH:MM` (or `+HH:MM:SS`).
    offset: String,
}

impl Second {
    fn new(now: chrono::DateTime<Utc>, timezone: Tz) -> Self {
        use chrono::{Offset, SubsecRound};
        let local = now.trunc_subsecs(0).with_timezone(&timezone);
        let date_time = local.format("%Y-%m-%dT%H:%M:%S").to_string();
        let offset = local.offset().fix().local_minus_utc();
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        let mut text = format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60);
        if !abs.is_multiple_of(60) {
            text.push_str(&format!(":{:02}", abs % 60));
        }
        Second {
            utc: now.timestamp(),
            timezone,
            date_time,
            offset: text,
        }
    }
}

thread_local! {
    static SECOND: std::cell::RefCell<Second> =
        const { std::cell::RefCell::new(Second { utc: i64::MIN, timezone: Tz::UTC, date_time: String::new(), offset: String::new() }) };
}

/// The class name and the `repr` of the args of the exception an exception meta stands for
/// (`("ValueError", "'boom'")`), as `exception_to_python` would rebuild it.
pub fn exception_parts(meta: &Value) -> (String, String) {
    let d = meta.as_dict();
    let exc_type = d
        .and_then(|d| d.get("exc_type"))
        .and_then(Value::as_str)
        .unwrap_or("Exception")
        .to_owned();
    let args = match d.and_then(|d| d.get("exc_message")) {
        Some(Value::List(items)) | Some(Value::Tuple(items)) => items
            .iter()
            .map(crate::value::py_repr)
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => crate::value::py_repr(other),
        None => String::new(),
    };
    (exc_type, args)
}

/// Celery's exception meta for non-pickle serializers:
/// `{"exc_type": ..., "exc_message": [args...], "exc_module": ...}`.
pub fn exception_meta(exc_type: &str, exc_module: &str, args: Vec<Value>) -> Value {
    let mut d = Dict::with_capacity(3);
    d.insert("exc_type", exc_type);
    d.insert("exc_message", Value::List(args));
    d.insert("exc_module", exc_module);
    Value::Dict(d)
}

/// Decodes a stored value (a result meta, a chord part): pickle when it starts with PROTO,
/// else JSON (Celery writes with the result serializer). Used by every backend; public for
/// the decoder fuzz targets.
pub fn decode_stored(raw: &[u8]) -> Result<Value, super::BackendError> {
    if raw.first() == Some(&0x80) {
        crate::codec::pickle::decode(raw).map_err(|e| super::BackendError::Decode(e.to_string()))
    } else {
        crate::codec::json::decode(raw).map_err(|e| super::BackendError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_done_is_in_the_app_timezone() {
        let enc = MetaEncoder {
            serializer: Serializer::Json,
            extended: false,
            timezone: chrono_tz::Asia::Shanghai,
        };
        assert!(enc.date_done().ends_with("+08:00"));
        let enc = MetaEncoder {
            timezone: chrono_tz::UTC,
            ..enc
        };
        assert!(enc.date_done().ends_with("+00:00"));
        let enc = MetaEncoder {
            timezone: chrono_tz::America::St_Johns,
            ..enc
        };
        let d = enc.date_done();
        assert!(d.ends_with("-03:30") || d.ends_with("-02:30"), "{d}");
        let parsed = chrono::DateTime::parse_from_rfc3339(&d).expect("RFC 3339");
        assert!((parsed.timestamp() - Utc::now().timestamp()).abs() < 5);
    }

    #[test]
    fn keys_follow_celerys_order() {
        let enc = MetaEncoder {
            serializer: Serializer::Json,
            extended: false,
            timezone: chrono_tz::UTC,
        };
        let r = ResultRecord {
            task_id: "t".into(),
            state: State::Started,
            result: Value::None,
            traceback: None,
            children: vec![],
            group_id: None,
            parent_id: Some("p".into()),
            extended: None,
            reply_to: None,
            correlation_id: None,
        };
        let Value::Dict(d) = enc.meta(&r) else {
            panic!("meta is a dict")
        };
        let keys: Vec<_> = d
            .iter()
            .map(|(k, _)| k.as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "status",
                "result",
                "traceback",
                "children",
                "date_done",
                "parent_id",
                "task_id"
            ]
        );
    }
}
