//! Named places in a request's life where observers (task events, metrics) hook in.
//!
//! The request handler calls [`Lifecycle`] at each step Celery sends a task event for:
//! received, started, succeeded, failed, retried, revoked, rejected. Observers must be quick
//! and must not block: they run on the request's own task, between its steps.

use std::sync::Arc;

use crate::protocol::TaskMessage;
use crate::value::Value;

/// Why a task was revoked (the fields of Celery's `task-revoked` event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// A running task was ended (`terminate=True`).
    pub terminated: bool,
    /// The signal named in the revoke, when it terminated the task.
    pub signum: Option<i32>,
    /// The task's `expires` had passed.
    pub expired: bool,
}

/// What a failed task raised (the fields of Celery's `task-failed` event).
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The exception's repr, e.g. `ValueError('bad')`.
    pub exception: &'a str,
    /// Its traceback text, when there is one.
    pub traceback: Option<&'a str>,
}

/// Hooks called as a request goes through the worker. Every method does nothing by default.
pub trait LifecycleObserver: Send + Sync {
    /// The message was decoded and its task is registered here (before any ETA wait).
    fn received(&self, _message: &TaskMessage) {}
    /// The task is about to run (it has its slot).
    fn started(&self, _message: &TaskMessage) {}
    /// The task returned `result` after `runtime` seconds.
    fn succeeded(&self, _message: &TaskMessage, _result: &Value, _runtime: f64) {}
    /// The task failed.
    fn failed(&self, _message: &TaskMessage, _failure: Failure<'_>) {}
    /// The task asked to be retried and its retry was sent.
    fn retried(&self, _message: &TaskMessage, _failure: Failure<'_>) {}
    /// The task was revoked (or had expired) and will not run, or was ended.
    fn revoked(&self, _message: &TaskMessage, _revoked: Revoked) {}
    /// The task rejected its message (`Reject`), requeued or not.
    fn rejected(&self, _message: &TaskMessage, _requeue: bool) {}
}

/// The observers of one worker, called in the order they were added.
#[derive(Default, Clone)]
pub struct Lifecycle {
    observers: Vec<Arc<dyn LifecycleObserver>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl Lifecycle {
    /// Adds an observer.
    pub fn add(&mut self, observer: Arc<dyn LifecycleObserver>) {
        self.observers.push(observer);
    }

    /// True when nobody observes: callers may skip building what only observers need.
    pub fn is_empty(&self) -> bool {
        self.observers.is_empty()
    }

    /// See [`LifecycleObserver::received`].
    pub fn received(&self, message: &TaskMessage) {
        self.observers.iter().for_each(|o| o.received(message));
    }

    /// See [`LifecycleObserver::started`].
    pub fn started(&self, message: &TaskMessage) {
        self.observers.iter().for_each(|o| o.started(message));
    }

    /// See [`LifecycleObserver::succeeded`].
    pub fn succeeded(&self, message: &TaskMessage, result: &Value, runtime: f64) {
        self.observers
            .iter()
            .for_each(|o| o.succeeded(message, result, runtime));
    }

    /// See [`LifecycleObserver::failed`].
    pub fn failed(&self, message: &TaskMessage, failure: Failure<'_>) {
        self.observers
            .iter()
            .for_each(|o| o.failed(message, failure));
    }

    /// See [`LifecycleObserver::retried`].
    pub fn retried(&self, message: &TaskMessage, failure: Failure<'_>) {
        self.observers
            .iter()
            .for_each(|o| o.retried(message, failure));
    }

    /// See [`LifecycleObserver::revoked`].
    pub fn revoked(&self, message: &TaskMessage, revoked: Revoked) {
        self.observers
            .iter()
            .for_each(|o| o.revoked(message, revoked));
    }

    /// See [`LifecycleObserver::rejected`].
    pub fn rejected(&self, message: &TaskMessage, requeue: bool) {
        self.observers
            .iter()
            .for_each(|o| o.rejected(message, requeue));
    }
}
