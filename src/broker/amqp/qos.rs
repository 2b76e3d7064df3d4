//! The AMQP side of the [`Qos`] hook: the worker's prefetch window, and `basic_qos` on the
//! consumer channel changed with it, as Celery's consumer does (`kombu.common.QoS`:
//! increments while a message waits for its ETA, decrements after, never below 1; a count
//! above 65535 is sent as 0, unlimited).

use std::sync::{Arc, Mutex};

use lapin::options::BasicQosOptions;
use lapin::Channel;
use tokio::sync::watch;

use crate::broker::{PrefetchWindow, Qos};

/// AMQP's largest `prefetch_count`; above it kombu turns QoS off (0).
const PREFETCH_COUNT_MAX: usize = 0xFFFF;

/// The prefetch count the server should have, shared by the hook and the consumer.
pub(super) struct QosState {
    value: Mutex<usize>,
    changes: watch::Sender<usize>,
}

impl QosState {
    /// A state starting at `initial` (0: unlimited).
    pub fn new(initial: usize) -> Arc<QosState> {
        Arc::new(QosState {
            value: Mutex::new(initial),
            changes: watch::Sender::new(initial),
        })
    }

    /// The count to send now.
    pub fn current(&self) -> u16 {
        wire_count(*lock(&self.value))
    }

    /// Changes to the count.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.changes.subscribe()
    }

    fn update(&self, f: impl FnOnce(usize) -> usize) {
        let new = {
            let mut v = lock(&self.value);
            if *v == 0 {
                return;
            }
            *v = f(*v);
            *v
        };
        self.changes.send_replace(new);
    }
}

/// The count as `basic_qos` takes it: above 65535 is unlimited (0), as in kombu.
pub(super) fn wire_count(count: usize) -> u16 {
    if count > PREFETCH_COUNT_MAX {
        0
    } else {
        count as u16
    }
}

/// The hook the worker gets: the window, and the server's count.
pub(super) struct AmqpQos {
    pub window: PrefetchWindow,
    pub state: Arc<QosState>,
}

impl Qos for AmqpQos {
    fn increment_eventually(&self) {
        self.window.increment_eventually();
        self.state.update(|v| v + 1);
    }

    fn decrement_eventually(&self) {
        self.window.decrement_eventually();
        self.state.update(|v| v.saturating_sub(1).max(1));
    }
}

/// Applies every change of the count to the consumer channel of the session it was started
/// for, until that channel closes (the next session starts its own).
pub(super) async fn follow(channel: Channel, global: bool, mut changes: watch::Receiver<usize>) {
    while changes.changed().await.is_ok() {
        let count = wire_count(*changes.borrow_and_update());
        tracing::debug!("basic.qos: prefetch_count->{count}");
        if let Err(e) = channel.basic_qos(count, BasicQosOptions { global }).await {
            tracing::debug!(error = %e, "basic.qos not applied (the channel is gone)");
            return;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_follows_kombus_rules() {
        let s = QosState::new(8);
        let q = AmqpQos {
            window: PrefetchWindow::new(8),
            state: Arc::clone(&s),
        };
        q.increment_eventually();
        assert_eq!(s.current(), 9);
        q.decrement_eventually();
        q.decrement_eventually();
        assert_eq!(s.current(), 7);
        let one = QosState::new(1);
        one.update(|v| v.saturating_sub(1).max(1));
        assert_eq!(one.current(), 1, "never below 1");
        let unlimited = QosState::new(0);
        unlimited.update(|v| v + 1);
        assert_eq!(unlimited.current(), 0, "unlimited stays unlimited");
        assert_eq!(wire_count(70_000), 0);
    }
}
