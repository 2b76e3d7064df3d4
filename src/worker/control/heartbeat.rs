//! `heartbeat`: as Celery, sends a `worker-heartbeat` event at once (unless heartbeats are
//! off, `--without-heartbeat`) and replies None.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        tracing::debug!("Heartbeat requested by remote.");
        let ev = &shared.settings.events;
        if ev.heartbeat {
            shared.events.send(crate::events::worker_event(
                "worker-heartbeat",
                ev.heartbeat_interval,
                crate::worker::worker_counts(shared),
            ));
        }
        Ok(Some(Value::None))
    })
}
