//! `cancel_consumer`: stops consuming a queue while the worker runs (Celery's
//! `Consumer.cancel_task_queue`). Messages already taken from it still run and are settled.
//! Celery answers `no longer consuming from <queue>` whether or not it was consumed.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::control::ok_result;
use crate::value::Dict;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let name = args::req_str(args, "queue", "cancel_consumer")?;
        tracing::info!(queue = %name, "Canceling queue {name}");
        if !shared.consumed.cancel(&name) {
            tracing::debug!(queue = %name, "cancel_consumer: {name} was not consumed");
        }
        Ok(Some(ok_result(format!("no longer consuming from {name}"))))
    })
}
