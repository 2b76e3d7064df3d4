//! A Lamport clock, as kombu's `LamportClock`: the `clock` header of pidbox commands and
//! replies and the `clock` field of events. One per worker, shared by its mailbox and its
//! event dispatcher.

use std::sync::atomic::{AtomicU64, Ordering};

/// A logical clock: [`forward`](Self::forward) before sending, [`adjust`](Self::adjust) on
/// receipt of another process's value.
#[derive(Debug, Default)]
pub struct LamportClock {
    value: AtomicU64,
}

impl LamportClock {
    /// A clock starting at `initial`.
    pub fn new(initial: u64) -> Self {
        LamportClock {
            value: AtomicU64::new(initial),
        }
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Moves the clock one tick on (an event happened here) and returns the new value.
    pub fn forward(&self) -> u64 {
        self.value.fetch_add(1, Ordering::SeqCst).saturating_add(1)
    }

    /// Takes another process's clock into account: the value becomes
    /// `max(own, other) + 1`, which is returned.
    pub fn adjust(&self, other: u64) -> u64 {
        let mut current = self.value.load(Ordering::SeqCst);
        loop {
            let next = current.max(other).saturating_add(1);
            match self.value.compare_exchange_weak(
                current,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_adjust_follow_lamport() {
        let c = LamportClock::new(0);
        assert_eq!(c.forward(), 1);
        assert_eq!(c.adjust(10), 11);
        assert_eq!(c.adjust(3), 12);
        assert_eq!(c.value(), 12);
    }
}
