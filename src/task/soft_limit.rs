//! The soft time limit as a running task sees it (Celery raises `SoftTimeLimitExceeded` in
//! the task; Rust code cannot be interrupted, so the task is told and decides).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

/// Shared between the worker (which fires it when the soft limit passes) and the task's
/// [`Context`](super::Context) (which observes it).
#[derive(Debug, Default)]
pub struct SoftLimit {
    fired: CancellationToken,
    observed: AtomicBool,
}

impl SoftLimit {
    /// A signal that has not fired.
    pub fn new() -> Self {
        SoftLimit::default()
    }

    /// Fires the signal: the soft limit has passed.
    pub fn fire(&self) {
        self.fired.cancel();
    }

    /// True once the soft limit has passed. Marks the signal observed.
    pub fn is_exceeded(&self) -> bool {
        self.observed.store(true, Ordering::SeqCst);
        self.fired.is_cancelled()
    }

    /// Resolves once the soft limit has passed. Marks the signal observed.
    pub fn exceeded(&self) -> impl Future<Output = ()> + Send + 'static {
        self.observed.store(true, Ordering::SeqCst);
        self.fired.clone().cancelled_owned()
    }

    /// True if the task asked about its soft limit at least once: it handles the limit itself
    /// and is not ended when the limit fires.
    pub fn observed(&self) -> bool {
        self.observed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_marks_observed() {
        let s = SoftLimit::new();
        assert!(!s.observed());
        assert!(!s.is_exceeded());
        assert!(s.observed());
        s.fire();
        assert!(s.is_exceeded());
    }

    #[tokio::test]
    async fn the_future_resolves_when_fired() {
        let s = std::sync::Arc::new(SoftLimit::new());
        let wait = s.exceeded();
        assert!(s.observed());
        let s2 = std::sync::Arc::clone(&s);
        tokio::spawn(async move { s2.fire() });
        tokio::time::timeout(std::time::Duration::from_secs(5), wait)
            .await
            .expect("fired");
    }
}
