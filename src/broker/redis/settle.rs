//! Batched settlement. Acks (and, when the result backend shares the server, result writes)
//! wait in the [`SettleLane`]: the fetch loop sends them inside its next fetch script (an ack
//! frees a prefetch slot, so a fetch follows at once), and the settlement task sends whatever
//! the fetch loop does not pick up, through the same script with nothing to pop. Requeues are
//! batched here. Whatever fails to get through (the connection is down) is kept and sent
//! again after the link's backoff, so no ack, result or requeue is dropped.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use super::keys::Keys;
use super::restore::{now_secs, restore_tags};
use super::Scripts;
use crate::redis_client::lane::{SettleLane, Taken};
use crate::redis_client::link::{Failure, Link};

/// One settlement request other than a plain ack.
#[derive(Debug)]
pub(super) enum SettleOp {
    /// Put back at the end of its queue (reject with requeue).
    Requeue(String),
    /// Reply once every ack and requeue issued before this has reached Redis.
    Flush(oneshot::Sender<()>),
}

/// Most requeues in one batch.
const MAX_REQUEUES: usize = 2048;

/// What a fetch-script call needs besides the lane's snapshot.
#[derive(Clone)]
pub(super) struct ScriptCall {
    pub keys: Keys,
    pub scripts: Scripts,
    /// The broker's database (the script selects it back after result writes).
    pub db: i64,
    /// The server has `RPOP key count` (Redis 6.2+).
    pub counted_pop: bool,
    /// Bytes after which a fetch takes no more messages (0: no budget).
    pub batch_bytes: usize,
}

impl ScriptCall {
    /// The `EVALSHA` of the fetch script: writes and acks from `taken`, then a pop of up to
    /// `max` messages from `poll_keys` (`queues_per_step` queues per priority step).
    pub fn command(
        &self,
        lane: &SettleLane,
        taken: &Taken<'_>,
        poll_keys: &[String],
        queues_per_step: usize,
        max: usize,
    ) -> redis::Cmd {
        let writes = if taken.writes.is_empty() {
            None
        } else {
            lane.target()
        };
        let nw = if writes.is_some() {
            taken.writes.len()
        } else {
            0
        };
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.scripts.fetch.get_hash())
            .arg(2 + poll_keys.len() + nw)
            .arg(&self.keys.unacked)
            .arg(&self.keys.unacked_index)
            .arg(poll_keys);
        if writes.is_some() {
            for w in &taken.writes {
                cmd.arg(&w.key);
            }
        }
        cmd.arg(max)
            .arg(now_secs())
            .arg(queues_per_step)
            .arg(if self.counted_pop { "1" } else { "0" })
            .arg(taken.acks.len())
            .arg(nw)
            .arg(self.batch_bytes);
        if let Some(t) = writes {
            cmd.arg(t.db)
                .arg(self.db)
                .arg(t.expires)
                .arg(&t.success_marker)
                .arg(t.marker_within);
        }
        cmd.arg(&taken.acks);
        if writes.is_some() {
            for w in &taken.writes {
                cmd.arg(&w.payload);
            }
        }
        cmd
    }

    /// Runs a fetch-script command, loading the script again if the server lost it (a
    /// restart) and retrying once.
    pub async fn invoke(
        &self,
        conn: &mut MultiplexedConnection,
        cmd: &redis::Cmd,
    ) -> Result<Vec<redis::Value>, redis::RedisError> {
        match cmd.query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.scripts.load(conn).await?;
                cmd.query_async(conn).await
            }
            other => other,
        }
    }
}

/// Runs until every sender of `rx` is dropped.
pub(super) async fn run(
    link: Arc<Link>,
    call: ScriptCall,
    lane: Arc<SettleLane>,
    mut rx: mpsc::UnboundedReceiver<SettleOp>,
) {
    let mut requeues = Vec::new();
    let mut flushes = Vec::new();
    // Set while something failed to get through: retry after this long.
    let mut retry_in: Option<Duration> = None;
    loop {
        let retry = async {
            match retry_in {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
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
                    if requeues.len() < MAX_REQUEUES {
                        next = rx.try_recv().ok();
                    }
                }
            }
            _ = lane.queued() => {
                // Let the fetch loop, woken by the same acks' freed slots, carry them first.
                tokio::task::yield_now().await;
            }
            _ = retry => {}
        }
        retry_in = None;
        if !send_queued(&link, &call, &lane).await {
            retry_in = Some(link.backoff());
        }
        if !requeues.is_empty() {
            match send_requeues(&link, &call, &requeues).await {
                Ok(()) => requeues.clear(),
                Err(Failure::Permanent) => {
                    tracing::error!(count = requeues.len(), "the broker refused to requeue messages; they will be redelivered after the visibility timeout");
                    requeues.clear();
                }
                Err(_) => retry_in = Some(link.backoff()),
            }
        }
        if !flushes.is_empty() && retry_in.is_none() {
            // Wait out a snapshot the fetch loop has on its way.
            lane.wait_sent().await;
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
    send_queued(&link, &call, &lane).await;
}

/// Sends everything queued in the lane, in snapshots, without fetching. False if a call
/// failed (what it carried is back in the lane).
async fn send_queued(link: &Link, call: &ScriptCall, lane: &SettleLane) -> bool {
    loop {
        let Some((generation, mut conn)) = link_connection(link).await else {
            return false;
        };
        let taken = lane.take().await;
        if taken.is_empty() {
            return true;
        }
        let cmd = call.command(lane, &taken, &[], 0, 0);
        match call.invoke(&mut conn, &cmd).await {
            Ok(_) => {
                link.succeeded();
                taken.sent();
            }
            Err(e) => {
                let (acks, writes) = (taken.acks.len(), taken.writes.len());
                taken.failed(lane);
                if link.failed(generation, &e) == Failure::Permanent {
                    tracing::error!(error = %e, acks, results = writes, "the broker refused acks and results; retrying");
                } else {
                    tracing::debug!(error = %e, acks, results = writes, "acks and results not sent; they stay queued");
                }
                return false;
            }
        }
    }
}

/// The link's connection if it has one or can make one now; `None` while it is down (the
/// caller retries later rather than waiting here, so flushes and requeues are not held up).
async fn link_connection(link: &Link) -> Option<(u64, MultiplexedConnection)> {
    match tokio::time::timeout(Duration::from_secs(1), link.get()).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    }
}

async fn send_requeues(link: &Link, call: &ScriptCall, tags: &[String]) -> Result<(), Failure> {
    let Some((generation, mut conn)) = link_connection(link).await else {
        return Err(Failure::Connection);
    };
    match restore_tags(&mut conn, &call.keys, &call.scripts, tags, true).await {
        Ok(_) => {
            link.succeeded();
            Ok(())
        }
        Err(e) => Err(link.failed(generation, &e)),
    }
}
