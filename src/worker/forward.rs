//! Side-by-side migration: a message for a task this binary does not implement is published,
//! unchanged (body, headers, properties), to the configured queue (one a Python worker
//! consumes), instead of being failed with `NotRegistered`.

use super::request::{dispose, requeue, Unsettled};
use super::Shared;
use crate::protocol::Disposition;
use crate::protocol::{OutgoingMessage, RawMessage};

/// Forwards `raw` to the `forward_unknown` queue, then acks it here. If publishing fails the
/// message goes back to its queue, so nothing is lost.
pub(super) async fn unknown(
    shared: &Shared,
    unsettled: &mut Unsettled,
    raw: &RawMessage,
    id: Option<String>,
    name: String,
) {
    let Some(queue) = shared.settings.forward_unknown.as_deref() else {
        return;
    };
    let id = id.unwrap_or_default();
    let message = OutgoingMessage {
        body: raw.body.clone(),
        content_type: raw.content_type.clone(),
        content_encoding: raw.content_encoding.clone(),
        headers: raw.headers.clone(),
        properties: raw.properties.clone(),
        exchange: String::new(),
        routing_key: queue.to_owned(),
    };
    match shared.broker.publish(&message).await {
        Ok(()) => {
            tracing::info!(task_id = %id, task_name = %name, "Task {name}[{id}] is not registered here: forwarded to queue {queue:?}");
            dispose(shared, unsettled, Disposition::Ack);
        }
        Err(e) => {
            tracing::error!(task_id = %id, task_name = %name, error = %e, "could not forward {name}[{id}] to {queue:?}; requeued");
            requeue(shared, unsettled);
        }
    }
}
