//! Running a task under its time limits, as Celery's pool enforces them.
//!
//! - **Soft limit**: logged as a warning and signalled to the task through its
//!   [`Context`]. A task that has asked about its soft limit (`ctx.soft_time_limit_exceeded()`
//!   or `ctx.is_soft_time_limit_exceeded()`) by then goes on; one that has not is ended as
//!   FAILURE `SoftTimeLimitExceeded()`, where Celery's uncaught exception would end it.
//! - **Hard limit**: logged as an error; the task is ended and fails with
//!   `TimeLimitExceeded(<hard>)`.
//!
//! The limits count from when the body starts running (a blocking body: when its thread
//! takes it), not while it waits for a slot.
//!
//! "Ended" means: an async task's future is dropped (and its slot freed with it); a blocking
//! task's thread cannot be stopped, so it is abandoned: it runs on in the background, its
//! result is discarded, and its slot stays taken until the function returns (see
//! [`super::slots`]); an `inline` task runs on the runtime and cannot be interrupted at all,
//! so its limits are checked when it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::execute;
use super::slots::{Limit, Slot};
use super::time_limit::TimeLimits;
use crate::protocol::TaskMessage;
use crate::task::{Context, Handler, Seconds, SoftLimit, TaskError};
use crate::value::{Dict, Value};

/// Runs `handler` in `slot` like [`execute::run`], ending it at its limits.
pub async fn run(
    handler: &Handler,
    ctx: Context,
    args: Vec<Value>,
    kwargs: Dict,
    limits: TimeLimits,
    message: &TaskMessage,
    slot: Slot,
) -> Result<Value, TaskError> {
    let occupant = slot.occupant();
    if limits.is_none() {
        // Nothing is armed when the body starts: it counts as started now.
        occupant.started();
        return execute::run(handler, ctx, args, kwargs, slot, None).await;
    }
    let begun = Instant::now();
    let signal = Arc::new(SoftLimit::new());
    let ctx = ctx.with_soft_limit(Arc::clone(&signal));
    let soft = limits.soft.and_then(|s| s.duration().map(|d| (s, d)));
    // Celery's pool arms the hard timer when the soft one fires, `hard - soft` later: a hard
    // limit below the soft one takes effect at the soft limit.
    let hard = limits.hard.and_then(|h| {
        let d = h.duration()?;
        Some((h, soft.map_or(d, |(_, s)| d.max(s))))
    });

    let (started_tx, mut started_rx) = oneshot::channel();
    let task = execute::run(handler, ctx, args, kwargs, slot, Some(started_tx));
    tokio::pin!(task);
    // Armed when the body starts.
    let soft_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(soft_timer);
    let hard_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(hard_timer);
    let mut running = false;
    let mut soft_fired = false;

    let outcome = loop {
        tokio::select! {
            biased;
            out = &mut task => break out,
            _ = &mut started_rx, if !running => {
                running = true;
                occupant.started();
                let now = tokio::time::Instant::now();
                if let Some((_, d)) = soft {
                    soft_timer.as_mut().reset(now + d);
                }
                if let Some((_, d)) = hard {
                    hard_timer.as_mut().reset(now + d);
                }
            }
            _ = &mut hard_timer, if running && hard.is_some() => {
                if let Some((h, _)) = hard {
                    let err = hard_timeout(h, message);
                    if abandoned(handler, message, "hard") {
                        occupant.abandoned(Limit::Hard);
                    }
                    return Err(err);
                }
            }
            _ = &mut soft_timer, if running && soft.is_some() && !soft_fired => {
                soft_fired = true;
                if let Some((s, _)) = soft {
                    log_soft(s, message);
                    signal.fire();
                    if !signal.observed() {
                        if abandoned(handler, message, "soft") {
                            occupant.abandoned(Limit::Soft);
                        }
                        return Err(TaskError::soft_time_limit_exceeded());
                    }
                    occupant.passed_soft_limit();
                }
            }
        }
    };
    if matches!(handler, Handler::Inline(_)) {
        return check_afterwards(outcome, begun.elapsed(), soft, hard, &signal, message);
    }
    outcome
}

