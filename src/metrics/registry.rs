//! The counted metrics: per task name, what happened to its messages and how long they ran
//! and waited.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::collector::{Live, LiveCollector};

/// The label of per-task metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabel {
    /// The task's name.
    pub task: String,
}

type Counters = Family<TaskLabel, Counter>;
type Histograms = Family<TaskLabel, Histogram, fn() -> Histogram>;

/// Seconds, from 5 ms to about 20 min.
fn seconds_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1200.0,
    ])
}

/// The worker's metrics.
pub struct Metrics {
    registry: Registry,
    received: Counters,
    started: Counters,
    succeeded: Counters,
    failed: Counters,
    retried: Counters,
    revoked: Counters,
    rejected: Counters,
    runtime: Histograms,
    wait: Histograms,
    live: Arc<OnceLock<Box<dyn Live>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics, registered under the `rcelery_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rcelery");
        let counters = |registry: &mut Registry, name: &str, help: &str| {
            let family = Counters::default();
            registry.register(name, help, family.clone());
            family
        };
        let received = counters(
            &mut registry,
            "tasks_received",
            "Task messages received, by task name",
        );
        let started = counters(
            &mut registry,
            "tasks_started",
            "Tasks started, by task name",
        );
        let succeeded = counters(
            &mut registry,
            "tasks_succeeded",
            "Tasks that succeeded, by task name",
        );
        let failed = counters(
            &mut registry,
            "tasks_failed",
            "Tasks that failed, by task name",
        );
        let retried = counters(
            &mut registry,
            "tasks_retried",
            "Tasks that asked to be retried, by task name",
        );
        let revoked = counters(
            &mut registry,
            "tasks_revoked",
            "Tasks revoked or expired before they ran, by task name",
        );
        let rejected = counters(
            &mut registry,
            "tasks_rejected",
            "Task messages rejected, by task name",
        );
        let runtime = Histograms::new_with_constructor(seconds_histogram as fn() -> Histogram);
        registry.register(
            "task_runtime_seconds",
            "How long tasks ran, by task name",
            runtime.clone(),
        );
        let wait = Histograms::new_with_constructor(seconds_histogram as fn() -> Histogram);
        registry.register(
            "task_wait_seconds",
            "Time from the message's arrival at this worker (or its ETA) until its task started, by task name",
            wait.clone(),
        );
        let live: Arc<OnceLock<Box<dyn Live>>> = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(LiveCollector::new(Arc::clone(&live))));
        Metrics {
            registry,
            received,
            started,
            succeeded,
            failed,
            retried,
            revoked,
            rejected,
            runtime,
            wait,
            live,
        }
    }

    /// Sets where the values read at each scrape come from (once; later calls are ignored).
    pub fn set_live(&self, live: Box<dyn Live>) {
        let _ = self.live.set(live);
    }

    fn label(task: &str) -> TaskLabel {
        TaskLabel {
            task: task.to_owned(),
        }
    }

    /// A task message was received.
    pub fn received(&self, task: &str) {
        self.received.get_or_create(&Self::label(task)).inc();
    }

    /// A task started after waiting `waited` seconds since it arrived (or its ETA came).
    pub fn started(&self, task: &str, waited: f64) {
        let l = Self::label(task);
        self.started.get_or_create(&l).inc();
        self.wait.get_or_create(&l).observe(waited.max(0.0));
    }

    /// A task succeeded after running `runtime` seconds.
    pub fn succeeded(&self, task: &str, runtime: f64) {
        let l = Self::label(task);
        self.succeeded.get_or_create(&l).inc();
        self.runtime.get_or_create(&l).observe(runtime.max(0.0));
    }

    /// A task failed after running `runtime` seconds.
    pub fn failed(&self, task: &str, runtime: f64) {
        let l = Self::label(task);
        self.failed.get_or_create(&l).inc();
        self.runtime.get_or_create(&l).observe(runtime.max(0.0));
    }

    /// A task asked to be retried.
    pub fn retried(&self, task: &str) {
        self.retried.get_or_create(&Self::label(task)).inc();
    }

    /// A task was revoked (or expired) before it ran.
    pub fn revoked(&self, task: &str) {
        self.revoked.get_or_create(&Self::label(task)).inc();
    }

    /// A task's message was rejected.
    pub fn rejected(&self, task: &str) {
        self.rejected.get_or_create(&Self::label(task)).inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("could not encode the metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_per_task_in_the_text_format() {
        let m = Metrics::new();
        m.received("tasks.add");
        m.received("tasks.add");
        m.started("tasks.add", 0.002);
        m.succeeded("tasks.add", 0.2);
        m.failed("tasks.fail", 1.0);
        let text = m.encode();
        assert!(
            text.contains("rcelery_tasks_received_total{task=\"tasks.add\"} 2"),
            "{text}"
        );
        assert!(text.contains("rcelery_tasks_failed_total{task=\"tasks.fail\"} 1"));
        assert!(text.contains("rcelery_task_runtime_seconds_count{task=\"tasks.add\"} 1"));
        assert!(
            text.contains("rcelery_task_runtime_seconds_bucket{le=\"0.25\",task=\"tasks.add\"} 1")
        );
        assert!(text.contains("rcelery_task_wait_seconds_count{task=\"tasks.add\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
