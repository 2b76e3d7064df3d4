//! The worker's task slots: `-c` of them at start, each held by one task from the moment it
//! may run until it is done with its thread. Remote control resizes them at runtime
//! ([`resize`]: `pool_grow` / `pool_shrink`).
//!
//! A blocking task's slot goes with the function onto the slot's own thread and is freed
//! only when the function really returns, even if the task was ended at a time limit long
//! before (a thread cannot be killed; see [`super::timeout`]). So at most `-c` (the pool
//! size) blocking functions run, or run on abandoned, at once, on at most `-c` threads (a
//! slot a shrink took away ends its thread once the thread is idle), and a slot whose
//! thread was abandoned is not handed out again until that thread is free. An async task's
//! slot lives in its future: a task ended at its limit is dropped and frees its slot at once.
//!
//! Each held slot records what the [watchdog](super::watchdog) and the SIGUSR1
//! [dump](super::dump) report: task id and name, when it took the slot and started, its
//! limits and its state.

mod resize;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::time_limit::TimeLimits;
use crate::task::Handler;

/// What the task in a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Holding the slot, not running yet (a blocking task waiting for its thread to take it).
    Starting,
    /// Running within its limits.
    Running,
    /// Running past its soft limit, which it handles itself.
    PastSoftLimit,
    /// Ended (failed) at a time limit while its thread runs on; the slot is freed when the
    /// function returns.
    Abandoned(Limit),
}

/// Which time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// The soft limit (a task that did not ask about it is ended there).
    Soft,
    /// The hard limit.
    Hard,
}

impl SlotState {
    /// How the dump and the watchdog name the state.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            SlotState::Starting => "starting",
            SlotState::Running => "running",
            SlotState::PastSoftLimit => "running past its soft time limit",
            SlotState::Abandoned(Limit::Soft) => {
                "abandoned at its soft time limit, thread still running"
            }
            SlotState::Abandoned(Limit::Hard) => {
                "abandoned at its hard time limit, thread still running"
            }
        }
    }
}

/// How a task body runs, as the dump shows it.
pub(crate) fn run_kind(handler: &Handler) -> &'static str {
    match handler {
        Handler::Async(_) => "async",
        Handler::Blocking(_) => "blocking",
        Handler::Inline(_) => "inline",
    }
}

/// The task holding a slot. Shared by the slot and the code that runs the task, which
/// reports its progress here.
#[derive(Debug)]
pub(crate) struct Occupant {
    seq: u64,
    task_id: String,
    task_name: String,
    kind: &'static str,
    limits: TimeLimits,
    taken: Instant,
    progress: Mutex<Progress>,
}

#[derive(Debug, Clone, Copy)]
struct Progress {
    state: SlotState,
    started: Option<Instant>,
    abandoned: Option<Instant>,
}

impl Occupant {
    /// The task started running now (its time limits count from here).
    pub(crate) fn started(&self) {
        let mut p = lock(&self.progress);
        p.started = Some(Instant::now());
        p.state = SlotState::Running;
    }

    /// The task runs on past its soft limit, which it handles itself.
    pub(crate) fn passed_soft_limit(&self) {
        let mut p = lock(&self.progress);
        if p.state == SlotState::Running {
            p.state = SlotState::PastSoftLimit;
        }
    }

    /// The task was ended at `limit` while its thread runs on.
    pub(crate) fn abandoned(&self, limit: Limit) {
        let mut p = lock(&self.progress);
        p.state = SlotState::Abandoned(limit);
        p.abandoned = Some(Instant::now());
    }
}

/// A point-in-time copy of a held slot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotView {
    /// The slot's number, 0-based.
    pub index: usize,
    /// Unique for each task that took a slot (tells a new occupant from the previous one).
    pub seq: u64,
    /// The task's id.
    pub task_id: String,
    /// The task's name (its shadow name if it has one).
    pub task_name: String,
    /// `async`, `blocking` or `inline`.
    pub kind: &'static str,
    /// Its time limits.
    pub limits: TimeLimits,
    /// What it is doing.
    pub state: SlotState,
    /// When it took the slot.
    pub taken: Instant,
    /// When it started running.
    pub started: Option<Instant>,
    /// When it was abandoned at a time limit.
    pub abandoned: Option<Instant>,
}

impl SlotView {
    /// How long it has been running at `now` (0 before it starts).
    pub fn runtime(&self, now: Instant) -> std::time::Duration {
        self.started.map_or(std::time::Duration::ZERO, |s| {
            now.saturating_duration_since(s)
        })
    }

    /// `tasks.x[id] blocking, running 1.234s (hard limit 10s)`.
    pub fn describe(&self, now: Instant) -> String {
        let mut s = format!(
            "{}[{}] {}, {}, {:.3}s",
            self.task_name,
            self.task_id,
            self.kind,
            self.state.describe(),
            self.runtime(now).as_secs_f64()
        );
        let limits: Vec<String> = [("hard", self.limits.hard), ("soft", self.limits.soft)]
            .into_iter()
            .filter_map(|(which, l)| l.map(|l| format!("{which} limit {l}s")))
            .collect();
        if !limits.is_empty() {
            let _ = write!(s, " ({})", limits.join(", "));
        }
        s
    }
}

