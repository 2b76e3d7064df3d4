//! The deployment's periodic task, run by `celery beat` (django-celery-beat's
//! `DatabaseScheduler`); its Python twin is in `python-fixtures/tasks/task.py`.

use rcelery::task::{Context, TaskResult};
use rcelery::{Dict, Value};

/// `schedules.my_corn_minder(*args, **kwargs)`: the reminder a periodic task names. Returns
/// `{"args": [...], "kwargs": {...}, "headers": {...} | None}`: what it was given and the
/// custom headers of its request (beat's `periodic_task_name` and `celery_beat_task`, and
/// the periodic task's own headers), as Celery's `self.request.headers` has them.
#[rcelery::task(name = "schedules.my_corn_minder", inline)]
pub fn my_corn_minder(
    ctx: &Context,
    #[args] args: Vec<Value>,
    #[kwargs] kwargs: Dict,
) -> TaskResult<Value> {
    let headers = ctx.request().custom_headers();
    let mut out = Dict::with_capacity(3);
    out.insert("args", Value::List(args));
    out.insert("kwargs", Value::Dict(kwargs));
    out.insert(
        "headers",
        if headers.is_empty() {
            Value::None
        } else {
            Value::Dict(headers)
        },
    );
    Ok(Value::Dict(out))
}
