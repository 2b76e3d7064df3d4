//! `shutdown`: a warm shutdown through the worker's own shutdown path. No reply, as Celery's `WorkerShutdown` leaves before replying.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::value::Dict;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let msg = args::opt_str(args, "msg")
            .ok()
            .flatten()
            .unwrap_or_else(|| "Got shutdown from remote".to_owned());
        tracing::warn!("{msg}");
        shared.control.shutdown.cancel();
        Ok(None)
    })
}
