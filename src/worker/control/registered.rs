//! `registered`: the sorted task names, without `celery.*` unless `builtins`, each with the asked `taskinfoitems` (default `exchange`, `routing_key`, `rate_limit`) that are set, as `"name [k=v ...]"`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::task::TaskDef;
use crate::value::{Dict, Value};

const DEFAULT_TASK_INFO_ITEMS: [&str; 3] = ["exchange", "routing_key", "rate_limit"];

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let mut items = args::str_list(args, "taskinfoitems")?;
        if items.is_empty() {
            items = DEFAULT_TASK_INFO_ITEMS
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        }
        items.retain(|i| !i.starts_with('_'));
        let builtins = args::flag(args, "builtins");
        let mut names: Vec<&str> = shared
            .registry
            .names()
            .into_iter()
            .filter(|n| builtins || !n.starts_with("celery."))
            .collect();
        names.sort_unstable();
        let out = names
            .into_iter()
            .filter_map(|n| shared.registry.get(n))
            .map(|def| Value::Str(describe(def, &items)))
            .collect();
        Ok(Some(Value::List(out)))
    })
}

fn describe(def: &TaskDef, items: &[String]) -> String {
    let fields: Vec<String> = items
        .iter()
        .filter_map(|item| attribute(def, item).map(|v| format!("{item}={v}")))
        .collect();
    if fields.is_empty() {
        def.name.clone()
    } else {
        format!("{} [{}]", def.name, fields.join(" "))
    }
}

/// A task attribute as Python's `str()` shows it; `None` when unset.
fn attribute(def: &TaskDef, item: &str) -> Option<String> {
    let o = &def.options;
    let flag = |b: bool| if b { "True" } else { "False" }.to_owned();
    match item {
        "name" => Some(def.name.clone()),
        "rate_limit" => o.rate_limit.clone(),
        "acks_late" => o.acks_late.map(flag),
        "ignore_result" => o.ignore_result.map(flag),
        "track_started" => o.track_started.map(flag),
        "time_limit" => o.time_limit.map(|s| s.to_string()),
        "soft_time_limit" => o.soft_time_limit.map(|s| s.to_string()),
        "max_retries" => o.max_retries.flatten().map(|n| n.to_string()),
        "default_retry_delay" => o.default_retry_delay.map(|d| d.to_string()),
        _ => None,
    }
}
