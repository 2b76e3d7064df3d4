//! Protocol v1 (old producers, `task_protocol=1`): every field in the body dict, headers `{}`.
//! Mapped like Celery's `proto1_to_proto2`: `taskset` becomes `group`, there is no chain.

use super::decode::DecodeError;
use super::message::{Embed, TaskMessage};
use super::raw::RawMessage;
use super::v2::{into_args, into_kwargs, opt_datetime, opt_string, time_limits};
use crate::value::Value;

/// Builds a task from a decoded v1 body.
pub(super) fn from_body(
    raw: &RawMessage,
    name: String,
    body: Value,
) -> Result<TaskMessage, DecodeError> {
    let mut b = match body {
        Value::Dict(d) => d,
        _ => return Err(DecodeError::UnknownFormat("v1 body is not a dict".into())),
    };
    let id = opt_string(b.get("id"))
        .or_else(|| raw.properties.correlation_id.clone())
        .ok_or_else(|| DecodeError::Invalid("message has no task id".into()))?;
    let args = into_args(b.remove("args").unwrap_or(Value::None))?;
    let kwargs = into_kwargs(b.remove("kwargs").unwrap_or(Value::None))?;
    let not_none = |v: Option<&Value>| v.filter(|v| !v.is_none()).cloned();
    let embed = Embed {
        callbacks: not_none(b.get("callbacks")),
        errbacks: not_none(b.get("errbacks")),
        chain: None,
        chord: not_none(b.get("chord")),
    };
    let mut headers = raw.headers.clone();
    for (k, v) in b.iter() {
        if let Value::Str(key) = k {
            if headers.get(key).is_none() {
                headers.insert(key.clone(), v.clone());
            }
        }
    }
    Ok(TaskMessage {
        id,
        name,
        args,
        kwargs,
        embed,
        eta: opt_datetime(b.get("eta"), "eta")?,
        expires: opt_datetime(b.get("expires"), "expires")?,
        retries: b.get("retries").and_then(Value::as_i64).unwrap_or(0),
        group: opt_string(b.get("taskset")).or_else(|| opt_string(b.get("group"))),
        group_index: b.get("group_index").and_then(Value::as_i64),
        root_id: opt_string(b.get("root_id")),
        parent_id: opt_string(b.get("parent_id")),
        timelimit: time_limits(b.get("timelimit")),
        ignore_result: None,
        shadow: opt_string(b.get("shadow")),
        argsrepr: None,
        kwargsrepr: None,
        origin: None,
        headers,
        properties: raw.properties.clone(),
        delivery_info: raw.delivery_info.clone(),
        content_type: raw.content_type.clone(),
        protocol: 1,
    })
}
