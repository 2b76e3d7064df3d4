//! `celery.chord_unlock`, Celery's built-in task for chords on backends without native
//! chord counting: a producer on such a backend sends it (every second by default) with the
//! header's results; it retries until every result is ready, then sends the body with the
//! joined results, or fails the body with `ChordError` if one failed.

use std::sync::Arc;

use super::canvas;
use super::ChordSettings;
use crate::backend::join::{self, Joined, ResultNode};
use crate::backend::ResultBackend;
use crate::producer::Producer;
use crate::task::{AsyncFn, Context, Handler, TaskDef, TaskError, TaskOptions};
use crate::value::{Dict, Value};

/// The task's name.
pub(super) const NAME: &str = "celery.chord_unlock";

/// The task as Celery registers it: `ignore_result`, unlimited retries, retried every
/// `result_chord_retry_interval` unless the message gives an `interval`.
pub(super) fn task_def(
    backend: Arc<dyn ResultBackend>,
    producer: Producer,
    settings: ChordSettings,
) -> TaskDef {
    let handler: AsyncFn = Arc::new(move |ctx, args, kwargs| {
        let (backend, producer) = (Arc::clone(&backend), producer.clone());
        Box::pin(async move { unlock(backend.as_ref(), &producer, ctx, args, kwargs).await })
    });
    TaskDef {
        name: NAME.to_owned(),
        handler: Handler::Async(handler),
        options: TaskOptions {
            ignore_result: Some(true),
            max_retries: Some(None),
            default_retry_delay: Some(settings.retry_interval),
            ..TaskOptions::default()
        },
        requires: Vec::new(),
    }
}

/// `unlock_chord(group_id, callback, interval=None, max_retries=None, result=None)`.
async fn unlock(
    backend: &dyn ResultBackend,
    producer: &Producer,
    ctx: Context,
    args: Vec<Value>,
    kwargs: Dict,
) -> Result<Value, TaskError> {
    let arg = |i: usize, name: &str| {
        args.get(i)
            .or_else(|| kwargs.get(name))
            .filter(|v| !v.is_none())
    };
    let group_id = arg(0, "group_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TaskError::type_error("chord_unlock: group_id must be a string"))?;
    let callback = arg(1, "callback")
        .ok_or_else(|| TaskError::type_error("chord_unlock: missing callback"))?;
    let interval = match arg(2, "interval") {
        Some(Value::Float(f)) => *f,
        Some(Value::Int(i)) => *i as f64,
        Some(_) => {
            return Err(TaskError::type_error(
                "chord_unlock: interval must be a number",
            ))
        }
        None => ctx.default_retry_delay(),
    };
    let max_retries = arg(3, "max_retries").and_then(Value::as_i64);
    let results = arg(4, "result")
        .and_then(ResultNode::list_from_tuples)
        .ok_or_else(|| {
            TaskError::type_error("chord_unlock: result must be a list of result tuples")
        })?;

    let again = || -> TaskError {
        ctx.retry()
            .countdown(interval)
            .max_retries(max_retries)
            .into()
    };
    let outcome = match join::join(backend, &results).await {
        Ok(Joined::NotReady) => return Err(again()),
        Err(e) => {
            tracing::warn!(task_id = %ctx.id(), task_name = NAME, error = %e, "chord {group_id}: could not read the header's results; retrying");
            return Err(again());
        }
        Ok(Joined::Ready(values)) => Ok(values),
        // Celery names the culprit only when its meta is cached, which failures never are.
        Ok(Joined::Failed(repr)) => Err(repr.into()),
    };
    canvas::fire_body(
        producer,
        backend,
        &ctx.request().message,
        group_id,
        callback,
        outcome,
    )
    .await;
    Ok(Value::None)
}
