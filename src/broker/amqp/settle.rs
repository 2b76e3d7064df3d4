//! Settling deliveries by tag: `basic_ack`, `basic_reject` with or without requeue, in the
//! order the worker asked, on the channel that delivered them. A tag is
//! `<generation>.<delivery tag>`; the delivery's [`Acker`] knows its channel, so settling a
//! message whose channel has closed since (a lost connection: the server has given the
//! message back already) is a no-op, never an error that would close the new channel.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Acker;
use tokio::sync::{mpsc, oneshot};

/// What the settle task does, in order.
pub(super) enum SettleOp {
    /// `basic_ack`.
    Ack(String, Acker),
    /// `basic_reject(requeue)`.
    Reject(String, Acker, bool),
    /// Answers once everything before it has been sent.
    Flush(oneshot::Sender<()>),
}

/// The ackers of unsettled deliveries, by tag.
#[derive(Default)]
pub(super) struct Ackers {
    by_tag: Mutex<HashMap<String, Acker>>,
}

impl Ackers {
    /// The tag of delivery `delivery_tag` on the session of `generation`.
    pub fn tag(generation: u64, delivery_tag: u64) -> String {
        format!("{generation}.{delivery_tag}")
    }

    /// The session generation a tag of [`Ackers::tag`] belongs to.
    pub fn generation(tag: &str) -> Option<u64> {
        tag.split_once('.').and_then(|(g, _)| g.parse().ok())
    }

    /// Keeps the acker of a delivery until it is settled.
    pub fn insert(&self, tag: String, acker: Acker) {
        lock(&self.by_tag).insert(tag, acker);
    }

    /// Takes the acker of `tag` (`None`: unknown or settled already).
    pub fn take(&self, tag: &str) -> Option<Acker> {
        lock(&self.by_tag).remove(tag)
    }
}

/// The most operations sent in one go.
const BATCH: usize = 256;

/// How long a batch waits for lapin to say its frames were written. Every frame of a batch is
/// handed to the connection when the batch is first polled, so giving up the wait loses
/// nothing; it only keeps an ack whose connection died under it (lapin then never answers)
/// from holding up every later ack, on the new connection too, which would leave the prefetch
/// window full and the worker idle.
const SETTLE_WAIT: Duration = Duration::from_secs(3);

/// Runs the settle operations until the sender is dropped. What has queued up meanwhile is
/// sent in one go (up to [`BATCH`]): each call hands its frame to lapin's connection when first
/// polled, in order, so the frames leave in the order asked, and the batch costs one wait for
/// the connection instead of one per message.
pub(super) async fn run(mut ops: mpsc::UnboundedReceiver<SettleOp>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while ops.recv_many(&mut batch, BATCH).await > 0 {
        let sends = batch.drain(..).filter_map(|op| match op {
            SettleOp::Ack(tag, acker) => Some(
                async move {
                    let result = acker.ack(BasicAckOptions::default()).await;
                    report(&tag, "ack", result)
                }
                .boxed(),
            ),
            SettleOp::Reject(tag, acker, requeue) => Some(
                async move {
                    let result = acker.reject(BasicRejectOptions { requeue }).await;
                    report(&tag, "reject", result)
                }
                .boxed(),
            ),
            SettleOp::Flush(done) => {
                flushes.push(done);
                None
            }
        });
        let sends = sends.collect::<Vec<_>>();
        let count = sends.len();
        if tokio::time::timeout(SETTLE_WAIT, futures::future::join_all(sends))
            .await
            .is_err()
        {
            tracing::warn!(
                count,
                "acks/rejects were handed to the broker connection but not confirmed written within {}s (the connection was probably lost under them); going on",
                SETTLE_WAIT.as_secs()
            );
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Settles one tag now (shutdown's restore); true when it reached the channel.
pub(super) async fn reject_now(tag: &str, acker: Acker, requeue: bool) -> bool {
    let reject = acker.reject(BasicRejectOptions { requeue });
    let Ok(result) = tokio::time::timeout(SETTLE_WAIT, reject).await else {
        tracing::debug!(
            delivery_tag = tag,
            "reject not confirmed written: the connection was lost"
        );
        return false;
    };
    let sent = matches!(result, Ok(true));
    report(tag, "reject", result);
    sent
}

fn report(tag: &str, what: &str, result: Result<bool, lapin::Error>) {
    match result {
        Ok(true) => {}
        // The channel closed since the delivery (a lost connection): the server has put the
        // message back already, and another delivery of it carries a new tag.
        Ok(false) => tracing::debug!(
            delivery_tag = tag,
            "{what} of a delivery from a closed channel: nothing to do"
        ),
        Err(e) => {
            tracing::debug!(delivery_tag = tag, error = %e, "{what} not sent: the channel closed")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
