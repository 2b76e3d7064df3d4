//! The slot watchdog: a wedge is never silent.
//!
//! Once a second it looks at the [slots](super::slots) and warns
//! - about each slot still held by a thread abandoned at a time limit (the slot stays taken
//!   until the thread returns), every `repeat` after it was abandoned;
//! - when every slot is held by an abandoned thread: an error saying the worker is wedged
//!   (it runs nothing until a thread returns), at once and every `repeat`; the health state
//!   says so and the worker's `every_slot_abandoned` hook is raised;
//! - when every slot has been busy with the same tasks for `repeat`
//!   (`rcelery_wedge_warn_after`), and every `repeat` while that lasts; the health state says
//!   so too.
//!
//! When it is over, one line says so and the health state is cleared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::slots::{SlotState, SlotView, Slots};
use super::Shared;
use crate::health::Health;

/// How often the watchdog looks.
const TICK: Duration = Duration::from_secs(1);

/// What is wrong with the slots as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wedge {
    /// Nothing: some slot is free or changed hands recently.
    None,
    /// Every slot has been busy with the same tasks for at least `repeat`.
    AllBusy,
    /// Every slot is held by a thread abandoned at a time limit.
    AllAbandoned,
}

/// Something the watchdog reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Alert {
    /// A slot still held by a thread abandoned at its time limit; `held` of the slots are.
    StillAbandoned { slot: SlotView, held: usize },
    /// Every slot is held by an abandoned thread.
    AllAbandoned(Vec<SlotView>),
    /// Every slot has been busy with the same tasks for `busy_for`.
    AllBusy {
        slots: Vec<SlotView>,
        busy_for: Duration,
    },
    /// The slots were wedged and are not any more.
    Recovered { busy: usize },
}

/// The watchdog's memory between looks.
#[derive(Debug)]
pub(crate) struct Watchdog {
    repeat: Duration,
    /// When to warn next about each abandoned occupant, by its sequence number.
    abandoned_next: HashMap<u64, Instant>,
    wedge: Wedge,
    wedge_next: Option<Instant>,
}

impl Watchdog {
    /// A watchdog that warns after, and repeats every, `repeat`.
    pub(crate) fn new(repeat: Duration) -> Self {
        Watchdog {
            repeat,
            abandoned_next: HashMap::new(),
            wedge: Wedge::None,
            wedge_next: None,
        }
    }

    /// The current wedge (as of the last [`check`](Self::check)).
    pub(crate) fn wedge(&self) -> Wedge {
        self.wedge
    }

    /// Looks at `slots` (every slot, `None` when free) at `now`; returns what to report.
    pub(crate) fn check(&mut self, slots: &[Option<SlotView>], now: Instant) -> Vec<Alert> {
        let held: Vec<&SlotView> = slots.iter().flatten().collect();
        let abandoned: Vec<&SlotView> = held
            .iter()
            .copied()
            .filter(|v| matches!(v.state, SlotState::Abandoned(_)))
            .collect();
        let all_held = !slots.is_empty() && held.len() == slots.len();
        let wedge = if all_held && abandoned.len() == held.len() {
            Wedge::AllAbandoned
        } else if all_held
            && held
                .iter()
                .all(|v| now.saturating_duration_since(v.taken) >= self.repeat)
        {
            Wedge::AllBusy
        } else {
            Wedge::None
        };

        let mut alerts = Vec::new();
        if wedge != self.wedge {
            self.wedge_next = None;
            if wedge == Wedge::None {
                alerts.push(Alert::Recovered { busy: held.len() });
            }
        }
        self.wedge = wedge;
        if wedge != Wedge::None && self.wedge_next.is_none_or(|t| now >= t) {
            self.wedge_next = Some(now + self.repeat);
            let views = held.iter().map(|v| (*v).clone()).collect();
            alerts.push(match wedge {
                Wedge::AllAbandoned => Alert::AllAbandoned(views),
                _ => {
                    let busy_for = held
                        .iter()
                        .map(|v| now.saturating_duration_since(v.taken))
                        .min()
                        .unwrap_or_default();
                    Alert::AllBusy {
                        slots: views,
                        busy_for,
                    }
                }
            });
        }

        self.abandoned_next
            .retain(|seq, _| abandoned.iter().any(|v| v.seq == *seq));
        for v in &abandoned {
            let next = self
                .abandoned_next
                .entry(v.seq)
                .or_insert_with(|| v.abandoned.unwrap_or(now) + self.repeat);
            if now >= *next {
                *next = now + self.repeat;
                // The wedge error already names every one of them.
                if wedge != Wedge::AllAbandoned {
                    alerts.push(Alert::StillAbandoned {
                        slot: (*v).clone(),
                        held: abandoned.len(),
                    });
                }
            }
        }
        alerts
    }
}

