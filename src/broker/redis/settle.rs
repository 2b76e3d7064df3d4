//! Batched settlement: acks and rejects issued by many tasks are sent as one pipeline per
//! round trip instead of one per message.

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use super::keys::Keys;
use super::restore::restore_tags;
use super::Scripts;

/// One settlement request.
#[derive(Debug)]
pub(super) enum SettleOp {
    /// Remove from `unacked` (ack, or reject without requeue).
    Ack(String),
    /// Put back at the end of its queue (reject with requeue).
    Requeue(String),
    /// Reply once everything before this has been sent.
    Flush(oneshot::Sender<()>),
}

/// Most tags in one pipeline.
const MAX_BATCH: usize = 2048;

/// Runs until every sender is dropped.
pub(super) async fn run(
    mut conn: MultiplexedConnection,
    keys: Keys,
    scripts: Scripts,
    mut rx: mpsc::UnboundedReceiver<SettleOp>,
) {
    let mut acks = Vec::new();
    let mut requeues = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                SettleOp::Ack(tag) => acks.push(tag),
                SettleOp::Requeue(tag) => requeues.push(tag),
                SettleOp::Flush(done) => flushes.push(done),
            }
            if acks.len() + requeues.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !acks.is_empty() {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("ZREM")
                .arg(&keys.unacked_index)
                .arg(&acks)
                .ignore()
                .cmd("HDEL")
                .arg(&keys.unacked)
                .arg(&acks)
                .ignore();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::error!(error = %e, count = acks.len(), "failed to ack messages; they will be redelivered after the visibility timeout");
            }
            acks.clear();
        }
        if !requeues.is_empty() {
            if let Err(e) = restore_tags(&mut conn, &keys, &scripts, &requeues, true).await {
                tracing::error!(error = %e, count = requeues.len(), "failed to requeue messages; they will be redelivered after the visibility timeout");
            }
            requeues.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
