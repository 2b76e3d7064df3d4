//! The queues a running consumer takes from, changeable while it runs (Celery's
//! `add_consumer` / `cancel_consumer`). The worker owns the set; the consumer started by
//! [`super::Broker::consume`] watches it, declares and starts consuming a queue added, stops
//! taking new messages from a queue cancelled, and consumes the current set again after
//! every reconnect.

use std::sync::Arc;

use tokio::sync::watch;

use super::QueueSpec;

/// A shared, watched list of consumed queues, in the order they were added (as kombu's
/// consumer lists them). Clones share the same set.
#[derive(Debug, Clone)]
pub struct ConsumedQueues {
    tx: Arc<watch::Sender<Vec<QueueSpec>>>,
}

impl ConsumedQueues {
    /// A set holding `queues` (a later duplicate name is dropped).
    pub fn new(queues: Vec<QueueSpec>) -> Self {
        let mut unique: Vec<QueueSpec> = Vec::with_capacity(queues.len());
        for q in queues {
            if !unique.iter().any(|u| u.name == q.name) {
                unique.push(q);
            }
        }
        ConsumedQueues {
            tx: Arc::new(watch::Sender::new(unique)),
        }
    }

    /// The queues consumed now.
    pub fn current(&self) -> Vec<QueueSpec> {
        self.tx.borrow().clone()
    }

    /// True when the queue `name` is consumed.
    pub fn contains(&self, name: &str) -> bool {
        self.tx.borrow().iter().any(|q| q.name == name)
    }

    /// Starts consuming `queue`; false (and no change) when a queue of that name is
    /// consumed already.
    pub fn add(&self, queue: QueueSpec) -> bool {
        self.tx.send_if_modified(|queues| {
            if queues.iter().any(|q| q.name == queue.name) {
                return false;
            }
            queues.push(queue);
            true
        })
    }

    /// Stops consuming the queue `name`; false when it was not consumed.
    pub fn cancel(&self, name: &str) -> bool {
        self.tx.send_if_modified(|queues| {
            let before = queues.len();
            queues.retain(|q| q.name != name);
            queues.len() != before
        })
    }

    /// A receiver that sees every change (the current set counts as seen).
    pub fn watch(&self) -> watch::Receiver<Vec<QueueSpec>> {
        self.tx.subscribe()
    }
}

impl From<Vec<QueueSpec>> for ConsumedQueues {
    fn from(queues: Vec<QueueSpec>) -> Self {
        ConsumedQueues::new(queues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &ConsumedQueues) -> Vec<String> {
        set.current().into_iter().map(|q| q.name).collect()
    }

    #[test]
    fn add_and_cancel_keep_order_and_notify() {
        let set = ConsumedQueues::new(vec![QueueSpec::direct("a"), QueueSpec::direct("a")]);
        assert_eq!(names(&set), ["a"]);
        let mut rx = set.watch();
        assert!(!rx.has_changed().unwrap_or(true));
        assert!(set.add(QueueSpec::direct("b")));
        assert!(!set.add(QueueSpec::direct("b")), "already consumed");
        assert!(rx.has_changed().unwrap_or(false));
        let seen: Vec<String> = rx
            .borrow_and_update()
            .iter()
            .map(|q| q.name.clone())
            .collect();
        assert_eq!(seen, ["a", "b"]);
        assert!(set.cancel("a"));
        assert!(!set.cancel("a"), "not consumed any more");
        assert!(!set.contains("a") && set.contains("b"));
        assert!(set.add(QueueSpec::direct("a")));
        assert_eq!(names(&set), ["b", "a"]);
    }
}
