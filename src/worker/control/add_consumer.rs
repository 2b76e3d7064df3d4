//! `add_consumer`: starts consuming a queue while the worker runs (Celery's
//! `Consumer.add_task_queue`). A queue the app knows (`task_queues`, or one consumed since
//! start) keeps its declaration; another is declared as Celery's `Queues.add_compat` makes
//! it: its own direct exchange (or the `exchange` / `exchange_type` given), bound with the
//! `routing_key` given or its name, with the kombu `Queue` options given. Celery answers
//! `add consumer <queue>` whether or not the queue was consumed already.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, CommandError, Shared};
use crate::broker::{QueueCatalog, QueueSpec};
use crate::control::ok_result;
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let name = args::req_str(args, "queue", "add_consumer")?;
        let known = shared.settings.queue_catalog.find(&name).or_else(|| {
            shared
                .settings
                .queues
                .iter()
                .find(|q| q.name == name)
                .cloned()
        });
        let spec = match known {
            Some(q) => q,
            None => declared(&shared.settings.queue_catalog, &name, args)?,
        };
        if shared.consumed.add(spec) {
            tracing::info!(queue = %name, "Started consuming from {name}");
        } else {
            tracing::debug!(queue = %name, "add_consumer: already consuming from {name}");
        }
        Ok(Some(ok_result(format!("add consumer {name}"))))
    })
}

/// The queue `name` as Celery declares one the app does not know, from the command's
/// arguments (kombu's `Queue.from_dict` options; `task_queue_max_priority` applies).
fn declared(catalog: &QueueCatalog, name: &str, args: &Dict) -> Result<QueueSpec, CommandError> {
    let mut q = QueueSpec::direct(name);
    if let Some(exchange) = args::opt_str(args, "exchange")? {
        q.exchange = exchange;
    }
    if let Some(kind) = args::opt_str(args, "exchange_type")?.filter(|k| !k.is_empty()) {
        q.exchange_type = kind;
    }
    if let Some(key) = args::opt_str(args, "routing_key")?.or(args::opt_str(args, "binding_key")?) {
        q.routing_key = key;
    }
    let flag = |key: &str| {
        args.get(key)
            .filter(|v| !matches!(v, Value::None))
            .map(|_| args::flag(args, key))
    };
    if let Some(durable) = flag("queue_durable").or(flag("durable")) {
        q.durable = durable;
    }
    if let Some(auto_delete) = flag("queue_auto_delete").or(flag("auto_delete")) {
        q.auto_delete = auto_delete;
    }
    if let Some(exclusive) = flag("exclusive") {
        q.exclusive = exclusive;
        q.auto_delete |= exclusive;
    }
    if let Some(durable) = flag("exchange_durable").or(flag("durable")) {
        q.exchange_durable = durable;
    }
    if let Some(auto_delete) = flag("exchange_auto_delete").or(flag("auto_delete")) {
        q.exchange_auto_delete = auto_delete;
    }
    match args.get("queue_arguments") {
        None | Some(Value::None) => {}
        Some(Value::Dict(d)) => q.arguments = d.clone(),
        Some(_) => {
            return Err(CommandError(
                "TypeError('queue_arguments must be a dict')".into(),
            ))
        }
    }
    // kombu's Queue attributes that become declaration arguments (seconds to milliseconds).
    for (key, argument, scale) in [
        ("max_priority", "x-max-priority", 1.0),
        ("expires", "x-expires", 1000.0),
        ("message_ttl", "x-message-ttl", 1000.0),
        ("max_length", "x-max-length", 1.0),
        ("max_length_bytes", "x-max-length-bytes", 1.0),
    ] {
        if let Some(v) = args::opt_f64(args, key)? {
            q.arguments.remove(argument);
            q.arguments.insert(argument, Value::Int((v * scale) as i64));
        }
    }
    Ok(q.with_default_max_priority(catalog.missing_template.max_priority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, Value)]) -> Dict {
        let mut d = Dict::new();
        for (k, v) in pairs {
            d.insert(*k, v.clone());
        }
        d
    }

    #[test]
    fn an_unknown_queue_is_declared_as_celery_does() {
        let catalog = QueueCatalog::default();
        let q = declared(&catalog, "extra", &Dict::new()).expect("spec");
        assert_eq!(q, QueueSpec::direct("extra"));
        let given = args(&[
            ("exchange", "ex".into()),
            ("exchange_type", "topic".into()),
            ("routing_key", "a.#".into()),
            ("durable", false.into()),
            ("max_priority", Value::Int(5)),
            ("expires", Value::Float(1.5)),
        ]);
        let q = declared(&catalog, "extra", &given).expect("spec");
        assert_eq!(
            (
                q.exchange.as_str(),
                q.exchange_type.as_str(),
                q.routing_key.as_str()
            ),
            ("ex", "topic", "a.#")
        );
        assert!(!q.durable && !q.exchange_durable);
        assert_eq!(q.max_priority, Some(5));
        assert_eq!(q.arguments.get("x-expires"), Some(&Value::Int(1500)));
    }

    #[test]
    fn task_queue_max_priority_applies() {
        let mut catalog = QueueCatalog::default();
        catalog.missing_template = catalog.missing_template.with_default_max_priority(Some(10));
        let q = declared(&catalog, "extra", &Dict::new()).expect("spec");
        assert_eq!(q.max_priority, Some(10));
        assert_eq!(q.arguments.get("x-max-priority"), Some(&Value::Int(10)));
    }
}
