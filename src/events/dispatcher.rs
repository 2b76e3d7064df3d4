//! The sending side: cheap to clone, never waits. Each event is stamped with the Lamport
//! clock and the time, then put on a bounded channel for the [`super::Publisher`]; a full
//! channel drops the event and counts it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::event::{Event, Stamped};
use crate::control::clock::LamportClock;

/// Which events the worker sends, from its flags and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSettings {
    /// Task events (`-E`, `worker_send_task_events`); switched at run time by the
    /// `enable_events` / `disable_events` remote commands.
    pub task_events: bool,
    /// `worker-online` / `worker-heartbeat` / `worker-offline` (off with
    /// `--without-heartbeat`, as Celery's `Heart` step).
    pub heartbeat: bool,
    /// Seconds between heartbeats (`--heartbeat-interval`, Celery's default 2.0); sent as
    /// `freq`.
    pub heartbeat_interval: f64,
    /// `task-sent` for the tasks the worker publishes (`task_send_sent_event`).
    pub task_sent: bool,
    /// Events that may wait for the publisher ([`DEFAULT_BUFFER`]);
    /// beyond it they are dropped and counted.
    pub buffer: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            task_events: false,
            task_sent: false,
            heartbeat: true,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            buffer: DEFAULT_BUFFER,
        }
    }
}

/// Celery's worker heartbeat interval (`celery.worker.heartbeat.Heart`), seconds.
pub const DEFAULT_HEARTBEAT_INTERVAL: f64 = 2.0;

/// Events that may wait for the publisher by default.
pub const DEFAULT_BUFFER: usize = 10_000;

/// What happened to the events sent, for logs and metrics.
#[derive(Debug, Default)]
pub struct EventsStats {
    /// Events handed to the broker.
    pub published: AtomicU64,
    /// Events dropped: the channel was full, or the broker refused or did not answer.
    pub dropped: AtomicU64,
}

struct Inner {
    tx: Option<mpsc::Sender<Stamped>>,
    task_events: AtomicBool,
    clock: Arc<LamportClock>,
    stats: Arc<EventsStats>,
    /// Set at the first drop of a burst (warned once), cleared by the publisher when it
    /// reports the burst.
    warned: AtomicBool,
}

/// Sends events; clones share one channel, clock and task-events flag.
#[derive(Clone)]
pub struct EventDispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDispatcher")
            .field("enabled", &self.inner.tx.is_some())
            .field("task_events", &self.task_events())
            .finish()
    }
}

impl EventDispatcher {
    /// A dispatcher with `settings` moving `clock` (the worker's one Lamport clock, shared
    /// with its pidbox), and the receiving end its publisher reads.
    pub fn new(
        settings: &EventSettings,
        clock: Arc<LamportClock>,
    ) -> (EventDispatcher, mpsc::Receiver<Stamped>) {
        let (tx, rx) = mpsc::channel(settings.buffer.max(1));
        let d = EventDispatcher {
            inner: Arc::new(Inner {
                tx: Some(tx),
                task_events: AtomicBool::new(settings.task_events),
                clock,
                stats: Arc::new(EventsStats::default()),
                warned: AtomicBool::new(false),
            }),
        };
        (d, rx)
    }

    /// A dispatcher that sends nothing (a worker built without events, tests).
    pub fn disabled() -> EventDispatcher {
        EventDispatcher {
            inner: Arc::new(Inner {
                tx: None,
                task_events: AtomicBool::new(false),
                clock: Arc::new(LamportClock::new(0)),
                stats: Arc::new(EventsStats::default()),
                warned: AtomicBool::new(false),
            }),
        }
    }

    /// True when task events are sent: check it before building one.
    pub fn task_events(&self) -> bool {
        self.inner.tx.is_some() && self.inner.task_events.load(Ordering::Relaxed)
    }

    /// Turns task events on or off (the `enable_events` / `disable_events` commands).
    /// Returns whether they were on.
    pub fn set_task_events(&self, on: bool) -> bool {
        self.inner.task_events.swap(on, Ordering::Relaxed)
    }

    /// The worker's Lamport clock, which events move forward; the pidbox mailbox shares it
    /// (one clock per worker, as Celery's `app.clock`).
    pub fn clock(&self) -> &Arc<LamportClock> {
        &self.inner.clock
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<EventsStats> {
        &self.inner.stats
    }

    /// Sends `event` unless its group is off; never waits. A full buffer drops it (counted,
    /// warned about once per burst).
    pub fn send(&self, event: Event) {
        if event.group() == "task" && !self.inner.task_events.load(Ordering::Relaxed) {
            return;
        }
        self.send_always(event);
    }

    /// Sends `event` whatever the task events switch says (`task-sent`, which
    /// `task_send_sent_event` asks for on its own); never waits.
    pub fn send_always(&self, event: Event) {
        let Some(tx) = &self.inner.tx else { return };
        let stamped = Stamped {
            clock: self.inner.clock.forward(),
            timestamp: now(),
            event,
        };
        match tx.try_send(stamped) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => {
                self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.inner.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        event = e.event.kind,
                        "event buffer full (the broker is down or slow): events are dropped until it drains"
                    );
                }
            }
            // The publisher has stopped (shutdown): nothing to send to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Clears the once-per-burst warning, so that the next drop warns again.
    pub(super) fn rearm_warning(&self) -> bool {
        self.inner.warned.swap(false, Ordering::Relaxed)
    }
}

/// Seconds since the epoch, as Python's `time.time()`.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fields;

    #[test]
    fn task_events_follow_the_flag_and_worker_events_always_go() {
        let (d, mut rx) = EventDispatcher::new(&EventSettings::default(), Arc::default());
        d.send(fields::task_started("u1"));
        assert!(rx.try_recv().is_err(), "task events are off without -E");
        d.send(crate::events::worker_event(
            "worker-online",
            2.0,
            crate::events::WorkerCounts::default(),
        ));
        let e = rx.try_recv().ok();
        assert_eq!(
            e.map(|e| (e.event.kind, e.clock)),
            Some(("worker-online", 1))
        );
        assert!(!d.set_task_events(true));
        d.send(fields::task_started("u2"));
        assert_eq!(rx.try_recv().ok().map(|e| e.clock), Some(2));
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let settings = EventSettings {
            task_events: true,
            buffer: 2,
            ..EventSettings::default()
        };
        let (d, _rx) = EventDispatcher::new(&settings, Arc::default());
        for i in 0..5 {
            d.send(fields::task_started(&format!("u{i}")));
        }
        assert_eq!(d.stats().dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn events_move_the_shared_clock() {
        let (d, mut rx) = EventDispatcher::new(&EventSettings::default(), Arc::default());
        d.clock().adjust(10);
        d.send(crate::events::worker_event(
            "worker-heartbeat",
            2.0,
            crate::events::WorkerCounts::default(),
        ));
        assert_eq!(rx.try_recv().ok().map(|e| e.clock), Some(12));
    }
}
