//! Admitting a delivery: decode it, route it (run here, forward, or refuse), hold it until
//! its ETA, wait for its rate limit, and drop it if it has expired.

use std::sync::Arc;

use super::super::revoke::{Verdict, Watch};
use super::super::{eta, forward, Shared};
use super::ack_policy::{self, Unsettled};
use super::{finish, refuse};
use crate::broker::Delivery;
use crate::protocol::{decode_task, DecodeError, Disposition, TaskMessage};
use crate::task::TaskDef;

/// A decoded message for a registered task, its ETA come.
pub(super) struct Received {
    pub(super) unsettled: Unsettled,
    /// Told when the task is revoked while it waits or runs here.
    pub(super) watch: Watch,
    pub(super) message: TaskMessage,
    pub(super) def: Arc<TaskDef>,
}

/// Decodes and routes `delivery`, then holds it until its ETA. `None` when it was settled
/// here (refused, forwarded) or the worker is shutting down (left unsettled, given back).
pub(super) async fn receive(shared: &Shared, delivery: Delivery) -> Option<Received> {
    let Delivery {
        mut raw,
        tag,
        permit,
        ..
    } = delivery;
    let mut unsettled = Unsettled::new(tag, permit);
    let message = match decode_task(&mut raw, &shared.settings.accept, |n| {
        shared.registry.contains(n)
    }) {
        Ok(m) => m,
        Err(DecodeError::UnknownTask { id, name }) if shared.settings.forward_unknown.is_some() => {
            Box::pin(forward::unknown(shared, &mut unsettled, &raw, id, name)).await;
            return None;
        }
        Err(e) => {
            let reply = &raw.properties;
            Box::pin(refuse::refuse(shared, &mut unsettled, e, reply)).await;
            return None;
        }
    };
    // The body is decoded: its bytes need not wait with the message (an ETA may be far off).
    drop(raw);
    let Some(def) = shared.registry.get(&message.name).cloned() else {
        ack_policy::dispose(shared, &mut unsettled, Disposition::Reject);
        return None;
    };
    tracing::info!(task_id = %message.id, task_name = %message.display_name(), "Task {}[{}] received", message.display_name(), message.id);
    shared.lifecycle.received(&message);
    if let Some(by) = shared.revocations.check(&message) {
        let why = finish::Revocation::Revoked(by);
        Box::pin(finish::revoked(shared, &mut unsettled, &message, why)).await;
        return None;
    }
    let mut watch = shared.revocations.watch(&message);
    let wait_for_eta = message.eta.as_ref().and_then(eta::until);
    unsettled.hold(shared.requests.admit(&message, wait_for_eta.is_some()));

    if let Some(wait) = wait_for_eta {
        // Celery's QoS increment while an ETA task waits: it does not fill the window.
        unsettled.widen_window(shared);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            v = watch.revoked() => {
                Box::pin(discard(shared, &mut unsettled, &message, v)).await;
                return None;
            }
            _ = shared.shutdown.cancelled() => return None,
        }
        if let Some(held) = unsettled.held() {
            held.reserved();
        }
    }
    Some(Received {
        unsettled,
        watch,
        message,
        def,
    })
}

/// Waits for a rate-limit token, unacked and keeping the prefetch slot (as Celery 5.5 does),
/// then drops the task if it has expired. `None` when it was settled here or the worker is
/// shutting down.
pub(super) async fn ready(shared: &Shared, received: Received) -> Option<Received> {
    let Received {
        mut unsettled,
        mut watch,
        message,
        def,
    } = received;
    if shared.throttle.limits(&def.name) {
        tokio::select! {
            _ = shared.throttle.acquire(&def.name) => {}
            v = watch.revoked() => {
                Box::pin(discard(shared, &mut unsettled, &message, v)).await;
                return None;
            }
            _ = shared.shutdown.cancelled() => return None,
        }
    }
    if message.expires.as_ref().is_some_and(eta::has_passed) {
        Box::pin(finish::revoke_expired(shared, &mut unsettled, &message)).await;
        return None;
    }
    Some(Received {
        unsettled,
        watch,
        message,
        def,
    })
}

/// A held request told it is revoked (`verdict`): it does not run. Also called by
/// [`super::run`] for one revoked while it waited for a slot.
pub(super) async fn discard(
    shared: &Shared,
    unsettled: &mut Unsettled,
    message: &TaskMessage,
    verdict: Verdict,
) {
    // A revoke by stamp wakes the request without naming it: the store says why.
    let by = shared
        .revocations
        .check(message)
        .unwrap_or(crate::worker::revoke::RevokedBy::Id);
    tracing::debug!(task_id = %message.id, ?verdict, "revoked while held");
    finish::revoked(shared, unsettled, message, finish::Revocation::Revoked(by)).await;
}
