//! `rate_limit`: changes a task type's token bucket at runtime (for the requests that come next), answering as Celery.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::control::{error_result, ok_result};
use crate::value::Dict;
use crate::worker::parse_rate;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let task = args::req_str(args, "task_name", "rate_limit")?;
        let text = args::opt_str(args, "rate_limit")?.unwrap_or_default();
        let rate = match parse_rate(&text) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Some(error_result(format!(
                    "Invalid rate limit string: ValueError({})",
                    super::dispatch::py_str(&e.to_string())
                ))))
            }
        };
        if !shared.registry.contains(&task) {
            tracing::error!("Rate limit attempt for unknown task {task}");
            return Ok(Some(error_result("unknown task")));
        }
        if !shared.settings.disable_rate_limits {
            shared.throttle.set_rate(&task, rate);
        }
        // Celery tests the argument itself: "0" is a (zero) limit set, "" or None disables.
        if !args.get("rate_limit").is_some_and(|v| v.truthy()) {
            tracing::info!("Rate limits disabled for tasks of type {task}");
            return Ok(Some(ok_result("rate limit disabled successfully")));
        }
        tracing::info!("New rate limit for tasks of type {task}: {text}.");
        Ok(Some(ok_result("new rate limit set successfully")))
    })
}
