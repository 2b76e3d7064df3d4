//! `tasks/task.py`'s tasks, in Rust.

use std::time::Duration;

use rcelery::task::{Context, TaskError, TaskResult};
use rcelery::value::py_sum;
use rcelery::{Dict, Value};

/// `tasks.add(x, y)`: `x + y` with Python's rules (ints of any size stay ints).
#[rcelery::task(name = "tasks.add", inline)]
pub fn add(x: Value, y: Value) -> TaskResult<Value> {
    Ok(x.py_add(&y)?)
}

/// `tasks.mul(x, y)`: `x * y`.
#[rcelery::task(name = "tasks.mul", inline)]
pub fn mul(x: Value, y: Value) -> TaskResult<Value> {
    Ok(x.py_mul(&y)?)
}

/// `tasks.xsum(numbers)`: `sum(numbers)`.
#[rcelery::task(name = "tasks.xsum", inline)]
pub fn xsum(numbers: Vec<Value>) -> TaskResult<Value> {
    Ok(py_sum(&numbers)?)
}

/// `tasks.echo(*args, **kwargs)`: `{"args": [...], "kwargs": {...}}` exactly as received.
#[rcelery::task(name = "tasks.echo", inline)]
pub fn echo(#[args] args: Vec<Value>, #[kwargs] kwargs: Dict) -> TaskResult<Value> {
    let mut out = Dict::with_capacity(2);
    out.insert("args", Value::List(args));
    out.insert("kwargs", Value::Dict(kwargs));
    Ok(Value::Dict(out))
}

/// Python's builtin exception classes `tasks.fail` can raise by name.
const BUILTIN_EXCEPTIONS: &[&str] = &[
    "Exception",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BufferError",
    "EOFError",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "ImportError",
    "IndexError",
    "KeyError",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PermissionError",
    "RecursionError",
    "ReferenceError",
    "RuntimeError",
    "StopIteration",
    "TimeoutError",
    "TypeError",
    "UnboundLocalError",
    "UnicodeError",
    "ValueError",
    "ZeroDivisionError",
    "ConnectionError",
    "BaseException",
    "BlockingIOError",
    "BrokenPipeError",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "EnvironmentError",
    "GeneratorExit",
    "IOError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyboardInterrupt",
    "NotADirectoryError",
    "ProcessLookupError",
    "StopAsyncIteration",
    "SyntaxError",
    "SystemError",
    "SystemExit",
    "TabError",
    "IndentationError",
    "Warning",
    "UserWarning",
    "DeprecationWarning",
    "RuntimeWarning",
];

/// `tasks.fail(message="boom", exc_type="ValueError")`: raises that builtin exception; a name
/// that is not one raises `TypeError`, as the Python version does.
#[rcelery::task(name = "tasks.fail", inline)]
pub fn fail(
    #[default("boom")] message: String,
    #[default("ValueError")] exc_type: String,
) -> TaskResult<Value> {
    if BUILTIN_EXCEPTIONS.contains(&exc_type.as_str()) {
        Err(TaskError::new(&exc_type, message))
    } else {
        Err(TaskError::type_error(format!(
            "not a builtin exception type: '{exc_type}'"
        )))
    }
}

fn seconds_of(v: &Value) -> TaskResult<Duration> {
    let secs = match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        other => {
            return Err(TaskError::type_error(format!(
                "'{}' object cannot be interpreted as a number of seconds",
                rcelery::value::py_type_name(other)
            )))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(TaskError::value_error("sleep length must be non-negative"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `tasks.sleep(seconds)` (async): sleeps, returns `seconds`.
#[rcelery::task(name = "tasks.sleep")]
pub async fn sleep(seconds: Value) -> TaskResult<Value> {
    tokio::time::sleep(seconds_of(&seconds)?).await;
    Ok(seconds)
}

/// `tasks.block(seconds)` (blocking, on the thread pool): sleeps, returns `seconds`.
#[rcelery::task(name = "tasks.block")]
pub fn block(seconds: Value) -> TaskResult<Value> {
    std::thread::sleep(seconds_of(&seconds)?);
    Ok(seconds)
}

/// `tasks.sleep_soft(seconds)` (async): sleeps and returns `seconds`, or returns `"soft"` as
/// soon as its soft time limit passes (Python: catches `SoftTimeLimitExceeded`).
#[rcelery::task(name = "tasks.sleep_soft")]
pub async fn sleep_soft(ctx: &Context, seconds: Value) -> TaskResult<Value> {
    let soft = ctx.soft_time_limit_exceeded();
    tokio::select! {
        _ = tokio::time::sleep(seconds_of(&seconds)?) => Ok(seconds),
        _ = soft => Ok(Value::str("soft")),
    }
}

/// `tasks.block_soft(seconds)` (blocking): like `tasks.sleep_soft`, checking its soft-limit
/// flag every 10 ms.
#[rcelery::task(name = "tasks.block_soft")]
pub fn block_soft(ctx: &Context, seconds: Value) -> TaskResult<Value> {
    let until = std::time::Instant::now() + seconds_of(&seconds)?;
    while std::time::Instant::now() < until {
        if ctx.is_soft_time_limit_exceeded() {
            return Ok(Value::str("soft"));
        }
        std::thread::sleep(
            Duration::from_millis(10)
                .min(until.saturating_duration_since(std::time::Instant::now())),
        );
    }
    Ok(seconds)
}

/// `tasks.limited(x)`, `rate_limit="2/s"`: returns `x`.
#[rcelery::task(name = "tasks.limited", rate_limit = "2/s", inline)]
pub fn limited(x: Value) -> TaskResult<Value> {
    Ok(x)
}

/// `tasks.noop(*args, **kwargs)`, `ignore_result=True`.
#[rcelery::task(name = "tasks.noop", ignore_result, inline)]
pub fn noop(#[args] _args: Vec<Value>, #[kwargs] _kwargs: Dict) -> TaskResult<()> {
    Ok(())
}

/// `tasks.reject(reason, requeue=False)`: raises Celery's `Reject(reason, requeue)`.
#[rcelery::task(name = "tasks.reject", inline)]
pub fn reject(reason: Value, #[default(false)] requeue: bool) -> TaskResult<()> {
    Err(TaskError::reject(reason, requeue))
}

/// `tasks.flaky(n)`: fails with `ValueError("attempt <retries>")` until its retry count is
/// `n`, retried automatically (`autoretry_for`, no delay); then returns the count.
#[rcelery::task(name = "tasks.flaky", inline, autoretry_for = ["ValueError"], default_retry_delay = 0)]
pub fn flaky(ctx: &Context, n: i64) -> TaskResult<i64> {
    let retries = ctx.request().retries();
    if retries < n {
        return Err(TaskError::value_error(format!("attempt {retries}")));
    }
    Ok(retries)
}

/// `tasks.retry_until(n)`: retries (countdown 0) until its retry count is `n`, then returns
/// it; past the default `max_retries` (3) it ends with `MaxRetriesExceededError`.
#[rcelery::task(name = "tasks.retry_until", inline)]
pub fn retry_until(ctx: &Context, n: i64) -> TaskResult<i64> {
    let retries = ctx.request().retries();
    if retries >= n {
        Ok(retries)
    } else {
        Err(ctx.retry().countdown(0.0).into())
    }
}
