//! The worker's own view of its health: which links (broker, result backend) are down and
//! since when, how often they went down, and whether every task slot is stuck.
//!
//! Connections report here when they lose and regain their server; the worker's watchdog
//! reports stuck slots. Nothing here acts on it: the log lines are written by the reporters,
//! and a health endpoint (or a liveness probe) reads [`Health::snapshot`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A link the worker depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkKind {
    /// The broker: fetching, publishing, acks.
    Broker,
    /// The result backend.
    Backend,
}

impl LinkKind {
    /// The name used in logs and metrics (`broker`, `backend`).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Broker => "broker",
            LinkKind::Backend => "backend",
        }
    }
}

/// What is known about one link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkHealth {
    /// When the current outage began; `None` while the link is up.
    pub down_since: Option<Instant>,
    /// Times the link went down.
    pub outages: u64,
    /// Times it came back.
    pub reconnects: u64,
    /// Failed attempts to use it (each failed connection attempt or command that is then
    /// retried): for the result backend, the result-store retries.
    pub failed_attempts: u64,
    /// Total length of the outages that have ended.
    pub outage_total: Duration,
    /// The error that began the current (or last) outage, password-free.
    pub last_error: Option<String>,
}

/// A point-in-time copy of the worker's health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSnapshot {
    /// Every link that has reported, by kind.
    pub links: BTreeMap<LinkKind, LinkHealth>,
    /// True while every task slot has been held past its limit (or for very long).
    pub slots_wedged: bool,
}

impl HealthSnapshot {
    /// True when every link is up and the slots are not wedged.
    pub fn is_healthy(&self) -> bool {
        !self.slots_wedged && self.links.values().all(|l| l.down_since.is_none())
    }
}

/// Shared health state; cheap to update from any task.
#[derive(Debug, Default)]
pub struct Health {
    links: Mutex<BTreeMap<LinkKind, LinkHealth>>,
    wedged: AtomicBool,
}

impl Health {
    /// A fresh state: nothing reported, healthy.
    pub fn new() -> Self {
        Health::default()
    }

    /// Records that `link` is down (one more failed attempt). Returns true if it was up until now (the caller then logs
    /// the loss once); a link already down keeps its first error and start time.
    pub fn link_down(&self, link: LinkKind, error: &str) -> bool {
        let mut links = self.lock();
        let entry = links.entry(link).or_default();
        entry.failed_attempts += 1;
        if entry.down_since.is_some() {
            return false;
        }
        entry.down_since = Some(Instant::now());
        entry.outages += 1;
        entry.last_error = Some(error.to_owned());
        true
    }

    /// Records that `link` is up. Returns the outage's length if it was down (the caller then
    /// logs the recovery once).
    pub fn link_up(&self, link: LinkKind) -> Option<Duration> {
        let mut links = self.lock();
        let entry = links.entry(link).or_default();
        let since = entry.down_since.take()?;
        let outage = since.elapsed();
        entry.reconnects += 1;
        entry.outage_total += outage;
        Some(outage)
    }

    /// How long `link` has been down, `None` if it is up.
    pub fn down_for(&self, link: LinkKind) -> Option<Duration> {
        self.lock()
            .get(&link)
            .and_then(|l| l.down_since)
            .map(|s| s.elapsed())
    }

    /// Records whether every task slot is stuck.
    pub fn set_slots_wedged(&self, wedged: bool) {
        self.wedged.store(wedged, Ordering::Relaxed);
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            links: self.lock().clone(),
            slots_wedged: self.wedged.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<LinkKind, LinkHealth>> {
        self.links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once_and_measured() {
        let h = Health::new();
        assert!(h.snapshot().is_healthy());
        assert!(h.link_down(LinkKind::Broker, "broken pipe"));
        assert!(
            !h.link_down(LinkKind::Broker, "connection refused"),
            "already down"
        );
        assert!(!h.snapshot().is_healthy());
        assert!(h.down_for(LinkKind::Broker).is_some());
        assert_eq!(
            h.snapshot().links[&LinkKind::Broker].last_error.as_deref(),
            Some("broken pipe")
        );
        assert!(h.link_up(LinkKind::Broker).is_some());
        assert!(h.link_up(LinkKind::Broker).is_none(), "already up");
        let snap = h.snapshot();
        assert!(snap.is_healthy());
        assert_eq!(
            (
                snap.links[&LinkKind::Broker].outages,
                snap.links[&LinkKind::Broker].reconnects
            ),
            (1, 1)
        );
    }

    #[test]
    fn wedged_slots_are_unhealthy() {
        let h = Health::new();
        h.set_slots_wedged(true);
        assert!(!h.snapshot().is_healthy());
        h.set_slots_wedged(false);
        assert!(h.snapshot().is_healthy());
    }
}