/// A job for a slot's thread.
type Job = Box<dyn FnOnce() + Send>;

/// One slot: its occupant, and the thread its blocking tasks run on (started on first use,
/// kept while the worker lives).
#[derive(Debug, Default)]
struct Cell {
    occupant: Mutex<Option<Arc<Occupant>>>,
    thread: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Cell {
    /// Hands `job` to this slot's thread, starting the thread if there is none (or the last
    /// one died). Only the slot's holder calls this, so the thread is free by then.
    fn run(&self, index: usize, job: Job) -> std::io::Result<()> {
        let mut sender = lock(&self.thread);
        let job = match sender.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return Ok(()),
                // The thread is gone (a panic outside the task body): start another.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name(format!("rcelery-slot-{index}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        if let Err(e) = spawned {
            // The job holds the slot, whose drop may retire this cell (taking `thread`):
            // unlock first.
            drop(sender);
            drop(job);
            return Err(e);
        }
        // The new thread is waiting on `rx`: the send cannot fail.
        let _ = tx.send(job);
        *sender = Some(tx);
        Ok(())
    }
}

/// The worker's slots (`-c` at start, resized by remote control).
#[derive(Debug)]
pub(crate) struct Slots {
    /// One permit per free slot of the pool (never more permits than free cells).
    permits: Arc<Semaphore>,
    inner: Mutex<Inner>,
    seq: AtomicU64,
}

/// The cells and who may use them; changed under one lock so that the permits and the free
/// cells stay in step.
#[derive(Debug)]
struct Inner {
    /// Every cell made so far, by index; the retired ones are not part of the pool.
    cells: Vec<Arc<Cell>>,
    /// Free cells of the pool, popped from the end.
    free: Vec<usize>,
    /// Cells taken out of the pool by a shrink (reused first when it grows again).
    retired: BTreeSet<usize>,
    /// How many slots the pool has (what `stats` reports as `max-concurrency`).
    capacity: usize,
    /// Slots a shrink took away while they were busy: the next ones freed are retired.
    owed: usize,
}

impl Inner {
    /// Takes cell `index` out of the pool; its thread (if any) ends once idle.
    fn retire(&mut self, index: usize) {
        self.retired.insert(index);
        *lock(&self.cells[index].thread) = None;
    }
}

impl Slots {
    /// `capacity` slots (at least one), all free.
    pub(crate) fn new(capacity: usize) -> Arc<Slots> {
        let capacity = capacity.max(1);
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(capacity)),
            inner: Mutex::new(Inner {
                cells: (0..capacity).map(|_| Arc::default()).collect(),
                // Popped from the end: slot 0 first.
                free: (0..capacity).rev().collect(),
                retired: BTreeSet::new(),
                capacity,
                owed: 0,
            }),
            seq: AtomicU64::new(0),
        })
    }

    /// How many slots there are (after the last resize; slots a shrink took away while busy
    /// no longer count).
    pub(crate) fn capacity(&self) -> usize {
        lock(&self.inner).capacity
    }

    /// Waits for a free slot (in arrival order) and gives it to the task. `None` only if the
    /// slots were torn down.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        task_id: &str,
        task_name: &str,
        kind: &'static str,
        limits: TimeLimits,
    ) -> Option<Slot> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let (index, cell) = {
            let mut inner = lock(&self.inner);
            // A permit is only ever held with a free cell, so one is there.
            let index = inner.free.pop()?;
            (index, Arc::clone(&inner.cells[index]))
        };
        let occupant = Arc::new(Occupant {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            task_id: task_id.to_owned(),
            task_name: task_name.to_owned(),
            kind,
            limits,
            taken: Instant::now(),
            progress: Mutex::new(Progress {
                state: SlotState::Starting,
                started: None,
                abandoned: None,
            }),
        });
        *lock(&cell.occupant) = Some(Arc::clone(&occupant));
        Some(Slot {
            slots: Arc::clone(self),
            index,
            cell,
            occupant,
            permit: Some(permit),
        })
    }

    /// Every slot of the pool, in order: `None` for a free one. A slot that a shrink took
    /// away while busy is listed until its task frees it.
    pub(crate) fn snapshot(&self) -> Vec<Option<SlotView>> {
        let cells: Vec<(usize, Arc<Cell>)> = {
            let inner = lock(&self.inner);
            inner
                .cells
                .iter()
                .enumerate()
                .filter(|(index, _)| !inner.retired.contains(index))
                .map(|(index, cell)| (index, Arc::clone(cell)))
                .collect()
        };
        cells
            .into_iter()
            .map(|(index, cell)| {
                let occupant = lock(&cell.occupant).clone()?;
                let p = *lock(&occupant.progress);
                Some(SlotView {
                    index,
                    seq: occupant.seq,
                    task_id: occupant.task_id.clone(),
                    task_name: occupant.task_name.clone(),
                    kind: occupant.kind,
                    limits: occupant.limits,
                    state: p.state,
                    taken: occupant.taken,
                    started: p.started,
                    abandoned: p.abandoned,
                })
            })
            .collect()
    }

    /// Slots held by tasks that are still running (not abandoned).
    pub(crate) fn running(&self) -> usize {
        self.snapshot()
            .iter()
            .flatten()
            .filter(|v| !matches!(v.state, SlotState::Abandoned(_)))
            .count()
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    index: usize,
    cell: Arc<Cell>,
    occupant: Arc<Occupant>,
    /// Released (or forgotten, when a shrink is owed) by `drop`, under the slots' lock.
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// The task in this slot, to report its progress.
    pub(crate) fn occupant(&self) -> Arc<Occupant> {
        Arc::clone(&self.occupant)
    }

    /// Runs `job` on this slot's thread. The slot goes with it and is freed when `job`
    /// returns, whether or not anyone still waits for the outcome. Fails only if a thread
    /// cannot be started (the slot is then freed at once).
    pub(crate) fn run_blocking<T, F>(self, job: F) -> std::io::Result<oneshot::Receiver<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let cell = Arc::clone(&self.cell);
        let index = self.index;
        let slot = self;
        cell.run(
            index,
            Box::new(move || {
                let out = job();
                drop(slot);
                let _ = tx.send(out);
            }),
        )?;
        Ok(rx)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&self.cell.occupant) = None;
        let mut inner = lock(&self.slots.inner);
        let permit = self.permit.take();
        if inner.owed > 0 {
            // The pool shrank while this slot was busy: it leaves the pool now.
            inner.owed -= 1;
            inner.retire(self.index);
            if let Some(permit) = permit {
                permit.forget();
            }
        } else {
            inner.free.push(self.index);
            drop(permit);
        }
    }
}

