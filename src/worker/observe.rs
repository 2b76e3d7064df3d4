//! The request lifecycle as monitoring sees it: each function sends the task event Celery
//! sends at that point (when task events are on) and counts it in the metrics (when they
//! are on). Calls are cheap when both are off, and never wait.

use super::Shared;
use crate::events::fields;
use crate::protocol::TaskMessage;
use crate::task::TaskError;
use crate::value::{saferepr, Value};

/// Celery's `resultrepr_maxsize`.
const RESULT_REPR_MAXSIZE: usize = 1024;

/// A task message was received (decoded, its task known): `task-received`, unless it has
/// already expired (Celery revokes it at once, before announcing it).
pub(super) fn received(shared: &Shared, m: &TaskMessage) {
    if shared.events.task_events() && !m.expires.as_ref().is_some_and(super::eta::has_passed) {
        shared.events.send(fields::task_received(m));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.received(&m.name);
    }
}

/// The task starts, `waited` seconds after it was received (or its ETA came):
/// `task-started`.
pub(super) fn started(shared: &Shared, m: &TaskMessage, waited: f64) {
    if shared.events.task_events() {
        shared.events.send(fields::task_started(&m.id));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.started(&m.name, waited);
    }
}

/// The task returned `value` after `runtime` seconds: `task-succeeded`.
pub(super) fn succeeded(shared: &Shared, m: &TaskMessage, value: &Value, runtime: f64) {
    if shared.events.task_events() {
        let repr = saferepr(value, RESULT_REPR_MAXSIZE);
        shared
            .events
            .send(fields::task_succeeded(&m.id, repr, runtime));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.succeeded(&m.name, runtime);
    }
}

/// The task raised `err` after `runtime` seconds: `task-failed` (without a traceback when
/// a hard time limit ended it, as Celery stores it).
pub(super) fn failed(
    shared: &Shared,
    m: &TaskMessage,
    err: &TaskError,
    traceback: Option<&str>,
    runtime: f64,
) {
    if shared.events.task_events() {
        shared.events.send(fields::task_failed(
            &m.id,
            err.repr(),
            traceback.map(str::to_owned),
        ));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.failed(&m.name, runtime);
    }
}

/// The task asked to be retried (and the retry was sent): `task-retried`.
pub(super) fn retried(shared: &Shared, m: &TaskMessage, exception: String, traceback: String) {
    if shared.events.task_events() {
        shared
            .events
            .send(fields::task_retried(&m.id, exception, traceback));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.retried(&m.name);
    }
}

/// The task was revoked (or expired) before it ran: `task-revoked`.
pub(super) fn revoked(
    shared: &Shared,
    m: &TaskMessage,
    terminated: bool,
    signum: Option<i64>,
    expired: bool,
) {
    if shared.events.task_events() {
        shared
            .events
            .send(fields::task_revoked(&m.id, terminated, signum, expired));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.revoked(&m.name);
    }
}

/// The task's message was rejected: `task-rejected`.
pub(super) fn rejected(shared: &Shared, m: &TaskMessage, requeue: bool) {
    if shared.events.task_events() {
        shared.events.send(fields::task_rejected(&m.id, requeue));
    }
    if let Some(metrics) = &shared.settings.metrics {
        metrics.rejected(&m.name);
    }
}

/// A message is held for its ETA (`+1`), or no longer (`-1`).
pub(super) fn eta_held(shared: &Shared, delta: i64) {
    if let Some(metrics) = &shared.settings.metrics {
        metrics.eta_held(delta);
    }
}
