//! `time_limit`: sets a task type's soft and hard time limits for the requests that start next (a message's own `timelimit` still wins, as in Celery).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::control::{error_result, ok_result};
use crate::task::Seconds;
use crate::value::Dict;
use crate::worker::time_limit::TimeLimits;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let task = args::opt_str(args, "task_name")?.unwrap_or_default();
        let soft = args::opt_f64(args, "soft")?;
        let hard = args::opt_f64(args, "hard")?;
        if !shared.registry.contains(&task) {
            tracing::error!("Change time limit attempt for unknown task {task}");
            return Ok(Some(error_result("unknown task")));
        }
        let limits = TimeLimits {
            soft: soft.map(Seconds::Float),
            hard: hard.map(Seconds::Float),
        };
        shared
            .control
            .time_limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(task.clone(), limits);
        tracing::info!(
            "New time limits for tasks of type {task}: soft={} hard={}",
            soft.map_or("None".into(), |s| s.to_string()),
            hard.map_or("None".into(), |s| s.to_string())
        );
        Ok(Some(ok_result("time limits set successfully")))
    })
}