/// Logs `alert` (`capacity` slots in all, as the snapshot checked lists them).
pub(crate) fn log(alert: &Alert, capacity: usize, now: Instant) {
    match alert {
        Alert::StillAbandoned { slot, held } => {
            let since = slot
                .abandoned
                .map_or(0.0, |a| now.saturating_duration_since(a).as_secs_f64());
            tracing::warn!(
                task_id = %slot.task_id,
                task_name = %slot.task_name,
                "Task {}[{}] still running {since:.1}s after it was abandoned at its time limit; its slot stays taken until the thread returns ({held} of {capacity} slots held by abandoned threads)",
                slot.task_name,
                slot.task_id,
            );
        }
        Alert::AllAbandoned(slots) => {
            let (ids, names, list) = summary(slots, now);
            tracing::error!(
                task_ids = %ids,
                task_names = %names,
                "worker wedged: all {capacity} slots are held by blocking threads abandoned at their time limits; no task runs until one of them returns (a restart frees them): {list}"
            );
        }
        Alert::AllBusy { slots, busy_for } => {
            let (ids, names, list) = summary(slots, now);
            tracing::warn!(
                task_ids = %ids,
                task_names = %names,
                "all {capacity} slots busy with the same tasks for {:.1}s; no other task can start until one ends: {list}",
                busy_for.as_secs_f64()
            );
        }
        Alert::Recovered { busy } => {
            tracing::info!("slots no longer wedged: {busy} of {capacity} busy, tasks run again");
        }
    }
}

/// Comma-separated ids and names, and a readable list of the slots.
fn summary(slots: &[SlotView], now: Instant) -> (String, String, String) {
    let ids = slots
        .iter()
        .map(|v| v.task_id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let names = slots
        .iter()
        .map(|v| v.task_name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let list = slots
        .iter()
        .map(|v| v.describe(now))
        .collect::<Vec<_>>()
        .join("; ");
    (ids, names, list)
}

/// Starts watching the worker's slots; runs until the handle is aborted.
pub(crate) fn spawn(shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let s = &*shared;
        watch(
            &s.slots,
            &s.health,
            &s.every_slot_abandoned,
            s.settings.wedge_warn_after,
        )
        .await;
    })
}

