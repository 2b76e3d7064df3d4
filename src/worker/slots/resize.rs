//! Growing and shrinking the slots at runtime (remote control's `pool_grow` /
//! `pool_shrink`). Growing adds free slots at once, so waiting tasks start. Shrinking never
//! interrupts a task: a free slot leaves the pool at once, a busy one when its task frees it.
//! The pool never shrinks below one slot.

use std::sync::Arc;

use super::{lock, Slots};

impl Slots {
    /// Adds `n` slots; returns the new capacity. A slot that a shrink was still waiting to
    /// take away (busy when it shrank) stays instead of adding another.
    pub(crate) fn grow(&self, n: usize) -> usize {
        let mut inner = lock(&self.inner);
        inner.capacity = inner.capacity.saturating_add(n);
        let mut added = 0;
        for _ in 0..n {
            if inner.owed > 0 {
                inner.owed -= 1;
                continue;
            }
            let index = match inner.retired.pop_first() {
                Some(index) => index,
                None => {
                    inner.cells.push(Arc::default());
                    inner.cells.len() - 1
                }
            };
            inner.free.push(index);
            added += 1;
        }
        // Under the lock, so that the permits never outnumber the free cells.
        self.permits.add_permits(added);
        inner.capacity
    }

    /// Takes away up to `n` slots, keeping at least one; returns how many it took away (the
    /// capacity drops by that much at once). Free slots leave at once; busy ones when their
    /// tasks free them.
    pub(crate) fn shrink(&self, n: usize) -> usize {
        let mut inner = lock(&self.inner);
        let removed = n.min(inner.capacity.saturating_sub(1));
        inner.capacity -= removed;
        for _ in 0..removed {
            if self.permits.forget_permits(1) == 1 {
                // A free slot: the highest-numbered free cell leaves.
                if let Some(pos) = (0..inner.free.len()).max_by_key(|&i| inner.free[i]) {
                    let index = inner.free.remove(pos);
                    inner.retire(index);
                }
            } else {
                inner.owed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::worker::slots::tests::take;
    use crate::worker::slots::Slot;

    /// Takes a slot in the background; the handle finishes once one is free.
    fn wait_for_one(slots: &Arc<Slots>, id: &'static str) -> tokio::task::JoinHandle<Slot> {
        let slots = Arc::clone(slots);
        tokio::spawn(async move { take(&slots, id).await })
    }

    fn busy(slots: &Slots) -> usize {
        slots.snapshot().iter().flatten().count()
    }

    #[tokio::test(start_paused = true)]
    async fn growing_while_every_slot_is_busy_lets_one_more_task_run() {
        let slots = Slots::new(1);
        let _a = take(&slots, "a").await;
        let b = wait_for_one(&slots, "b");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!b.is_finished(), "one slot, already taken");
        assert_eq!(slots.grow(1), 2);
        let b = b.await.unwrap();
        assert_eq!(b.occupant().task_id, "b");
        assert_eq!((slots.capacity(), busy(&slots)), (2, 2));
        assert_eq!(slots.snapshot().len(), 2);
        let c = wait_for_one(&slots, "c");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!c.is_finished(), "two slots, both taken");
    }

    #[tokio::test(start_paused = true)]
    async fn shrinking_while_busy_takes_effect_as_tasks_finish() {
        let slots = Slots::new(2);
        let a = take(&slots, "a").await;
        let b = take(&slots, "b").await;
        assert_eq!(slots.shrink(1), 1);
        assert_eq!(slots.capacity(), 1, "reported at once");
        assert_eq!(busy(&slots), 2, "no running task is interrupted");
        let c = wait_for_one(&slots, "c");
        drop(a);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !c.is_finished(),
            "a's slot left the pool instead of going to c"
        );
        assert_eq!(slots.snapshot().len(), 1);
        drop(b);
        assert_eq!(c.await.unwrap().occupant().task_id, "c");
        assert_eq!(slots.snapshot().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_free_slot_leaves_at_once_and_never_below_one() {
        let slots = Slots::new(3);
        assert_eq!(slots.shrink(5), 2, "one slot stays");
        assert_eq!((slots.capacity(), slots.snapshot().len()), (1, 1));
        assert_eq!(slots.shrink(1), 0);
        let a = take(&slots, "a").await;
        assert_eq!(a.index, 0, "the lowest slot stays");
        let b = wait_for_one(&slots, "b");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!b.is_finished());
        drop(a);
        b.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn growing_back_cancels_a_pending_shrink_and_reuses_retired_cells() {
        let slots = Slots::new(2);
        let a = take(&slots, "a").await;
        let b = take(&slots, "b").await;
        slots.shrink(1);
        slots.grow(1);
        drop(a);
        drop(b);
        let (x, y) = (take(&slots, "x").await, take(&slots, "y").await);
        assert_eq!((slots.capacity(), x.index.max(y.index)), (2, 1));
        drop((x, y));
        slots.shrink(1);
        assert_eq!(slots.grow(2), 3);
        let held: Vec<Slot> = vec![
            take(&slots, "1").await,
            take(&slots, "2").await,
            take(&slots, "3").await,
        ];
        let mut indexes: Vec<usize> = held.iter().map(|s| s.index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1, 2], "the retired cell came back first");
    }

    #[tokio::test]
    async fn a_retired_slot_runs_blocking_tasks_again_after_growing() {
        let slots = Slots::new(2);
        slots.shrink(1);
        slots.grow(1);
        let a = take(&slots, "a").await;
        let b = take(&slots, "b").await;
        let ra = a.run_blocking(|| 1).unwrap();
        let rb = b.run_blocking(|| 2).unwrap();
        assert_eq!((ra.await.unwrap(), rb.await.unwrap()), (1, 2));
    }
}
