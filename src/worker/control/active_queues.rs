//! `active_queues`: the queues consumed, in kombu's `Queue.as_dict(recurse=True)` shape.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::broker::QueueSpec;
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        Ok(Some(Value::List(
            shared.consumed.current().iter().map(as_dict).collect(),
        )))
    })
}

/// kombu's `Queue.as_dict(recurse=True)`.
pub(super) fn as_dict(q: &QueueSpec) -> Value {
    let mut ex = Dict::with_capacity(8);
    ex.insert("name", q.exchange.as_str());
    ex.insert("type", q.exchange_type.as_str());
    ex.insert("arguments", Value::None);
    ex.insert("durable", q.exchange_durable);
    ex.insert("passive", false);
    ex.insert("auto_delete", q.exchange_auto_delete);
    ex.insert("delivery_mode", Value::None);
    ex.insert("no_declare", false);
    let int = |key: &str| match q.arguments.get(key) {
        Some(Value::Int(n)) => Value::Int(*n),
        _ => Value::None,
    };
    // kombu keeps seconds for these two; the declaration arguments hold milliseconds.
    let secs = |key: &str| match q.arguments.get(key) {
        Some(Value::Int(ms)) => Value::Float(*ms as f64 / 1000.0),
        _ => Value::None,
    };
    let mut d = Dict::with_capacity(20);
    d.insert("name", q.name.as_str());
    d.insert("exchange", Value::Dict(ex));
    d.insert("routing_key", q.routing_key.as_str());
    let mut other = q.arguments.clone();
    for k in [
        "x-max-priority",
        "x-expires",
        "x-message-ttl",
        "x-max-length",
        "x-max-length-bytes",
    ] {
        other.remove(k);
    }
    d.insert(
        "queue_arguments",
        if other.is_empty() {
            Value::None
        } else {
            Value::Dict(other)
        },
    );
    d.insert("binding_arguments", Value::None);
    d.insert("consumer_arguments", Value::None);
    d.insert("durable", q.durable);
    d.insert("exclusive", q.exclusive);
    d.insert("auto_delete", q.auto_delete);
    d.insert("no_ack", false);
    d.insert("alias", Value::None);
    d.insert("bindings", Value::List(Vec::new()));
    d.insert("no_declare", Value::None);
    d.insert("expires", secs("x-expires"));
    d.insert("message_ttl", secs("x-message-ttl"));
    d.insert("max_length", int("x-max-length"));
    d.insert("max_length_bytes", int("x-max-length-bytes"));
    d.insert(
        "max_priority",
        q.max_priority
            .map_or(Value::None, |p| Value::Int(i64::from(p))),
    );
    Value::Dict(d)
}
