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
        let mut d = Dict::with_capacity(2);
        // The revoked ids this worker knows (none until it keeps a revoked set).
        d.insert("revoked", Value::List(Vec::new()));
        let clock = i64::try_from(shared.control.clock.forward()).unwrap_or(i64::MAX);
        d.insert("clock", clock);
        Ok(Some(Value::Dict(d)))
    })
}