/// True for the failure [`run`] returns when the hard limit ended the task (Celery logs it
/// as "Task handler raised error" and stores it without a traceback).
pub fn is_hard_timeout(err: &TaskError) -> bool {
    err.exc_type == "TimeLimitExceeded" && err.exc_module == "billiard.exceptions"
}

/// The failure for a task ended by its hard limit, logged as Celery logs it.
fn hard_timeout(hard: Seconds, m: &TaskMessage) -> TaskError {
    let err = TaskError::time_limit_exceeded(hard.to_value());
    tracing::error!(task_id = %m.id, task_name = %m.display_name(), "Task handler raised error: {}", err.repr());
    tracing::error!(task_id = %m.id, task_name = %m.display_name(), "Hard time limit ({hard}s) exceeded for {}[{}]", m.display_name(), m.id);
    err
}

fn log_soft(soft: Seconds, m: &TaskMessage) {
    tracing::warn!(task_id = %m.id, task_name = %m.display_name(), "Soft time limit ({soft}s) exceeded for {}[{}]", m.display_name(), m.id);
}

/// A blocking task's thread cannot be stopped: say that it runs on unsupervised, holding
/// its slot. True for a blocking task.
fn abandoned(handler: &Handler, m: &TaskMessage, which: &str) -> bool {
    if !matches!(handler, Handler::Blocking(_)) {
        return false;
    }
    tracing::warn!(task_id = %m.id, task_name = %m.display_name(), "{}[{}]: a blocking task cannot be interrupted; its thread is abandoned at the {which} time limit and its result will be discarded; its slot stays taken until the thread returns", m.display_name(), m.id);
    true
}

