//! The task events' own fields, as Celery's worker sends them (`worker/strategy.py` for
//! `task-received`, `worker/request.py` for the rest). Every task event starts with `uuid`.

use super::event::Event;
use crate::protocol::TaskMessage;
use crate::value::{saferepr, Dict, Value};

/// Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize`, for messages that carry no repr.
const REPR_MAXSIZE: usize = 1024;

fn with_uuid(uuid: &str, capacity: usize) -> Dict {
    let mut d = Dict::with_capacity(capacity + 1);
    d.insert("uuid", uuid);
    d
}

fn opt(s: &Option<String>) -> Value {
    s.clone().map_or(Value::None, Value::Str)
}

/// `task-received`: `uuid, name, args, kwargs, root_id, parent_id, retries, eta, expires`,
/// with `args`/`kwargs` the message's reprs (computed as Celery does when it has none).
pub fn task_received(m: &TaskMessage) -> Event {
    let mut d = with_uuid(&m.id, 8);
    d.insert("name", m.name.as_str());
    let args = m
        .argsrepr
        .clone()
        .unwrap_or_else(|| saferepr(&Value::Tuple(m.args.clone()), REPR_MAXSIZE));
    let kwargs = m
        .kwargsrepr
        .clone()
        .unwrap_or_else(|| saferepr(&Value::Dict(m.kwargs.clone()), REPR_MAXSIZE));
    d.insert("args", args);
    d.insert("kwargs", kwargs);
    d.insert("root_id", opt(&m.root_id));
    d.insert("parent_id", opt(&m.parent_id));
    d.insert("retries", m.retries);
    let iso = |t: &Option<crate::value::DateTime>| {
        t.as_ref()
            .map_or(Value::None, |t| Value::Str(t.isoformat()))
    };
    d.insert("eta", iso(&m.eta));
    d.insert("expires", iso(&m.expires));
    Event::new("task-received", d)
}

/// `task-sent` (`task_send_sent_event`): `uuid, root_id, parent_id, name, args, kwargs,
/// retries, eta, expires, queue, exchange, routing_key`, from the published message's
/// `headers` (its reprs and ISO times).
pub fn task_sent(t: &crate::protocol::NewTask, headers: &Dict) -> Event {
    let mut d = with_uuid(&t.id, 11);
    let h = |k: &str| headers.get(k).cloned().unwrap_or(Value::None);
    d.insert("root_id", h("root_id"));
    d.insert("parent_id", h("parent_id"));
    d.insert("name", t.name.as_str());
    d.insert("args", h("argsrepr"));
    d.insert("kwargs", h("kwargsrepr"));
    d.insert("retries", t.retries);
    d.insert("eta", h("eta"));
    d.insert("expires", h("expires"));
    d.insert("queue", t.routing_key.as_str());
    d.insert("exchange", t.exchange.as_str());
    d.insert("routing_key", t.routing_key.as_str());
    Event::new("task-sent", d)
}

/// `task-started`: `uuid`.
pub fn task_started(uuid: &str) -> Event {
    Event::new("task-started", with_uuid(uuid, 0))
}

/// `task-succeeded`: `uuid, result` (the result's repr), `runtime` (seconds).
pub fn task_succeeded(uuid: &str, result_repr: String, runtime: f64) -> Event {
    let mut d = with_uuid(uuid, 2);
    d.insert("result", result_repr);
    d.insert("runtime", Value::Float(runtime));
    Event::new("task-succeeded", d)
}

/// `task-failed`: `uuid, exception` (the exception's repr), `traceback`.
pub fn task_failed(uuid: &str, exception: String, traceback: Option<String>) -> Event {
    let mut d = with_uuid(uuid, 2);
    d.insert("exception", exception);
    d.insert("traceback", traceback.map_or(Value::None, Value::Str));
    Event::new("task-failed", d)
}

/// `task-retried`: `uuid, exception, traceback`.
pub fn task_retried(uuid: &str, exception: String, traceback: String) -> Event {
    let mut d = with_uuid(uuid, 2);
    d.insert("exception", exception);
    d.insert("traceback", traceback);
    Event::new("task-retried", d)
}

/// `task-revoked`: `uuid, terminated, signum, expired`.
pub fn task_revoked(uuid: &str, terminated: bool, signum: Option<i64>, expired: bool) -> Event {
    let mut d = with_uuid(uuid, 3);
    d.insert("terminated", terminated);
    d.insert("signum", signum.map_or(Value::None, Value::Int));
    d.insert("expired", expired);
    Event::new("task-revoked", d)
}

/// `task-rejected`: `uuid, requeue`.
pub fn task_rejected(uuid: &str, requeue: bool) -> Event {
    let mut d = with_uuid(uuid, 1);
    d.insert("requeue", requeue);
    Event::new("task-rejected", d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(e: &Event) -> Vec<&str> {
        e.fields.iter().filter_map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn received_has_celerys_fields() {
        let mut m = TaskMessage::new("id-1", "tasks.add");
        m.args = vec![Value::Int(2), Value::Int(3)];
        let e = task_received(&m);
        assert_eq!(
            keys(&e),
            [
                "uuid",
                "name",
                "args",
                "kwargs",
                "root_id",
                "parent_id",
                "retries",
                "eta",
                "expires"
            ]
        );
        assert_eq!(e.fields.get("args"), Some(&Value::str("(2, 3)")));
        assert_eq!(e.fields.get("kwargs"), Some(&Value::str("{}")));
        assert_eq!(e.fields.get("eta"), Some(&Value::None));
    }

    #[test]
    fn outcome_events_have_celerys_fields() {
        assert_eq!(keys(&task_started("u")), ["uuid"]);
        assert_eq!(
            keys(&task_succeeded("u", "5".into(), 0.1)),
            ["uuid", "result", "runtime"]
        );
        assert_eq!(
            keys(&task_failed("u", "KeyError('x')".into(), Some("tb".into()))),
            ["uuid", "exception", "traceback"]
        );
        assert_eq!(
            keys(&task_retried("u", "e".into(), "tb".into())),
            ["uuid", "exception", "traceback"]
        );
        assert_eq!(
            keys(&task_revoked("u", false, None, true)),
            ["uuid", "terminated", "signum", "expired"]
        );
        assert_eq!(keys(&task_rejected("u", true)), ["uuid", "requeue"]);
    }
}
