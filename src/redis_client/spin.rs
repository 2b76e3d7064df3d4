//! Waiting for a reply that is due within microseconds without letting the CPU go idle.
//!
//! On virtual machines an idle vCPU halts, and waking it again costs tens of microseconds
//! per wake-up, in latency and in CPU: on the 2-core VMs we measure on, a one-client Redis
//! round trip takes ~55 µs with idle cores and ~23 µs with busy ones. The fetch loop waits
//! for one script reply per batch, so that wake-up is paid on every batch. Polling for the
//! reply for a bounded time (yielding to other tasks, and checking the sockets, between
//! polls) keeps the core busy through the short wait. A reply that outlasts the spin is
//! awaited normally, and spinning then pauses for a while: on a slow link it would only
//! burn CPU.

use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Waits skipped without spinning after a reply took longer than the spin.
const PAUSE_AFTER_MISS: u32 = 64;

/// Awaits replies by spinning first, adapting to replies that come too late for it.
#[derive(Debug, Clone)]
pub struct Spinner {
    spin: Duration,
    paused_for: u32,
}

impl Spinner {
    /// Spins up to `spin` per wait; `Duration::ZERO` never spins.
    pub fn new(spin: Duration) -> Self {
        Spinner {
            spin,
            paused_for: 0,
        }
    }

    /// Awaits `fut`, polling it in a loop for up to the spin time (other tasks and socket
    /// readiness are served between polls) before waiting for it normally.
    pub async fn wait<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        if self.spin.is_zero() || self.paused_for > 0 {
            self.paused_for = self.paused_for.saturating_sub(1);
            return fut.await;
        }
        let deadline = Instant::now() + self.spin;
        loop {
            if let Poll::Ready(out) = futures::poll!(fut.as_mut()) {
                return out;
            }
            if Instant::now() >= deadline {
                self.paused_for = PAUSE_AFTER_MISS;
                return fut.await;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn late(ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    #[tokio::test]
    async fn gives_what_the_future_gives_and_pauses_after_a_late_reply() {
        let mut spinner = Spinner::new(Duration::from_millis(1));
        assert_eq!(spinner.wait(async { 7 }).await, 7);
        assert_eq!(spinner.paused_for, 0, "a prompt reply keeps spinning on");
        assert_eq!(spinner.wait(late(20)).await, 20);
        assert_eq!(
            spinner.paused_for, PAUSE_AFTER_MISS,
            "a late reply pauses spinning"
        );
        assert_eq!(spinner.wait(async { 8 }).await, 8);
        assert_eq!(spinner.paused_for, PAUSE_AFTER_MISS - 1);
        let mut never = Spinner::new(Duration::ZERO);
        assert_eq!(never.wait(late(1)).await, 1);
        assert_eq!(never.paused_for, 0);
    }
}
