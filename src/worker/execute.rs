//! Running a task body: on the runtime, on the blocking pool, or inline; a panic becomes a
//! task failure and the worker carries on.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;

use crate::task::{Context, Handler, TaskError};
use crate::value::{Dict, Value};

/// Runs `handler` to completion.
pub async fn run(handler: &Handler, ctx: Context, args: Vec<Value>, kwargs: Dict) -> Result<Value, TaskError> {
    match handler {
        Handler::Async(f) => {
            let f = f.clone();
            AssertUnwindSafe(async move { f(ctx, args, kwargs).await })
                .catch_unwind()
                .await
                .unwrap_or_else(|p| Err(TaskError::panic(&panic_message(p.as_ref()))))
        }
        Handler::Blocking(f) => {
            let f = f.clone();
            let joined = tokio::task::spawn_blocking(move || {
                catch_unwind(AssertUnwindSafe(|| f(ctx, args, kwargs)))
                    .unwrap_or_else(|p| Err(TaskError::panic(&panic_message(p.as_ref()))))
            })
            .await;
            joined.unwrap_or_else(|e| Err(TaskError::panic(&e.to_string())))
        }
        Handler::Inline(f) => catch_unwind(AssertUnwindSafe(|| f(ctx, args, kwargs)))
            .unwrap_or_else(|p| Err(TaskError::panic(&panic_message(p.as_ref())))),
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
