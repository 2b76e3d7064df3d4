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
        // Celery's `merge_revoked`: the ids only, stamped now. A Celery worker's mingle
        // sends its `LimitedSet._data` (keyed by id); rcelery's sends a list.
        match crate::worker::mingle::revoked_ids(args.get("revoked")) {
            Ok(ids) => shared.revocations.merge(ids),
            Err(e) => tracing::debug!(from = %from, "hello: revoked ids skipped: {e}"),
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