/// Watches `slots` until the task is dropped: logs, keeps `health` and `every_slot_abandoned`
/// up to date.
pub(crate) async fn watch(
    slots: &Slots,
    health: &Health,
    every_slot_abandoned: &watch::Sender<bool>,
    repeat: Duration,
) {
    let mut dog = Watchdog::new(repeat);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Scheduled by the tick's own instant, not the time it was woken: repeats then land
        // on ticks.
        let tick_at = tick.tick().await;
        let snapshot = slots.snapshot();
        let alerts = dog.check(&snapshot, tick_at);
        let now = Instant::now();
        // The slots looked at: the pool's, and any a shrink takes away once their tasks end.
        for alert in &alerts {
            log(alert, snapshot.len(), now);
        }
        health.set_slots_wedged(dog.wedge() != Wedge::None);
        every_slot_abandoned.send_if_modified(|raised| {
            let wedged = dog.wedge() == Wedge::AllAbandoned;
            std::mem::replace(raised, wedged) != wedged
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::slots::{Limit, Slot};
    use crate::worker::time_limit::TimeLimits;

    const REPEAT: Duration = Duration::from_secs(60);

    async fn take(slots: &Arc<Slots>, id: &str) -> Slot {
        let s = slots
            .acquire(id, "tasks.block", "blocking", TimeLimits::default())
            .await
            .unwrap();
        s.occupant().started();
        s
    }

    fn kinds(alerts: &[Alert]) -> Vec<&'static str> {
        alerts
            .iter()
            .map(|a| match a {
                Alert::StillAbandoned { .. } => "still-abandoned",
                Alert::AllAbandoned(_) => "all-abandoned",
                Alert::AllBusy { .. } => "all-busy",
                Alert::Recovered { .. } => "recovered",
            })
            .collect()
    }

    async fn look(dog: &mut Watchdog, slots: &Slots) -> Vec<&'static str> {
        kinds(&dog.check(&slots.snapshot(), Instant::now()))
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_slot_is_warned_about_at_a_low_rate() {
        let slots = Slots::new(2);
        let mut dog = Watchdog::new(REPEAT);
        let a = take(&slots, "a").await;
        a.occupant().abandoned(Limit::Hard);
        assert!(
            look(&mut dog, &slots).await.is_empty(),
            "the abandonment itself was logged"
        );
        tokio::time::advance(REPEAT).await;
        let alerts = dog.check(&slots.snapshot(), Instant::now());
        assert!(
            matches!(&alerts[..], [Alert::StillAbandoned { slot, held: 1 }] if slot.task_id == "a")
        );
        tokio::time::advance(REPEAT / 2).await;
        assert!(
            look(&mut dog, &slots).await.is_empty(),
            "not again before `repeat`"
        );
        tokio::time::advance(REPEAT / 2).await;
        assert_eq!(look(&mut dog, &slots).await, ["still-abandoned"]);
        assert_eq!(dog.wedge(), Wedge::None);
    }

    #[tokio::test(start_paused = true)]
    async fn every_slot_abandoned_is_a_wedge_until_a_thread_returns() {
        let slots = Slots::new(2);
        let mut dog = Watchdog::new(REPEAT);
        let a = take(&slots, "a").await;
        let b = take(&slots, "b").await;
        a.occupant().abandoned(Limit::Hard);
        assert!(look(&mut dog, &slots).await.is_empty());
        b.occupant().abandoned(Limit::Soft);
        let alerts = dog.check(&slots.snapshot(), Instant::now());
        let Alert::AllAbandoned(held) = &alerts[0] else {
            panic!("{alerts:?}")
        };
        assert_eq!(
            held.iter().map(|v| v.task_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(dog.wedge(), Wedge::AllAbandoned);
        tokio::time::advance(REPEAT).await;
        assert_eq!(
            look(&mut dog, &slots).await,
            ["all-abandoned"],
            "repeated, without a line per slot"
        );
        drop(a);
        assert_eq!(look(&mut dog, &slots).await, ["recovered"]);
        assert_eq!(dog.wedge(), Wedge::None);
    }

    #[tokio::test(start_paused = true)]
    async fn all_slots_busy_with_the_same_tasks_is_warned_about() {
        let slots = Slots::new(2);
        let mut dog = Watchdog::new(REPEAT);
        let _a = take(&slots, "a").await;
        tokio::time::advance(REPEAT).await;
        assert!(
            look(&mut dog, &slots).await.is_empty(),
            "a free slot is no wedge"
        );
        let b = take(&slots, "b").await;
        tokio::time::advance(REPEAT / 2).await;
        assert!(
            look(&mut dog, &slots).await.is_empty(),
            "b took its slot recently"
        );
        tokio::time::advance(REPEAT / 2).await;
        assert_eq!(look(&mut dog, &slots).await, ["all-busy"]);
        assert_eq!(dog.wedge(), Wedge::AllBusy);
        tokio::time::advance(TICK).await;
        assert!(look(&mut dog, &slots).await.is_empty(), "not once per tick");
        drop(b);
        let _c = take(&slots, "c").await;
        assert_eq!(
            look(&mut dog, &slots).await,
            ["recovered"],
            "a slot changed hands"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_loop_keeps_health_and_the_hook_up_to_date() {
        let slots = Slots::new(1);
        let health = Arc::new(Health::new());
        let (hook, mut raised) = watch::channel(false);
        let watcher = tokio::spawn({
            let (slots, health) = (Arc::clone(&slots), Arc::clone(&health));
            async move { watch(&slots, &health, &hook, REPEAT).await }
        });
        let a = take(&slots, "a").await;
        a.occupant().abandoned(Limit::Hard);
        raised.wait_for(|r| *r).await.unwrap();
        assert!(health.snapshot().slots_wedged);
        drop(a);
        raised.wait_for(|r| !*r).await.unwrap();
        assert!(!health.snapshot().slots_wedged);
        watcher.abort();
    }
}
