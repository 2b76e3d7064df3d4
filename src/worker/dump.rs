//! SIGUSR1: log the state of every slot. Celery's worker dumps the tracebacks of its threads
//! on SIGUSR1; rcelery has no Python frames to show, so it logs what each slot holds (task
//! id, name, state, runtime so far) and how many messages the worker holds. Logged at WARNING
//! so that it shows at the default log level, as Celery's dump (printed to stderr) does.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::slots::{SlotState, SlotView};
use super::Shared;

/// Starts listening for SIGUSR1; each one logs the slots. The listener runs until its handle
/// is aborted.
pub(crate) fn listen(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    let mut usr1 = signal(SignalKind::user_defined1())?;
    Ok(tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            log(
                &shared.slots.snapshot(),
                shared.inflight.len(),
                Instant::now(),
            );
        }
    }))
}

/// Logs a summary line, then one line per held slot.
fn log(slots: &[Option<SlotView>], held_messages: usize, now: Instant) {
    tracing::warn!("{}", summary(slots, held_messages));
    for v in slots.iter().flatten() {
        tracing::warn!(task_id = %v.task_id, task_name = %v.task_name, "slot {}: {}", v.index, v.describe(now));
    }
}

/// `SIGUSR1: 2 of 4 slots busy (1 held by an abandoned thread), ...`.
fn summary(slots: &[Option<SlotView>], held_messages: usize) -> String {
    let busy = slots.iter().flatten().count();
    let abandoned = slots
        .iter()
        .flatten()
        .filter(|v| matches!(v.state, SlotState::Abandoned(_)))
        .count();
    format!(
        "SIGUSR1: {busy} of {} slots busy ({abandoned} held by abandoned threads); {held_messages} message(s) held unsettled (prefetched, waiting for an ETA, a rate limit or a slot, or running with acks_late)",
        slots.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::slots::{Limit, Slots};
    use crate::worker::time_limit::TimeLimits;

    #[tokio::test(start_paused = true)]
    async fn the_summary_counts_busy_and_abandoned_slots() {
        let slots = Slots::new(3);
        let a = slots
            .acquire("a", "tasks.block", "blocking", TimeLimits::default())
            .await
            .unwrap();
        let _b = slots
            .acquire("b", "tasks.sleep", "async", TimeLimits::default())
            .await
            .unwrap();
        a.occupant().abandoned(Limit::Hard);
        let text = summary(&slots.snapshot(), 7);
        assert!(
            text.starts_with(
                "SIGUSR1: 2 of 3 slots busy (1 held by abandoned threads); 7 message(s)"
            ),
            "{text}"
        );
    }
}
