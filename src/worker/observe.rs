//! The lifecycle observers this worker installs: one sends Celery's task events (when task
//! events are on), one counts into the metrics (when the endpoint is on). Both are quick and
//! never wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::eta;
use super::lifecycle::{Failure, Lifecycle, LifecycleObserver, Revoked};
use crate::events::{fields, EventDispatcher};
use crate::metrics::Metrics;
use crate::protocol::TaskMessage;
use crate::value::{saferepr, Value};

/// Celery's `resultrepr_maxsize`.
const RESULT_REPR_MAXSIZE: usize = 1024;

/// The lifecycle of a worker with `events`, and `metrics` when the endpoint is on.
pub(super) fn lifecycle(events: &EventDispatcher, metrics: Option<&Arc<Metrics>>) -> Lifecycle {
    let mut l = Lifecycle::default();
    l.add(Arc::new(Events(events.clone())));
    if let Some(m) = metrics {
        l.add(Arc::new(Counting::new(Arc::clone(m))));
    }
    l
}

/// Sends the task events.
struct Events(EventDispatcher);

impl LifecycleObserver for Events {
    fn received(&self, m: &TaskMessage) {
        // A message already expired is revoked at once, before it is announced (Celery's
        // strategy returns before `task-received`).
        if self.0.task_events() && !m.expires.as_ref().is_some_and(eta::has_passed) {
            self.0.send(fields::task_received(m));
        }
    }

    fn started(&self, m: &TaskMessage) {
        if self.0.task_events() {
            self.0.send(fields::task_started(&m.id));
        }
    }

    fn succeeded(&self, m: &TaskMessage, result: &Value, runtime: f64) {
        if self.0.task_events() {
            let repr = saferepr(result, RESULT_REPR_MAXSIZE);
            self.0.send(fields::task_succeeded(&m.id, repr, runtime));
        }
    }

    fn failed(&self, m: &TaskMessage, f: Failure<'_>) {
        if self.0.task_events() {
            self.0.send(fields::task_failed(
                &m.id,
                f.exception.to_owned(),
                f.traceback.map(str::to_owned),
            ));
        }
    }

    fn retried(&self, m: &TaskMessage, f: Failure<'_>) {
        if self.0.task_events() {
            self.0.send(fields::task_retried(
                &m.id,
                f.exception.to_owned(),
                f.traceback.unwrap_or_default().to_owned(),
            ));
        }
    }

    fn revoked(&self, m: &TaskMessage, r: Revoked) {
        if self.0.task_events() {
            self.0.send(fields::task_revoked(
                &m.id,
                r.terminated,
                r.signum.map(i64::from),
                r.expired,
            ));
        }
    }

    fn rejected(&self, m: &TaskMessage, requeue: bool) {
        if self.0.task_events() {
            self.0.send(fields::task_rejected(&m.id, requeue));
        }
    }
}

/// Counts into the metrics. Remembers, by task id, when each request became ready to run
/// (its arrival, or its ETA) until it starts, for the wait histogram, then when it started
/// until it ends, for the runtime of failures (observers are not given it).
struct Counting {
    metrics: Arc<Metrics>,
    since: Mutex<HashMap<String, Instant>>,
}

/// Requests remembered at most; beyond it (requests that never started, at a scale no
/// prefetch reaches) the memory is cleared rather than grown.
const MAX_REMEMBERED: usize = 100_000;

impl Counting {
    fn new(metrics: Arc<Metrics>) -> Self {
        Counting {
            metrics,
            since: Mutex::new(HashMap::new()),
        }
    }

    fn since(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LifecycleObserver for Counting {
    fn received(&self, m: &TaskMessage) {
        self.metrics.received(&m.name);
        let now = Instant::now();
        let ready = m
            .eta
            .as_ref()
            .and_then(eta::until)
            .map_or(now, |wait| now + wait);
        let mut map = self.since();
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        map.insert(m.id.clone(), ready);
    }

    fn started(&self, m: &TaskMessage) {
        let now = Instant::now();
        let ready = self.since().insert(m.id.clone(), now);
        let waited = ready.map_or(0.0, |r| now.saturating_duration_since(r).as_secs_f64());
        self.metrics.started(&m.name, waited);
    }

    fn succeeded(&self, m: &TaskMessage, _result: &Value, runtime: f64) {
        self.since().remove(&m.id);
        self.metrics.succeeded(&m.name, runtime);
    }

    fn failed(&self, m: &TaskMessage, _f: Failure<'_>) {
        let started = self.since().remove(&m.id);
        let runtime = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        self.metrics.failed(&m.name, runtime);
    }

    fn retried(&self, m: &TaskMessage, _f: Failure<'_>) {
        // Not forgotten here: the retry (same id) may already have been received again; its
        // `received` replaces the entry either way.
        self.metrics.retried(&m.name);
    }

    fn revoked(&self, m: &TaskMessage, _r: Revoked) {
        self.since().remove(&m.id);
        self.metrics.revoked(&m.name);
    }

    fn rejected(&self, m: &TaskMessage, _requeue: bool) {
        self.since().remove(&m.id);
        self.metrics.rejected(&m.name);
    }
}
