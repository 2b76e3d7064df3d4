//! The mailbox consumer: subscribes to this node's pidbox queue and hands each message to
//! the dispatcher, one at a time, as Celery's pidbox consumer does. Replies are published
//! from their own tasks so that a slow broker does not hold the next command.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::dispatch;
use super::Shared;

/// Starts the consumer (nothing when `worker_enable_remote_control` is off). It ends when the
/// worker's shutdown starts.
pub(crate) fn spawn(shared: Arc<Shared>) -> Option<JoinHandle<()>> {
    let control = &shared.settings.control;
    if !control.enabled {
        tracing::info!("remote control disabled (worker_enable_remote_control)");
        return None;
    }
    let queue = control.mailbox.node_queue(&shared.settings.hostname);
    Some(tokio::spawn(async move {
        let name = queue.name.clone();
        let subscribed = tokio::select! {
            s = Arc::clone(&shared.broker).subscribe(queue) => s,
            _ = shared.shutdown.cancelled() => return,
        };
        let mut mailbox = match subscribed {
            Ok(rx) => rx,
            Err(e @ crate::broker::BrokerError::Refused { .. }) => {
                tracing::info!(error = %e, "remote control unavailable on this transport");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, queue = %name, "remote control unavailable: cannot subscribe to the mailbox");
                return;
            }
        };
        tracing::debug!(queue = %name, "remote control mailbox ready");
        loop {
            let raw = tokio::select! {
                m = mailbox.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = shared.shutdown.cancelled() => break,
            };
            if let Some((reply_to, message)) = dispatch::handle(&shared, &raw).await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    dispatch::send_reply(&shared, &reply_to, &message).await;
                });
            }
        }
    }))
}
