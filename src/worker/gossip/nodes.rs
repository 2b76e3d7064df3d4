//! The other workers gossip has heard of (Celery's `events.State` as its gossip step keeps
//! it): a node is alive while its last worker event is less than two heartbeat intervals
//! old (Celery's `HEARTBEAT_EXPIRE_WINDOW` of 200 %), and gone after `worker-offline`.
//! The table holds at most [`MAX_NODES`] nodes: events from further nodes are not tracked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most nodes tracked at once.
pub const MAX_NODES: usize = 4096;

/// Celery's `HEARTBEAT_EXPIRE_WINDOW`: a node's heartbeats expire after this share (in %)
/// of its heartbeat interval.
const EXPIRE_WINDOW_PERCENT: f64 = 200.0;

/// What an event changed in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The node was not known, or came online (Celery's `on_node_join`).
    Joined,
    /// The node said it goes offline (`on_node_leave`).
    Left,
    /// A known node sent another event.
    Seen,
    /// The table is full: the node is not tracked.
    Ignored,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// When its last event other than `worker-offline` arrived (`None` after going offline).
    last_seen: Option<Instant>,
    /// Its heartbeat interval (`freq`).
    freq: Duration,
}

impl Node {
    fn alive(&self, now: Instant) -> bool {
        let window = self.freq.mul_f64(EXPIRE_WINDOW_PERCENT / 100.0);
        self.last_seen
            .is_some_and(|t| now.saturating_duration_since(t) < window)
    }
}

/// The table of nodes.
#[derive(Debug)]
pub struct Nodes {
    inner: Mutex<HashMap<String, Node>>,
    limit: usize,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes::with_limit(MAX_NODES)
    }
}

impl Nodes {
    /// A table holding at most `limit` nodes.
    pub fn with_limit(limit: usize) -> Self {
        Nodes {
            inner: Mutex::new(HashMap::new()),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Node>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a worker event of `kind` (`worker-online`, `worker-heartbeat`,
    /// `worker-offline`, ...) from `hostname`, whose heartbeat interval is `freq` seconds
    /// (Celery's default of 60 when the event has none), received at `now`.
    pub fn observe(&self, hostname: &str, kind: &str, freq: Option<f64>, now: Instant) -> Change {
        let freq = freq
            .filter(|f| f.is_finite() && *f > 0.0)
            .map_or(Duration::from_secs(60), |f| {
                Duration::from_secs_f64(f.min(86_400.0))
            });
        let offline = kind == "worker-offline";
        let last_seen = (!offline).then_some(now);
        let mut nodes = self.lock();
        let full = nodes.len() >= self.limit;
        match nodes.get_mut(hostname) {
            Some(node) => {
                node.freq = freq;
                node.last_seen = last_seen;
                match kind {
                    "worker-offline" => Change::Left,
                    "worker-online" => Change::Joined,
                    _ => Change::Seen,
                }
            }
            None if full => Change::Ignored,
            None => {
                nodes.insert(hostname.to_owned(), Node { last_seen, freq });
                if offline {
                    Change::Left
                } else {
                    Change::Joined
                }
            }
        }
    }

    /// Removes the nodes that are no longer alive and returns their names (Celery's gossip
    /// `periodic`, which reports each as a missed heartbeat).
    pub fn sweep(&self, now: Instant) -> Vec<String> {
        let mut nodes = self.lock();
        let gone: Vec<String> = nodes
            .iter()
            .filter(|(_, n)| !n.alive(now))
            .map(|(h, _)| h.clone())
            .collect();
        for h in &gone {
            nodes.remove(h);
        }
        gone
    }

    /// The nodes alive at `now`, sorted (Celery's `State.alive_workers`).
    pub fn alive(&self, now: Instant) -> Vec<String> {
        let mut alive: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, n)| n.alive(now))
            .map(|(h, _)| h.clone())
            .collect();
        alive.sort();
        alive
    }

    /// How many nodes the table holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no node is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_keep_a_node_alive_for_two_intervals() {
        let t = Instant::now();
        let nodes = Nodes::default();
        assert_eq!(
            nodes.observe("a@h", "worker-online", Some(2.0), t),
            Change::Joined
        );
        assert_eq!(
            nodes.observe("a@h", "worker-heartbeat", Some(2.0), t),
            Change::Seen
        );
        assert_eq!(nodes.alive(t + Duration::from_secs(3)), ["a@h"]);
        assert!(nodes.sweep(t + Duration::from_secs(3)).is_empty());
        assert_eq!(nodes.sweep(t + Duration::from_secs(5)), ["a@h"]);
        assert!(nodes.is_empty());
    }

    #[test]
    fn offline_is_not_alive_and_is_swept() {
        let t = Instant::now();
        let nodes = Nodes::default();
        nodes.observe("a@h", "worker-heartbeat", Some(2.0), t);
        assert_eq!(
            nodes.observe("a@h", "worker-offline", Some(2.0), t),
            Change::Left
        );
        assert!(nodes.alive(t).is_empty());
        assert_eq!(nodes.sweep(t), ["a@h"]);
    }

    #[test]
    fn the_table_is_bounded() {
        let t = Instant::now();
        let nodes = Nodes::with_limit(2);
        nodes.observe("a", "worker-heartbeat", None, t);
        nodes.observe("b", "worker-heartbeat", Some(f64::NAN), t);
        assert_eq!(
            nodes.observe("c", "worker-online", Some(2.0), t),
            Change::Ignored
        );
        assert_eq!(nodes.len(), 2);
        // A known node is still updated when the table is full.
        assert_eq!(
            nodes.observe("a", "worker-online", Some(2.0), t),
            Change::Joined
        );
        // No freq: Celery's 60 s, so still alive after a minute less a second.
        assert_eq!(nodes.alive(t + Duration::from_secs(59)), ["b"]);
    }
}
