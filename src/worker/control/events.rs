//! `enable_events` / `disable_events`: flip the task events switch (the event dispatcher's,
//! mirrored in the control flags), answering as Celery.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::control::ok_result;
use crate::value::Dict;

pub(super) fn enable<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        shared.control.flags.set_task_events(true);
        if shared.events.set_task_events(true) {
            return Ok(Some(ok_result("task events already enabled")));
        }
        tracing::info!("Events of group {{task}} enabled by remote.");
        Ok(Some(ok_result("task events enabled")))
    })
}

pub(super) fn disable<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        shared.control.flags.set_task_events(false);
        if !shared.events.set_task_events(false) {
            return Ok(Some(ok_result("task events already disabled")));
        }
        tracing::info!("Events of group {{task}} disabled by remote.");
        Ok(Some(ok_result("task events disabled")))
    })
}
