//! The `revoke` and `revoke_by_stamped_headers` remote-control commands: what they change
//! in the worker's [`Revocations`] and the reply Celery's worker gives. The pidbox
//! dispatcher calls these with the command's arguments.

use indexmap::IndexMap;

use super::{signal, Revocations};
use crate::backend::meta::exception_meta;
use crate::backend::{ResultBackend, ResultRecord, State};
use crate::value::{py_repr, Dict, Value};

/// Celery's `ok(text)` reply.
fn ok(text: String) -> Value {
    let mut d = Dict::new();
    d.insert("ok", text);
    Value::Dict(d)
}

/// Celery's reply for a handler that raised.
fn error(text: String) -> Value {
    let mut d = Dict::new();
    d.insert("error", text);
    Value::Dict(d)
}

/// A value or a list of values, as a list (Celery's `maybe_list`).
fn listed(v: &Value) -> Vec<Value> {
    match v {
        Value::None => Vec::new(),
        Value::List(items) | Value::Tuple(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// A Python set's repr of `items`, in their order (`set()` when empty).
fn set_repr<'a>(items: impl IntoIterator<Item = &'a Value>) -> String {
    let parts: Vec<String> = items.into_iter().map(py_repr).collect();
    if parts.is_empty() {
        "set()".to_owned()
    } else {
        format!("{{{}}}", parts.join(", "))
    }
}

/// The signal a revoke names (`signal`, default TERM), when `terminate` is set. `Err` with
/// Celery's error text for a name it refuses.
fn terminate_signal(arguments: &Dict) -> Result<Option<i32>, Value> {
    let terminate = arguments.get("terminate").is_some_and(truthy);
    if !terminate {
        return Ok(None);
    }
    match arguments.get("signal") {
        None | Some(Value::None) => Ok(Some(libc::SIGTERM)),
        Some(v) => signal::signum(v).map(Some).ok_or_else(|| refused_signal(v)),
    }
}

/// The error Celery's `signum` raises for a signal it refuses, as its dispatcher replies it.
fn refused_signal(v: &Value) -> Value {
    match v {
        Value::Str(s) if !s.is_empty() && *s == s.to_uppercase() => {
            let name = if s.starts_with("SIG") {
                s.clone()
            } else {
                format!("SIG{s}")
            };
            error(format!(
                "AttributeError(\"module 'signal' has no attribute '{name}'\")"
            ))
        }
        _ => error("TypeError('signal name must be uppercase string.')".to_owned()),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::None => false,
        Value::Bool(b) => *b,
        Value::Int(n) => *n != 0,
        Value::Str(s) => !s.is_empty(),
        _ => true,
    }
}

/// `revoke(task_id, terminate=False, signal=None)`: flags the ids as revoked, marks REVOKED in
/// the backend those not running here whose state is PENDING, RECEIVED, RETRY or REJECTED
/// (Celery 5.6+), and with `terminate` ends the ones held or running here. Replies as
/// Celery does: `tasks {'<id>'} flagged as revoked`, or `terminate: <ids>` /
/// `terminate: tasks unknown`.
pub async fn revoke(store: &Revocations, backend: &dyn ResultBackend, arguments: &Dict) -> Value {
    let ids: Vec<Value> = arguments.get("task_id").map(listed).unwrap_or_default();
    let mut unique: Vec<String> = Vec::new();
    for id in ids.iter().filter_map(Value::as_str) {
        if !unique.iter().any(|u| u == id) {
            unique.push(id.to_owned());
        }
    }
    // Celery flags the ids (and marks them in the backend) before it reads the signal: a
    // refused signal still revokes them, and the reply is the error.
    let signal = terminate_signal(arguments);
    let signum = signal.as_ref().ok().copied().flatten();
    let running = store.running(&unique);
    let found = store.revoke(&unique, signum);
    for id in unique.iter().filter(|id| !running.contains(id)) {
        mark_revoked(backend, id).await;
    }
    if let Err(reply) = signal {
        return reply;
    }
    if signum.is_some() {
        for id in &found {
            tracing::info!(task_id = %id, "Terminating {id} ({})", signum.unwrap_or(libc::SIGTERM));
        }
        if found.is_empty() {
            return ok("terminate: tasks unknown".to_owned());
        }
        return ok(format!("terminate: {}", found.join(", ")));
    }
    tracing::info!("Tasks flagged as revoked: {}", unique.join(", "));
    let as_values: Vec<Value> = unique.iter().map(|s| Value::str(s.as_str())).collect();
    ok(format!("tasks {} flagged as revoked", set_repr(&as_values)))
}

/// Stores REVOKED (`TaskRevokedError('revoked')`) for `id` unless the backend holds a state
/// that says another worker has it or it is done.
async fn mark_revoked(backend: &dyn ResultBackend, id: &str) {
    match backend.get_meta(id).await {
        Ok(None) => {}
        Ok(Some(meta)) => {
            let name = meta
                .as_dict()
                .and_then(|d| d.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("PENDING");
            match name {
                "PENDING" | "RECEIVED" | "RETRY" | "REJECTED" => {}
                _ => return,
            }
        }
        Err(e) => {
            tracing::warn!(task_id = %id, error = %e, "Failed to mark task {id} as revoked in backend: {e}");
            return;
        }
    }
    let meta = exception_meta(
        "TaskRevokedError",
        "celery.exceptions",
        vec![Value::str("revoked")],
    );
    let mut record = ResultRecord::failure(id, meta, None);
    record.state = State::Revoked;
    if let Err(e) = backend.store(record).await {
        tracing::warn!(task_id = %id, error = %e, "Failed to mark task {id} as revoked in backend: {e}");
    }
}

/// `revoke_by_stamped_headers(headers, terminate=False, signal=None)`: flags the stamps as
/// revoked and with `terminate` ends the requests held or running here that carry one.
/// `headers` is a dict `{header: stamp or [stamps]}` or a list of `"header=stamp"`.
pub fn revoke_by_stamped_headers(store: &Revocations, arguments: &Dict) -> Value {
    let signum = match terminate_signal(arguments) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let mut given = Dict::new();
    match arguments.get("headers") {
        Some(Value::Dict(d)) => given = d.clone(),
        Some(Value::List(items) | Value::Tuple(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                let mut parts = item.split('=');
                let key = parts.next().unwrap_or_default();
                let value = parts.next().unwrap_or_default();
                given.insert(key, value);
            }
        }
        _ => return error("KeyError('headers')".to_owned()),
    }
    let headers: Vec<(String, Vec<Value>)> = given
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), listed(v))))
        .collect();
    let matched: IndexMap<String, Vec<Value>> = store.revoke_stamps(&headers, signum);
    let shown = py_repr(&Value::Dict(given));
    if signum.is_none() {
        return ok(format!(
            "headers {shown} flagged as revoked, but not terminated"
        ));
    }
    if matched.is_empty() {
        return ok(format!("headers {shown} were not terminated"));
    }
    let inner: Vec<String> = matched
        .iter()
        .map(|(h, stamps)| format!("{}: {}", py_repr(&Value::str(h.as_str())), set_repr(stamps)))
        .collect();
    ok(format!(
        "headers defaultdict(<class 'set'>, {{{}}}) revoked",
        inner.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Value) -> &str {
        v.as_dict()
            .and_then(|d| d.get("ok"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    #[test]
    fn stamped_replies_read_as_celery_s() {
        let store = Revocations::default();
        let mut args = Dict::new();
        let mut h = Dict::new();
        h.insert("mtask_id", "s1");
        args.insert("headers", Value::Dict(h));
        let reply = revoke_by_stamped_headers(&store, &args);
        assert_eq!(
            text(&reply),
            "headers {'mtask_id': 's1'} flagged as revoked, but not terminated"
        );
        args.insert("terminate", true);
        let reply = revoke_by_stamped_headers(&store, &args);
        assert_eq!(
            text(&reply),
            "headers {'mtask_id': 's1'} were not terminated"
        );
    }

    #[test]
    fn signal_names_are_checked() {
        let mut args = Dict::new();
        args.insert("terminate", true);
        args.insert("signal", "kill");
        let refused = terminate_signal(&args).err().unwrap_or(Value::None);
        assert_eq!(
            refused.as_dict().and_then(|d| d.get("error")),
            Some(&Value::str(
                "TypeError('signal name must be uppercase string.')"
            ))
        );
        args.insert("signal", "NOPE");
        let refused = terminate_signal(&args).err().unwrap_or(Value::None);
        assert_eq!(
            refused.as_dict().and_then(|d| d.get("error")),
            Some(&Value::str(
                "AttributeError(\"module 'signal' has no attribute 'SIGNOPE'\")"
            ))
        );
        args.insert("signal", "SIGKILL");
        assert_eq!(terminate_signal(&args).ok().flatten(), Some(libc::SIGKILL));
    }
}
