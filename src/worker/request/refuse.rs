//! Refusing a message that is not a runnable task, as Celery disposes of it.

use super::super::Shared;
use super::ack_policy::{self, Unsettled};
use super::finish::failure_meta;
use crate::backend::meta::exception_meta;
use crate::backend::ResultRecord;
use crate::protocol::DecodeError;
use crate::task::TaskError;
use crate::value::Value;

/// A message that is not a runnable task: logged and disposed of as Celery would. `reply`
/// holds its `reply_to` and `correlation_id`, where the `rpc://` backend sends a failure.
pub(super) async fn refuse(
    shared: &Shared,
    unsettled: &mut Unsettled,
    error: DecodeError,
    reply: &crate::protocol::Properties,
) {
    match &error {
        DecodeError::UnknownTask { id, name } => {
            tracing::error!(task_name = %name, task_id = id.as_deref().unwrap_or(""), "Received unregistered task of type {name:?}.\nThe message has been ignored and discarded.");
            if let Some(id) = id {
                let meta = failure_meta(TaskError::not_registered(name));
                store_refusal(shared, id, meta, reply, "NotRegistered failure").await;
            }
        }
        DecodeError::Undecodable { .. } => {
            tracing::error!(error = %error, "Can't decode message body; the message has been acknowledged and discarded");
        }
        DecodeError::TooLarge {
            id,
            name,
            size,
            limit,
        } => {
            let (id_text, name_text) =
                (id.as_deref().unwrap_or("?"), name.as_deref().unwrap_or("?"));
            tracing::error!(
                task_id = id_text,
                task_name = name_text,
                size,
                limit,
                "Refusing task {name_text}[{id_text}]: its message of {size} bytes is larger than rcelery_max_message_bytes ({limit}); it has been acknowledged and discarded"
            );
            if let Some(id) = id {
                // kombu's DecodeError: what a Python client reading the failure can rebuild.
                let meta = exception_meta(
                    "DecodeError",
                    "kombu.exceptions",
                    vec![Value::Str(error.to_string())],
                );
                store_refusal(
                    shared,
                    id,
                    meta,
                    reply,
                    "failure of a message too large to decode",
                )
                .await;
            }
        }
        _ => tracing::error!(error = %error, "Rejecting message"),
    }
    ack_policy::dispose(shared, unsettled, error.disposition());
}

/// Stores the FAILURE of a refused message's task id (replied to where the message says);
/// `what` names it in the error logged when it cannot be stored.
async fn store_refusal(
    shared: &Shared,
    id: &str,
    meta: Value,
    reply: &crate::protocol::Properties,
    what: &str,
) {
    let record = ResultRecord::failure(id, meta, None)
        .replying_to(reply.reply_to.clone(), reply.correlation_id.clone());
    if let Err(e) = shared.backend.store(record).await {
        tracing::error!(task_id = %id, error = %e, "could not store the {what}");
    }
}