/// An inline task ran to the end in one go: apply the limits it overran.
fn check_afterwards(
    outcome: Result<Value, TaskError>,
    elapsed: Duration,
    soft: Option<(Seconds, Duration)>,
    hard: Option<(Seconds, Duration)>,
    signal: &SoftLimit,
    m: &TaskMessage,
) -> Result<Value, TaskError> {
    if let Some((h, _)) = hard.filter(|(_, d)| elapsed >= *d) {
        return Err(hard_timeout(h, m));
    }
    if let Some((s, _)) = soft.filter(|(_, d)| elapsed >= *d) {
        log_soft(s, m);
        signal.fire();
        if !signal.observed() {
            return Err(TaskError::soft_time_limit_exceeded());
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Request;
    use crate::worker::slots::{run_kind, SlotState, Slots};

    fn message() -> TaskMessage {
        TaskMessage::new("id", "t")
    }

    fn ctx() -> Context {
        Context::new(Arc::new(Request::new(message(), "w".into())))
    }

    fn limits(hard: Option<f64>, soft: Option<f64>) -> TimeLimits {
        TimeLimits {
            hard: hard.map(Seconds::Float),
            soft: soft.map(Seconds::Float),
        }
    }

    fn sleeper(ms: u64) -> Handler {
        Handler::Async(Arc::new(move |_, _, _| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Value::Int(1))
            })
        }))
    }

    fn soft_aware(ms: u64) -> Handler {
        Handler::Async(Arc::new(move |ctx: Context, _, _| {
            Box::pin(async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Value::Int(1)),
                    _ = ctx.soft_time_limit_exceeded() => Ok(Value::str("soft")),
                }
            })
        }))
    }

    async fn go(h: Handler, l: TimeLimits) -> Result<Value, TaskError> {
        let slots = Slots::new(1);
        let slot = slots.acquire("id", "t", run_kind(&h), l).await.unwrap();
        run(&h, ctx(), Vec::new(), Dict::new(), l, &message(), slot).await
    }

    #[tokio::test(start_paused = true)]
    async fn within_limits_the_result_stands() {
        assert_eq!(
            go(sleeper(10), limits(Some(1.0), Some(0.5))).await,
            Ok(Value::Int(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unaware_task_ends_at_the_soft_limit() {
        let err = go(sleeper(10_000), limits(Some(5.0), Some(1.0)))
            .await
            .unwrap_err();
        assert_eq!(err, TaskError::soft_time_limit_exceeded());
    }

    #[tokio::test(start_paused = true)]
    async fn an_aware_task_handles_the_soft_limit() {
        assert_eq!(
            go(soft_aware(10_000), limits(Some(5.0), Some(1.0))).await,
            Ok(Value::str("soft"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_hard_limit_ends_the_task_with_its_value() {
        let err = go(soft_aware(10_000), limits(Some(2.0), None))
            .await
            .unwrap_err();
        assert!(is_hard_timeout(&err));
        assert_eq!(err.args, vec![Value::Float(2.0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hard_limit_below_the_soft_one_waits_for_it() {
        let h = Handler::Async(Arc::new(|ctx: Context, _, _| {
            Box::pin(async move {
                let _ = ctx.is_soft_time_limit_exceeded();
                tokio::time::sleep(Duration::from_secs(100)).await;
                Ok(Value::None)
            })
        }));
        let start = tokio::time::Instant::now();
        let err = go(h, limits(Some(1.0), Some(3.0))).await.unwrap_err();
        assert!(is_hard_timeout(&err));
        assert!(start.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_blocking_task_is_abandoned_at_the_hard_limit() {
        let h = Handler::Blocking(Arc::new(|_, _, _| {
            std::thread::sleep(Duration::from_millis(600));
            Ok(Value::None)
        }));
        let start = Instant::now();
        let err = go(h, limits(Some(0.05), None)).await.unwrap_err();
        assert!(is_hard_timeout(&err));
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_async_task_ended_at_its_limit_frees_its_slot_at_once() {
        let slots = Slots::new(1);
        let l = limits(Some(1.0), None);
        let slot = slots.acquire("id", "t", "async", l).await.unwrap();
        let err = run(
            &sleeper(10_000),
            ctx(),
            Vec::new(),
            Dict::new(),
            l,
            &message(),
            slot,
        )
        .await
        .unwrap_err();
        assert!(is_hard_timeout(&err));
        assert!(slots.snapshot().iter().all(Option::is_none));
    }

    #[tokio::test]
    async fn an_abandoned_blocking_task_holds_its_slot_until_its_thread_returns() {
        let slots = Slots::new(1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Mutex::new(wait);
        let h = Handler::Blocking(Arc::new(move |_, _, _| {
            let _ = wait.lock().map(|w| w.recv());
            Ok(Value::None)
        }));
        let l = limits(Some(0.05), None);
        let slot = slots.acquire("id", "t", "blocking", l).await.unwrap();
        let err = run(&h, ctx(), Vec::new(), Dict::new(), l, &message(), slot)
            .await
            .unwrap_err();
        assert!(is_hard_timeout(&err));
        let held = slots.snapshot()[0].clone().expect("the slot is still held");
        assert_eq!(held.state, SlotState::Abandoned(Limit::Hard));
        assert!(held.started.is_some());
        release.send(()).unwrap();
        let freed = slots.acquire("next", "t", "blocking", l).await.unwrap();
        assert_eq!(
            slots.snapshot()[0].as_ref().map(|v| v.task_id.as_str()),
            Some("next")
        );
        drop(freed);
    }

    #[tokio::test]
    async fn an_inline_task_is_checked_when_it_returns() {
        let h = Handler::Inline(Arc::new(|_, _, _| {
            std::thread::sleep(Duration::from_millis(30));
            Ok(Value::None)
        }));
        let err = go(h, limits(None, Some(0.01))).await.unwrap_err();
        assert_eq!(err, TaskError::soft_time_limit_exceeded());
    }
}
