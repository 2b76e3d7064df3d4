//! Protocol v2: task metadata in the headers, `[args, kwargs, embed]` in the body.

use super::decode::DecodeError;
use super::message::{Embed, TaskMessage, TimeLimits};
use super::raw::RawMessage;
use crate::value::{DateTime, Dict, Value};

/// Builds a task from v2 headers and an already-decoded body. On success the headers,
/// properties and delivery info move from `raw` into the task; on failure `raw` is unchanged.
pub(super) fn from_parts(
    raw: &mut RawMessage,
    name: String,
    body: Value,
) -> Result<TaskMessage, DecodeError> {
    let (args, kwargs, embed) = split_body(body)?;
    let h = &raw.headers;
    let id = opt_string(h.get("id"))
        .or_else(|| raw.properties.correlation_id.clone())
        .ok_or_else(|| DecodeError::Invalid("message has no task id".into()))?;
    let eta = opt_datetime(h.get("eta"), "eta")?;
    let expires = opt_datetime(h.get("expires"), "expires")?;
    let mut task = TaskMessage {
        id,
        name,
        args,
        kwargs,
        embed,
        eta,
        expires,
        retries: h.get("retries").and_then(Value::as_i64).unwrap_or(0),
        group: opt_string(h.get("group")),
        group_index: h.get("group_index").and_then(Value::as_i64),
        root_id: opt_string(h.get("root_id")),
        parent_id: opt_string(h.get("parent_id")),
        timelimit: time_limits(h.get("timelimit")),
        ignore_result: h
            .get("ignore_result")
            .filter(|v| !v.is_none())
            .map(Value::truthy),
        shadow: opt_string(h.get("shadow")),
        argsrepr: opt_string(h.get("argsrepr")),
        kwargsrepr: opt_string(h.get("kwargsrepr")),
        origin: opt_string(h.get("origin")),
        headers: Dict::new(),
        properties: Default::default(),
        delivery_info: Default::default(),
        content_type: String::new(),
        protocol: 2,
    };
    task.headers = std::mem::take(&mut raw.headers);
    task.properties = std::mem::take(&mut raw.properties);
    task.delivery_info = std::mem::take(&mut raw.delivery_info);
    task.content_type = std::mem::take(&mut raw.content_type);
    Ok(task)
}

/// Splits `[args, kwargs, embed]`; a dict body with `args` is the hybrid form Celery accepts.
fn split_body(body: Value) -> Result<(Vec<Value>, Dict, Embed), DecodeError> {
    match body {
        Value::List(mut items) | Value::Tuple(mut items) if items.len() == 3 => {
            let embed = items.pop().unwrap_or(Value::None);
            let kwargs = items.pop().unwrap_or(Value::None);
            let args = items.pop().unwrap_or(Value::None);
            Ok((into_args(args)?, into_kwargs(kwargs)?, embed_from(embed)))
        }
        Value::Dict(mut d) if d.get("args").is_some() => {
            let args = into_args(d.remove("args").unwrap_or(Value::None))?;
            let kwargs = into_kwargs(d.remove("kwargs").unwrap_or(Value::None))?;
            Ok((args, kwargs, embed_from(Value::Dict(d))))
        }
        other => Err(DecodeError::Invalid(format!(
            "task body must be [args, kwargs, embed], got {}",
            crate::value::py_type_name(&other)
        ))),
    }
}

/// Positional arguments: a list or tuple (`None` means none).
pub(super) fn into_args(v: Value) -> Result<Vec<Value>, DecodeError> {
    match v {
        Value::List(a) | Value::Tuple(a) => Ok(a),
        Value::None => Ok(Vec::new()),
        other => Err(DecodeError::Invalid(format!(
            "task args must be a list, got {}",
            crate::value::py_type_name(&other)
        ))),
    }
}

/// Keyword arguments: a dict with string keys (`None` means none).
pub(super) fn into_kwargs(v: Value) -> Result<Dict, DecodeError> {
    match v {
        Value::Dict(d) => {
            if d.iter()
                .all(|(k, _)| matches!(k, Value::Str(_) | Value::SurrogateStr(_)))
            {
                Ok(d)
            } else {
                Err(DecodeError::Invalid(
                    "task kwargs keys must be strings".into(),
                ))
            }
        }
        Value::None => Ok(Dict::new()),
        other => Err(DecodeError::Invalid(format!(
            "task kwargs must be a dict, got {}",
            crate::value::py_type_name(&other)
        ))),
    }
}

/// Reads callbacks/errbacks/chain/chord from a dict, treating `None` as absent.
pub(super) fn embed_from(v: Value) -> Embed {
    let mut d = match v {
        Value::Dict(d) => d,
        _ => return Embed::default(),
    };
    let mut take = |k: &str| d.remove(k).filter(|v| !v.is_none());
    Embed {
        callbacks: take("callbacks"),
        errbacks: take("errbacks"),
        chain: take("chain"),
        chord: take("chord"),
    }
}

/// A string field; `None` and empty strings are absent.
pub(super) fn opt_string(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// An ISO-8601 string or a datetime value; `None` is absent.
pub(super) fn opt_datetime(
    v: Option<&Value>,
    field: &str,
) -> Result<Option<DateTime>, DecodeError> {
    match v {
        None | Some(Value::None) => Ok(None),
        Some(Value::DateTime(dt)) => Ok(Some(DateTime::clone(dt))),
        Some(Value::Str(s)) => DateTime::parse_iso(s).map(Some).map_err(|e| {
            DecodeError::Invalid(format!("Couldn't convert {field} {s:?} to timestamp: {e}"))
        }),
        Some(other) => Err(DecodeError::Invalid(format!(
            "{field} must be an ISO-8601 string, got {}",
            crate::value::py_type_name(other)
        ))),
    }
}

/// `[hard, soft]`, each a number or null.
pub(super) fn time_limits(v: Option<&Value>) -> TimeLimits {
    let num = |v: Option<&Value>| match v {
        Some(Value::Int(i)) => Some(*i as f64),
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    };
    match v.and_then(Value::as_seq) {
        Some(items) => TimeLimits {
            hard: num(items.first()),
            soft: num(items.get(1)),
        },
        None => TimeLimits::default(),
    }
}