/// Locks `m`; a panic elsewhere while it was held leaves plain data that is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::time::Duration;

    /// Takes a slot for a blocking task named `id`.
    pub(in crate::worker::slots) async fn take(slots: &Arc<Slots>, id: &str) -> Slot {
        slots
            .acquire(id, "tasks.block", "blocking", TimeLimits::default())
            .await
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_records_its_task_and_frees_on_drop() {
        let slots = Slots::new(2);
        let a = take(&slots, "a").await;
        let view = slots.snapshot();
        let v = view[0].as_ref().unwrap();
        assert_eq!(
            (v.task_id.as_str(), v.state, v.started),
            ("a", SlotState::Starting, None)
        );
        assert!(view[1].is_none());
        a.occupant().started();
        tokio::time::advance(Duration::from_secs(2)).await;
        let v = slots.snapshot()[0].clone().unwrap();
        assert_eq!(v.state, SlotState::Running);
        assert_eq!(v.runtime(Instant::now()), Duration::from_secs(2));
        assert!(v
            .describe(Instant::now())
            .starts_with("tasks.block[a] blocking, running, 2.000s"));
        drop(a);
        assert!(slots.snapshot().iter().all(Option::is_none));
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_capacity_are_handed_out() {
        let slots = Slots::new(1);
        let a = take(&slots, "a").await;
        let waiting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { take(&slots, "b").await.occupant().task_id.clone() }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        drop(a);
        assert_eq!(waiting.await.unwrap(), "b");
    }

    #[tokio::test]
    async fn an_abandoned_thread_keeps_its_slot_until_it_returns() {
        let slots = Slots::new(1);
        let slot = take(&slots, "a").await;
        let occupant = slot.occupant();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let done = slot.run_blocking(move || wait.recv().is_ok()).unwrap();
        // Nobody waits for the outcome any more, as when the task was failed at its limit.
        drop(done);
        occupant.abandoned(Limit::Hard);
        let next = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { take(&slots, "b").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !next.is_finished(),
            "the slot was handed out while its thread ran"
        );
        let v = slots.snapshot()[0].clone().unwrap();
        assert_eq!(v.state, SlotState::Abandoned(Limit::Hard));
        release.send(()).unwrap();
        let b = next.await.unwrap();
        assert_eq!(b.occupant().task_id, "b");
    }

    #[tokio::test]
    async fn blocking_jobs_reuse_the_slot_threads() {
        let slots = Slots::new(2);
        let mut names = std::collections::BTreeSet::new();
        for i in 0..20 {
            let slot = take(&slots, &i.to_string()).await;
            let name = slot
                .run_blocking(|| std::thread::current().name().map(str::to_owned))
                .unwrap();
            names.insert(name.await.unwrap().unwrap());
        }
        // One at a time: always slot 0, always its one thread.
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["rcelery-slot-0".to_owned()]
        );
    }
}
