//! Running a task body: on the runtime, on its slot's thread, or inline; a panic becomes a
//! task failure and the worker carries on.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;
use tokio::sync::oneshot;

use super::slots::Slot;
use crate::task::{Context, Handler, TaskError};
use crate::value::{Dict, Value};

/// Runs `handler` to completion in `slot`, sending on `started` (if given) when the body
/// begins (a blocking body: when its thread takes it). An async or inline body frees the
/// slot when it is done or dropped; a blocking body takes the slot to its thread and frees
/// it when the function returns, even if this future was dropped long before.
pub async fn run(
    handler: &Handler,
    ctx: Context,
    args: Vec<Value>,
    kwargs: Dict,
    slot: Slot,
    started: Option<oneshot::Sender<()>>,
) -> Result<Value, TaskError> {
    let started = move || {
        if let Some(tx) = started {
            let _ = tx.send(());
        }
    };
    match handler {
        Handler::Async(f) => {
            let f = f.clone();
            started();
            let outcome = AssertUnwindSafe(async move { f(ctx, args, kwargs).await })
                .catch_unwind()
                .await
                .unwrap_or_else(|p| Err(TaskError::panic(&panic_message(p.as_ref()))));
            drop(slot);
            outcome
        }
        Handler::Blocking(f) => {
            let f = f.clone();
            let running = slot.run_blocking(move || {
                started();
                catch_unwind(AssertUnwindSafe(|| f(ctx, args, kwargs)))
                    .unwrap_or_else(|p| Err(TaskError::panic(&panic_message(p.as_ref()))))
            });
            match running {
                Ok(outcome) => outcome.await.unwrap_or_else(|_| {
                    Err(TaskError::runtime_error(
                        "the task's thread ended without a result",
                    ))
                }),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a thread for a blocking task");
                    Err(TaskError::runtime_error(format!(
                        "cannot start a thread for the task: {e}"
                    )))
                }
            }
        }
        Handler::Inline(f) => {
            started();
            let outcome = catch_unwind(AssertUnwindSafe(|| f(ctx, args, kwargs)))
                .unwrap_or_else(|p| Err(TaskError::panic(&panic_message(p.as_ref()))));
            drop(slot);
            outcome
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}
