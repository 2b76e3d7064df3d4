//! `heartbeat`: Celery sends a `worker-heartbeat` event at once and replies None. rcelery replies None (its heartbeats come from the event dispatcher, when events are on).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async {
        tracing::debug!("Heartbeat requested by remote.");
        Ok(Some(Value::None))
    })
}
