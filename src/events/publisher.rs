//! The one task that publishes events: it takes whatever the channel holds (up to a batch),
//! sends the task events of a batch as one `task.multi` list (as Celery's worker flushes its
//! buffered task events) and each worker event on its own, and drops a batch the broker
//! refuses or does not take in time, counting it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatcher::EventDispatcher;
use super::event::{event_exchange, message, routing_key, Stamped};
use crate::broker::{Broker, ExchangeSpec};
use crate::value::Value;

/// Events published in one go at most.
const MAX_BATCH: usize = 256;

/// How long one publish may take before its events are dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// The running publisher.
pub struct Publisher {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

impl Publisher {
    /// Starts publishing what `rx` receives to `broker`'s `celeryev` exchange, as node
    /// `hostname`.
    pub fn spawn(
        broker: Arc<dyn Broker>,
        rx: mpsc::Receiver<Stamped>,
        events: EventDispatcher,
        hostname: String,
    ) -> Publisher {
        let stop = CancellationToken::new();
        let task = Task {
            exchange: event_exchange(broker.transport()),
            broker,
            events,
            hostname,
            pid: std::process::id(),
            failing: false,
        };
        let handle = tokio::spawn(task.run(rx, stop.clone()));
        Publisher { handle, stop }
    }

    /// Publishes what is still queued (within `within`), then stops.
    pub async fn close(self, within: Duration) {
        self.stop.cancel();
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(within, self.handle).await.is_err() {
            abort.abort();
            tracing::warn!("events still queued after {within:?} at shutdown were dropped");
        }
    }
}

struct Task {
    broker: Arc<dyn Broker>,
    exchange: ExchangeSpec,
    events: EventDispatcher,
    hostname: String,
    pid: u32,
    /// The last publish failed: the next success says so.
    failing: bool,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Stamped>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                biased;
                e = rx.recv() => e,
                _ = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            self.publish(&mut batch).await;
        }
        // Shutdown: what was sent before the stop (`worker-offline` last) still goes out.
        rx.close();
        while let Some(e) = rx.recv().await {
            batch.push(e);
            if batch.len() == MAX_BATCH {
                self.publish(&mut batch).await;
            }
        }
        self.publish(&mut batch).await;
    }

    /// Publishes and empties `batch`: the task events as one `task.multi` list (a single one
    /// under its own routing key), each other event alone, in the order they were sent.
    async fn publish(&mut self, batch: &mut Vec<Stamped>) {
        if batch.is_empty() {
            return;
        }
        let utcoffset = utcoffset();
        let mut tasks: Vec<Value> = Vec::new();
        let mut single_kind = None;
        let drained: Vec<Stamped> = std::mem::take(batch);
        for e in drained {
            let body = Value::Dict(e.body(&self.hostname, self.pid, utcoffset));
            if e.event.group() == "task" {
                single_kind = Some(e.event.kind);
                tasks.push(body);
                continue;
            }
            self.flush_tasks(&mut tasks, single_kind).await;
            self.send(&body, routing_key(e.event.kind), 1).await;
        }
        self.flush_tasks(&mut tasks, single_kind).await;
    }

    async fn flush_tasks(&mut self, tasks: &mut Vec<Value>, kind: Option<&'static str>) {
        match tasks.len() {
            0 => {}
            1 => {
                let key = routing_key(kind.unwrap_or("task-multi"));
                let body = tasks.pop().unwrap_or(Value::None);
                self.send(&body, key, 1).await;
            }
            n => {
                let body = Value::List(std::mem::take(tasks));
                self.send(&body, "task.multi".to_owned(), n).await;
            }
        }
    }

    async fn send(&mut self, body: &Value, routing_key: String, count: usize) {
        let msg = message(body, routing_key, &self.hostname);
        let sent = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.broker.publish_to(&self.exchange, &msg),
        )
        .await;
        let stats = self.events.stats();
        let count = count as u64;
        match sent {
            Ok(Ok(())) => {
                stats.published.fetch_add(count, Ordering::Relaxed);
                if self.failing || self.events.rearm_warning() {
                    self.failing = false;
                    tracing::info!(
                        dropped_total = stats.dropped.load(Ordering::Relaxed),
                        "events are published again"
                    );
                }
            }
            Ok(Err(e)) => {
                stats.dropped.fetch_add(count, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    let refused = matches!(e, crate::broker::BrokerError::Refused { .. });
                    if refused && !self.events.task_events() {
                        // A transport without broadcast (the embedded filesystem default)
                        // refuses the heartbeats nobody asked for: not worth a warning.
                        tracing::debug!(error = %e, "worker events are not published");
                    } else {
                        tracing::warn!(error = %e, "could not publish events; they are dropped until the broker takes them again");
                    }
                }
            }
            Err(_) => {
                stats.dropped.fetch_add(count, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!("publishing events took over {PUBLISH_TIMEOUT:?}; they are dropped until the broker takes them again");
                }
            }
        }
    }
}

/// Hours west of UTC now, as Celery's `utcoffset()` (true division, so fractional-hour
/// zones stay exact).
fn utcoffset() -> f64 {
    let east = chrono::Local::now().offset().local_minus_utc();
    if east == 0 {
        // Not -0.0, which JSON would keep.
        return 0.0;
    }
    -f64::from(east) / 3600.0
}
