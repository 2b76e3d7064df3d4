//! `celery.backend_cleanup`, Celery's built-in task that deletes expired results: beat sends it
//! every day at 4:00 when `result_expires` is set. On the database backends it deletes the
//! rows whose `date_done` is older than `result_expires`; on Redis there is nothing to do
//! (keys expire by themselves), as in Celery.

use std::sync::Arc;

use crate::backend::ResultBackend;
use crate::task::{AsyncFn, Handler, TaskDef, TaskError, TaskOptions};
use crate::value::Value;

/// The task's name.
pub(super) const NAME: &str = "celery.backend_cleanup";

/// The task as Celery registers it (results stored as for any task: `None`).
pub(super) fn task_def(backend: Arc<dyn ResultBackend>) -> TaskDef {
    let handler: AsyncFn = Arc::new(move |ctx, _args, _kwargs| {
        let backend = Arc::clone(&backend);
        Box::pin(async move {
            match backend.cleanup().await {
                Ok(deleted) => {
                    tracing::info!(task_id = %ctx.id(), task_name = NAME, deleted, "expired results deleted");
                    Ok(Value::None)
                }
                Err(e) => Err(TaskError::with_args(
                    "OperationalError",
                    "sqlalchemy.exc",
                    vec![Value::Str(e.to_string())],
                )),
            }
        })
    });
    TaskDef {
        name: NAME.to_owned(),
        handler: Handler::Async(handler),
        options: TaskOptions::default(),
        requires: Vec::new(),
    }
}
