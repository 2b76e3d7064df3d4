//! Batched settlement. Acks are buffered in [`PendingAcks`]: the fetch loop sends them inside
//! its next fetch script (an ack frees a prefetch slot, so a fetch follows at once), and the
//! settlement task sends whatever the fetch loop does not pick up. Requeues are batched here.

use std::sync::Mutex;

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot, Notify};

use super::keys::Keys;
use super::restore::restore_tags;
use super::Scripts;

/// One settlement request other than a plain ack.
#[derive(Debug)]
pub(super) enum SettleOp {
    /// Put back at the end of its queue (reject with requeue).
    Requeue(String),
    /// Reply once every ack and requeue issued before this has reached Redis.
    Flush(oneshot::Sender<()>),
}

/// Most tags in one command.
pub(super) const MAX_BATCH: usize = 2048;

/// Acks issued but not yet sent, shared by the fetch loop and the settlement task.
#[derive(Debug, Default)]
pub(super) struct PendingAcks {
    tags: Mutex<Vec<String>>,
    wake: Notify,
    /// Held while a batch of acks is on its way to Redis, so a flush can wait for it.
    sending: tokio::sync::Mutex<()>,
}

impl PendingAcks {
    /// Buffers an ack.
    pub fn push(&self, tag: String) {
        self.lock().push(tag);
        self.wake.notify_one();
    }

    /// Takes up to [`MAX_BATCH`] buffered acks, with the guard to hold until they are sent.
    pub async fn take(&self) -> (Vec<String>, Option<tokio::sync::MutexGuard<'_, ()>>) {
        if self.lock().is_empty() {
            return (Vec::new(), None);
        }
        let guard = self.sending.lock().await;
        let mut tags = self.lock();
        let keep = tags.len().saturating_sub(MAX_BATCH);
        let taken = tags.split_off(keep);
        drop(tags);
        if !taken.is_empty() {
            (taken, Some(guard))
        } else {
            (taken, None)
        }
    }

    /// Puts back acks whose sending failed, to go with the next attempt.
    pub fn put_back(&self, mut tags: Vec<String>) {
        let mut pending = self.lock();
        tags.append(&mut pending);
        *pending = tags;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.tags.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs until every sender of `rx` is dropped.
pub(super) async fn run(
    mut conn: MultiplexedConnection,
    keys: Keys,
    scripts: Scripts,
    acks: std::sync::Arc<PendingAcks>,
    mut rx: mpsc::UnboundedReceiver<SettleOp>,
) {
    let mut requeues = Vec::new();
    let mut flushes = Vec::new();
    loop {
        tokio::select! {
            op = rx.recv() => {
                let mut next = match op {
                    Some(op) => Some(op),
                    None => break,
                };
                while let Some(op) = next.take() {
                    match op {
                        SettleOp::Requeue(tag) => requeues.push(tag),
                        SettleOp::Flush(done) => flushes.push(done),
                    }
                    if requeues.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
            }
            _ = acks.wake.notified() => {
                // Let the fetch loop, woken by the same acks' freed slots, carry them first.
                tokio::task::yield_now().await;
            }
        }
        send_acks(&mut conn, &keys, &acks).await;
        if !requeues.is_empty() {
            if let Err(e) = restore_tags(&mut conn, &keys, &scripts, &requeues, true).await {
                tracing::error!(error = %e, count = requeues.len(), "failed to requeue messages; they will be redelivered after the visibility timeout");
            }
            requeues.clear();
        }
        if !flushes.is_empty() {
            // Wait out acks the fetch loop has on their way.
            drop(acks.sending.lock().await);
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
    send_acks(&mut conn, &keys, &acks).await;
}

async fn send_acks(conn: &mut MultiplexedConnection, keys: &Keys, acks: &PendingAcks) {
    loop {
        let (tags, guard) = acks.take().await;
        if tags.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZREM")
            .arg(&keys.unacked_index)
            .arg(&tags)
            .ignore()
            .cmd("HDEL")
            .arg(&keys.unacked)
            .arg(&tags)
            .ignore();
        if let Err(e) = pipe.query_async::<()>(conn).await {
            tracing::error!(error = %e, count = tags.len(), "failed to ack messages; they will be redelivered after the visibility timeout");
        }
        drop(guard);
    }
}
