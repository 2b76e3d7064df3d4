//! The one place that decides how a delivery is settled: acked before the task runs (early)
//! or after (`acks_late`), rejected, or requeued. Every other part of the request handler
//! says what happened and lets this module settle the message.

use crate::broker::PrefetchPermit;
use crate::protocol::{Disposition, TaskMessage};
use crate::task::TaskDef;

use super::super::requests::Held;
use super::super::Shared;

/// A delivery not yet settled with the broker. Settling frees its prefetch slot. Only this
/// module settles it.
pub(in crate::worker) struct Unsettled {
    tag: String,
    permit: Option<PrefetchPermit>,
    /// The window was widened for it (held for its ETA): narrowed again when it is settled.
    widened: bool,
    settled: bool,
    /// Its place in the registry of held requests (remote control); leaves with it.
    held: Option<Held>,
}

impl Unsettled {
    /// A delivery just received, holding its prefetch slot.
    pub(super) fn new(tag: String, permit: Option<PrefetchPermit>) -> Unsettled {
        Unsettled {
            tag,
            permit,
            widened: false,
            settled: false,
            held: None,
        }
    }

    /// Records its place in the registry of held requests.
    pub(super) fn hold(&mut self, held: Held) {
        self.held = Some(held);
    }

    /// Its place in the registry of held requests, once recorded.
    pub(super) fn held(&self) -> Option<&Held> {
        self.held.as_ref()
    }

    fn ack(&mut self, shared: &Shared) {
        self.settle(shared, false, false);
    }

    fn reject(&mut self, shared: &Shared, requeue: bool) {
        self.settle(shared, true, requeue);
    }

    fn settle(&mut self, shared: &Shared, reject: bool, requeue: bool) {
        if self.settled {
            return;
        }
        if reject {
            shared.broker.reject(&self.tag, requeue);
        } else {
            shared.broker.ack(&self.tag);
        }
        shared.inflight.remove(&self.tag);
        if let Some(held) = &self.held {
            held.acknowledged();
        }
        if self.widened {
            // Before the slot is freed, so that the slot itself can pay the decrement.
            shared.qos.decrement_eventually();
            self.widened = false;
        }
        self.permit = None;
        self.settled = true;
    }

    /// Widens the prefetch window by one for this message (Celery's QoS increment while an
    /// ETA task waits), so that a held message does not fill the window; narrowed again once
    /// the message is settled.
    pub(super) fn widen_window(&mut self, shared: &Shared) {
        if !self.widened {
            shared.qos.increment_eventually();
            self.widened = true;
        }
    }
}

/// A message that will not run here: refused at decode, its task not registered, or forwarded
/// elsewhere. Settled as `disposition` says.
pub(in crate::worker) fn dispose(
    shared: &Shared,
    unsettled: &mut Unsettled,
    disposition: Disposition,
) {
    match disposition {
        Disposition::Ack => unsettled.ack(shared),
        Disposition::Reject => unsettled.reject(shared, false),
    }
}

/// A message handed on that could not be: back to its queue, so nothing is lost.
pub(in crate::worker) fn requeue(shared: &Shared, unsettled: &mut Unsettled) {
    unsettled.reject(shared, true);
}

/// A task that will not run because it was revoked or had expired: acked, with `acks_late`
/// too (Celery's `Request.revoked()` acknowledges it).
pub(super) fn discard_revoked(shared: &Shared, unsettled: &mut Unsettled) {
    unsettled.ack(shared);
}

/// How one admitted task's message is settled around its run.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckPolicy {
    acks_late: bool,
}

impl AckPolicy {
    /// The task's own `acks_late`, else the worker's `task_acks_late`.
    pub(super) fn for_task(def: &TaskDef, shared: &Shared) -> AckPolicy {
        AckPolicy {
            acks_late: def.options.acks_late.unwrap_or(shared.settings.acks_late),
        }
    }

    /// The task has its slot and is about to run: acked now unless it acks late.
    pub(super) fn before_run(self, shared: &Shared, unsettled: &mut Unsettled) {
        if !self.acks_late {
            unsettled.ack(shared);
        }
    }

    /// The task ended (succeeded, failed or retried) and its outcome is recorded: acked now
    /// if it acks late (acked before the run otherwise).
    pub(super) fn after_run(self, shared: &Shared, unsettled: &mut Unsettled) {
        if self.acks_late {
            unsettled.ack(shared);
        }
    }

    /// True when a late ack may go as soon as the result's write is queued, before it is
    /// stored: the backend queues its write in order with the broker's acks, which frees the
    /// prefetch slot and lets write, ack and next fetch share one round trip. Not for chord
    /// parts: their ack waits for the chord counter.
    pub(super) fn acks_with_queued_write(
        self,
        shared: &Shared,
        m: &TaskMessage,
        ignore_result: bool,
    ) -> bool {
        !ignore_result
            && self.acks_late
            && m.embed.chord.is_none()
            && shared.backend.orders_writes_before_acks()
    }

    /// Acks once the result's write is queued (see [`AckPolicy::acks_with_queued_write`]).
    pub(super) fn after_queued_write(self, shared: &Shared, unsettled: &mut Unsettled) {
        unsettled.ack(shared);
    }

    /// The task raised `Reject`: rejected, requeued if it asked.
    pub(super) fn task_rejected(self, shared: &Shared, unsettled: &mut Unsettled, requeue: bool) {
        unsettled.reject(shared, requeue);
    }

    /// The retry could not be published: Celery turns that into `Reject(requeue=False)`.
    pub(super) fn retry_not_sent(self, shared: &Shared, unsettled: &mut Unsettled) {
        unsettled.reject(shared, false);
    }
}
