//! Broadcast on the filesystem transport, as kombu ≥ 5.3 does it: an exchange's bindings are
//! its table in `control_folder`; a message published to a fanout exchange is written once
//! for every bound queue, to a direct or topic exchange for the queues its routing key
//! matches (nobody bound: nobody gets it). A subscription binds its queue, takes the queue's
//! files as they come (no acknowledgement, as the pidbox consumes), and removes its binding
//! when the receiver goes, as kombu does when an auto-delete queue (a client's reply queue)
//! is deleted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::exchange::{self, Binding};
use super::{blocking, fs_error, refused, store, FilesystemBroker};
use crate::broker::redis::{parse_envelope, publish_envelope};
use crate::broker::{BrokerError, ExchangeSpec, QueueSpec};
use crate::protocol::{OutgoingMessage, RawMessage};

/// How often a subscription looks for new files at the most: remote-control replies are
/// awaited for about a second, so kombu's one-second polling would be too slow.
const SUBSCRIPTION_POLL: Duration = Duration::from_millis(100);

/// Messages a subscription may have waiting for its reader.
const CHANNEL_CAPACITY: usize = 64;

/// Writes `message` to every queue bound to `exchange` that its routing key reaches.
pub(super) async fn publish_to(
    broker: &FilesystemBroker,
    exchange: &ExchangeSpec,
    message: &OutgoingMessage,
) -> Result<(), BrokerError> {
    let control = broker.options.control_folder.clone();
    let folder = broker.options.data_folder_out.clone();
    let (name, kind) = (exchange.name.clone(), exchange.kind.clone());
    let routing_key = message.routing_key.clone();
    let payload = publish_envelope(message);
    blocking(move || {
        let table = exchange::read_table(&control, &name).map_err(|e| refused(e.to_string()))?;
        let queues = exchange::lookup(&table, &kind, &routing_key);
        if queues.is_empty() {
            tracing::debug!(exchange = %name, routing_key = %routing_key, "no queue bound: message dropped");
        }
        for q in &queues {
            store::put(&folder, q, &payload)
                .map_err(|e| fs_error("cannot write message to", &folder, e))?;
        }
        Ok(())
    })
    .await?;
    if broker.options.data_folder_out == broker.options.data_folder_in {
        broker.wake.notify_waiters();
    }
    Ok(())
}

/// The binding a subscribed queue makes (kombu writes a regex for topic bindings only).
fn binding_of(queue: &QueueSpec) -> Binding {
    let pattern = if queue.exchange_type == "topic" {
        exchange::topic_pattern(&queue.routing_key)
    } else {
        String::new()
    };
    Binding {
        routing_key: queue.routing_key.clone(),
        pattern,
        queue: queue.name.clone(),
    }
}

/// Binds `queue` (before returning, so that a reply published right after finds it) and
/// hands its messages over until the receiver is dropped.
pub(super) async fn subscribe(
    broker: Arc<FilesystemBroker>,
    queue: QueueSpec,
) -> Result<mpsc::Receiver<RawMessage>, BrokerError> {
    super::naming::check_queue_name(&queue.name).map_err(|e| refused(e.to_string()))?;
    let unbind = Unbind {
        control: broker.options.control_folder.clone(),
        exchange: queue.exchange.clone(),
        binding: binding_of(&queue),
    };
    let (control, exchange_name, binding) = (
        unbind.control.clone(),
        unbind.exchange.clone(),
        unbind.binding.clone(),
    );
    blocking(move || {
        exchange::bind(&control, &exchange_name, &binding).map_err(|e| refused(e.to_string()))
    })
    .await?;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    // The guard goes with the task, polled or not: the binding leaves with the subscription.
    tokio::spawn(take_messages(broker, queue, tx, unbind));
    Ok(rx)
}

/// The subscription's loop: every file of the queue is taken, read, removed and handed on;
/// garbage is removed and logged. Ends when the receiver is gone; `_unbind` then removes
/// the binding.
async fn take_messages(
    broker: Arc<FilesystemBroker>,
    queue: QueueSpec,
    tx: mpsc::Sender<RawMessage>,
    _unbind: Unbind,
) {
    let poll = broker.options.polling_interval.min(SUBSCRIPTION_POLL);
    while !tx.is_closed() {
        let b = Arc::clone(&broker);
        let name = queue.name.clone();
        let taken = tokio::task::spawn_blocking(move || take_all(&b, &name)).await;
        let messages = match taken {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                tracing::warn!(queue = %queue.name, "cannot read the subscription's messages: {e}");
                VecDeque::new()
            }
            Err(e) => {
                tracing::warn!(queue = %queue.name, "subscription file task failed: {e}");
                VecDeque::new()
            }
        };
        for raw in messages {
            if tx.send(raw).await.is_err() {
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = tx.closed() => {}
        }
    }
}

/// Removes a subscription's binding when its loop ends, or is dropped with the runtime (a
/// command-line client exits as soon as it has its replies). A small file rewritten in
/// place, so done right there.
struct Unbind {
    control: std::path::PathBuf,
    exchange: String,
    binding: Binding,
}

impl Drop for Unbind {
    fn drop(&mut self) {
        if let Err(e) = exchange::unbind(&self.control, &self.exchange, &self.binding) {
            tracing::debug!("cannot remove a subscription's binding: {e}");
        }
    }
}

/// Takes the oldest message files of `queue` there are now (up to [`CHANNEL_CAPACITY`]).
fn take_all(broker: &FilesystemBroker, queue: &str) -> Result<VecDeque<RawMessage>, BrokerError> {
    let folder = &broker.options.data_folder_in;
    let names =
        store::list(folder, &[queue.to_owned()]).map_err(|e| fs_error("cannot list", folder, e))?;
    let mut messages = VecDeque::new();
    // At most a channel's worth a pass: a flooded queue is read a bounded batch at a time.
    for name in names.into_iter().take(CHANNEL_CAPACITY) {
        let Ok(Some(claimed)) = store::claim(folder, &name) else {
            continue;
        };
        let read = store::read(&claimed.path(), broker.options.max_message_bytes);
        if let Err(e) = store::settle(&claimed, None) {
            tracing::warn!(file = %name, "cannot remove message file: {e}");
        }
        match read {
            Ok(store::Contents::Bytes(raw)) => match parse_envelope(&raw) {
                Ok(env) => messages.push_back(env.message),
                Err(bad) => {
                    tracing::warn!(queue, file = %name, error = %bad.error, "broadcast message that is not one: skipped")
                }
            },
            Ok(store::Contents::TooLarge(size)) => {
                tracing::warn!(queue, file = %name, size, "broadcast message over the size limit: skipped")
            }
            Err(e) => tracing::warn!(queue, file = %name, "cannot read broadcast message: {e}"),
        }
    }
    Ok(messages)
}
