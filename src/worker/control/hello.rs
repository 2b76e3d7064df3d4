//! `hello` (mingle, sent by a starting Celery worker): `{"revoked": [...], "clock": N}`, and None to the node itself.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let from = args::opt_str(args, "from_node")?.unwrap_or_default();
        if from == shared.settings.hostname {
            return Ok(Some(Value::None));
        }
        tracing::info!("sync with {from}");
        // Celery's `merge_revoked`: the ids only, stamped now.
        if let Some(Value::List(ids) | Value::Tuple(ids)) = args.get("revoked") {
            let ids = ids.iter().filter_map(Value::as_str).map(str::to_owned);
            shared.revocations.merge(ids);
        }
        let mut d = Dict::with_capacity(2);
        // The revoked ids this worker knows (Celery sends its LimitedSet; a list of the
        // ids is what its `merge_revoked` takes).
        let ids = shared
            .revocations
            .ids()
            .into_iter()
            .map(Value::Str)
            .collect();
        d.insert("revoked", Value::List(ids));
        let clock = i64::try_from(shared.control.clock.forward()).unwrap_or(i64::MAX);
        d.insert("clock", clock);
        Ok(Some(Value::Dict(d)))
    })
}
