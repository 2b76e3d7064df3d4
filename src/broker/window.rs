//! The prefetch window (`prefetch_count`) shared by broker and worker, and the [`Qos`] hook
//! that widens it while the worker holds messages that must not fill it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Celery's `QoS` (kombu's `basic_qos` prefetch count, changed as the worker goes): the worker
/// raises it by one for each message it holds for its ETA or countdown, so that held
/// messages do not fill the window, and lowers it again when that message is done. Changes
/// take effect when the transport next can ("eventually", as Celery's names say).
pub trait Qos: Send + Sync + 'static {
    /// One more message may be unacknowledged at once.
    fn increment_eventually(&self);

    /// One message fewer may be unacknowledged at once: takes back one
    /// [`Qos::increment_eventually`]. A slot in use is not taken from its message; the window
    /// shrinks when a slot is next free.
    fn decrement_eventually(&self);
}

/// The window of unacknowledged messages, shared by broker and worker: the broker takes a
/// [`PrefetchPermit`] for each message it delivers, and the message frees it when settled.
#[derive(Debug, Clone)]
pub struct PrefetchWindow {
    sem: Arc<Semaphore>,
    /// Slots owed by [`Qos::decrement_eventually`] when none was free: the next freed or
    /// acquired slots are forgotten instead of being used.
    debt: Arc<AtomicUsize>,
    /// `prefetch_count` 0: the window never fills, and the hook changes nothing.
    unlimited: bool,
    /// The count it was made with (0: unlimited).
    initial: usize,
}

/// One slot of the prefetch window, held by a delivery until it is settled.
pub struct PrefetchPermit {
    permit: Option<OwnedSemaphorePermit>,
    debt: Arc<AtomicUsize>,
}

impl fmt::Debug for PrefetchPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrefetchPermit")
    }
}

impl Drop for PrefetchPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            // A slot owed by a decrement goes away instead of coming back.
            if pay_one(&self.debt) {
                permit.forget();
            }
        }
    }
}

/// Takes one slot off the debt, if there is any.
fn pay_one(debt: &AtomicUsize) -> bool {
    debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
        .is_ok()
}

impl PrefetchWindow {
    /// A window of `count` messages; 0 means unlimited, as in Celery.
    pub fn new(count: usize) -> Self {
        let initial = count;
        let unlimited = count == 0;
        let count = if unlimited {
            Semaphore::MAX_PERMITS
        } else {
            count
        };
        PrefetchWindow {
            sem: Arc::new(Semaphore::new(count)),
            debt: Arc::default(),
            unlimited,
            initial,
        }
    }

    /// The `prefetch_count` the window was made with (0: unlimited), which a transport whose
    /// server counts unacknowledged messages (AMQP's `basic_qos`) starts from.
    pub fn initial_count(&self) -> usize {
        self.initial
    }

    /// Waits for at least one free slot, then takes up to `max` slots at once.
    pub async fn acquire_up_to(&self, max: usize) -> Vec<PrefetchPermit> {
        let mut permits = Vec::new();
        while permits.is_empty() {
            match self.sem.clone().acquire_owned().await {
                Ok(p) => self.keep(p, &mut permits),
                Err(_) => return permits,
            }
        }
        while permits.len() < max {
            match self.sem.clone().try_acquire_owned() {
                Ok(p) => self.keep(p, &mut permits),
                Err(_) => break,
            }
        }
        permits
    }

    /// Keeps an acquired slot, or forgets it if a decrement is owed.
    fn keep(&self, permit: OwnedSemaphorePermit, permits: &mut Vec<PrefetchPermit>) {
        if pay_one(&self.debt) {
            permit.forget();
        } else {
            permits.push(PrefetchPermit {
                permit: Some(permit),
                debt: Arc::clone(&self.debt),
            });
        }
    }

    /// Stops handing out slots (shutdown): pending and future acquires return nothing.
    pub fn close(&self) {
        self.sem.close();
    }
}

impl Qos for PrefetchWindow {
    fn increment_eventually(&self) {
        if self.unlimited || pay_one(&self.debt) {
            return;
        }
        self.sem.add_permits(1);
    }

    fn decrement_eventually(&self) {
        if self.unlimited {
            return;
        }
        if self.sem.forget_permits(1) == 0 {
            self.debt.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many slots can be had now without waiting (kept until the end of the test).
    fn free_now(window: &PrefetchWindow, held: &mut Vec<PrefetchPermit>) -> usize {
        let before = held.len();
        while let Ok(p) = window.sem.clone().try_acquire_owned() {
            window.keep(p, held);
        }
        held.len() - before
    }

    #[tokio::test]
    async fn a_window_hands_out_its_slots_and_gets_them_back() {
        let window = PrefetchWindow::new(3);
        let taken = window.acquire_up_to(10).await;
        assert_eq!(taken.len(), 3);
        drop(taken);
        assert_eq!(window.acquire_up_to(2).await.len(), 2);
    }

    #[tokio::test]
    async fn an_increment_adds_a_slot_while_the_message_keeps_its_own() {
        let window = PrefetchWindow::new(2);
        let mut held = window.acquire_up_to(2).await;
        // One message is held for its ETA: the window grows by one.
        window.increment_eventually();
        assert_eq!(free_now(&window, &mut held), 1);
        // It is done: the decrement is owed (no slot is free) and its own slot pays it.
        window.decrement_eventually();
        drop(held.remove(0));
        assert_eq!(free_now(&window, &mut held), 0);
        // Another message settles: its slot comes back as usual.
        drop(held.remove(0));
        assert_eq!(free_now(&window, &mut held), 1);
        drop(held);
        assert_eq!(window.acquire_up_to(5).await.len(), 2, "back to two slots");
    }

    #[tokio::test]
    async fn a_decrement_takes_a_free_slot_at_once() {
        let window = PrefetchWindow::new(2);
        window.increment_eventually();
        window.decrement_eventually();
        assert_eq!(window.acquire_up_to(5).await.len(), 2);
    }

    #[tokio::test]
    async fn an_owed_slot_is_taken_from_the_next_acquire() {
        let window = PrefetchWindow::new(2);
        let held = window.acquire_up_to(2).await;
        window.decrement_eventually();
        // The slots go back without the permits (as if freed some other way): the debt is
        // paid from what the next acquire gets.
        for mut p in held {
            if let Some(raw) = p.permit.take() {
                drop(raw);
            }
        }
        assert_eq!(window.acquire_up_to(5).await.len(), 1);
    }

    #[tokio::test]
    async fn an_increment_cancels_an_owed_decrement() {
        let window = PrefetchWindow::new(1);
        let held = window.acquire_up_to(1).await;
        window.decrement_eventually();
        window.increment_eventually();
        drop(held);
        assert_eq!(window.acquire_up_to(5).await.len(), 1);
    }

    #[tokio::test]
    async fn an_unlimited_window_ignores_the_hook() {
        let window = PrefetchWindow::new(0);
        window.increment_eventually();
        window.decrement_eventually();
        assert_eq!(window.acquire_up_to(100).await.len(), 100);
    }
}
