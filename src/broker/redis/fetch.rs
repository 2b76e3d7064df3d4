//! The fetch loop: fills the prefetch window from the queues in kombu's order, a batch per
//! round trip, and blocks on `BRPOP` only when every queue is empty. A lost connection is
//! made anew (see [`Link`]) and fetching goes on; nothing taken from a queue is dropped.
//! The consumed set is looked at before every fetch: a queue added is bound and polled, a
//! queue cancelled is polled no more.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use super::envelope;
use super::keys::Keys;
use super::settle::ScriptCall;
use crate::broker::{Delivery, PrefetchPermit, PrefetchWindow, QueueSpec};
use crate::redis_client::lane::SettleLane;
use crate::redis_client::link::{Failure, Link, LinkError};
use crate::redis_client::spin::Spinner;

/// Most messages taken in one round trip.
const MAX_BATCH: usize = 256;

/// Messages at least this large make the connections that carried them be made anew after
/// (see [`Link::recycle`]).
const RECYCLE_AFTER: usize = 8 * 1024 * 1024;

/// How often a fetch that keeps failing for the same non-connection reason is logged.
const PERMANENT_REPORT_EVERY: Duration = Duration::from_secs(30);

/// State of one consumer.
pub(super) struct Fetcher {
    pub link: Arc<Link>,
    pub blocking: Arc<Link>,
    pub keys: Keys,
    pub call: ScriptCall,
    pub queues: Vec<String>,
    /// The consumed set, as the worker changes it.
    pub consumed: watch::Receiver<Vec<QueueSpec>>,
    /// The queues bound on every new connection (the broker's list): an added one joins it.
    pub bound: Arc<Mutex<Vec<QueueSpec>>>,
    pub window: PrefetchWindow,
    pub tx: mpsc::Sender<Delivery>,
    pub lane: Arc<SettleLane>,
    pub stop: watch::Receiver<bool>,
    pub brpop_timeout: f64,
    /// How fetch replies are awaited (see `redis_client::spin`).
    pub spinner: Spinner,
    /// Set when fetching stops for good (the connection could not be restored).
    pub fatal: Arc<OnceLock<String>>,
    /// `rcelery_max_message_bytes` (0: no limit).
    pub max_message_bytes: usize,
}

/// Why a fetch did not bring messages.
enum FetchError {
    /// A command failed; the link knows (and reconnects if it must).
    Command(Failure, redis::RedisError),
    /// The link gave up.
    Link(LinkError),
    /// Stopped while waiting.
    Stopped,
}

impl Fetcher {
    /// Runs until stopped, until the receiver goes away, or until the link gives up.
    pub async fn run(mut self) {
        let mut poll_keys = self.keys.poll_keys(&self.queues);
        let mut last_permanent: Option<Instant> = None;
        loop {
            if *self.stop.borrow() {
                break;
            }
            let permits = tokio::select! {
                p = self.window.acquire_up_to(MAX_BATCH) => p,
                _ = self.stop.changed() => break,
            };
            if permits.is_empty() {
                break;
            }
            if self.refresh().await {
                poll_keys = self.keys.poll_keys(&self.queues);
            }
            if self.queues.is_empty() {
                // Every queue cancelled: wait for one to be added.
                drop(permits);
                tokio::select! {
                    changed = self.consumed.changed() => if changed.is_err() {
                        let _ = self.stop.changed().await;
                        break;
                    },
                    _ = self.stop.changed() => break,
                }
                continue;
            }
            let fetched = match self.fetch_batch(&poll_keys, permits.len()).await {
                Ok(items) if items.is_empty() => {
                    self.block_for_one(&poll_keys, permits.len()).await
                }
                other => other,
            };
            let items = match fetched {
                Ok(items) => items,
                Err(FetchError::Stopped) => break,
                Err(FetchError::Link(e)) => {
                    tracing::error!(error = %e, "giving up on the broker: {e}");
                    let _ = self.fatal.set(e.to_string());
                    break;
                }
                Err(FetchError::Command(class, e)) => {
                    if class == Failure::Permanent
                        && last_permanent.is_none_or(|t| t.elapsed() >= PERMANENT_REPORT_EVERY)
                    {
                        tracing::error!(error = %e, "fetching from the broker failed: {e}; retrying");
                        last_permanent = Some(Instant::now());
                    }
                    let wait = if class == Failure::Permanent {
                        Duration::from_secs(1)
                    } else {
                        self.link.backoff()
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stop.changed() => break,
                    }
                    continue;
                }
            };
            let last_queue = items.last().map(|(q, _)| *q);
            if !self.deliver(items, permits).await {
                break;
            }
            // kombu's round robin: the queue just served goes to the end of the cycle.
            if let Some(q) = last_queue {
                if self.queues.len() > 1 && q < self.queues.len() {
                    let served = self.queues.remove(q);
                    self.queues.push(served);
                    poll_keys = self.keys.poll_keys(&self.queues);
                }
            }
        }
        tracing::debug!("fetch loop stopped");
    }

    /// Takes the consumed set's changes, if any: keeps the current polling order of the
    /// queues still consumed, appends those added (bound first, as kombu declares a queue it
    /// starts consuming), drops those cancelled. True when the list changed.
    async fn refresh(&mut self) -> bool {
        if !self.consumed.has_changed().unwrap_or(false) {
            return false;
        }
        let wanted = self.consumed.borrow_and_update().clone();
        let added: Vec<QueueSpec> = wanted
            .iter()
            .filter(|q| !self.queues.contains(&q.name))
            .cloned()
            .collect();
        if let Some(pipe) = super::bind_pipeline(&self.keys, &added) {
            let bound = self
                .link
                .run(|mut c| {
                    let pipe = &pipe;
                    async move { pipe.query_async::<()>(&mut c).await }
                })
                .await;
            if let Err(e) = bound {
                tracing::warn!(error = %e, "could not bind an added queue; it is consumed all the same");
            }
        }
        if let Ok(mut bound) = self.bound.lock() {
            for q in &added {
                if !bound.iter().any(|b| b.name == q.name) {
                    bound.push(q.clone());
                }
            }
        }
        self.queues
            .retain(|name| wanted.iter().any(|q| &q.name == name));
        self.queues.extend(added.into_iter().map(|q| q.name));
        tracing::debug!(queues = ?self.queues, "consumed queues changed");
        true
    }

    /// The main link's connection, or why there is none.
    async fn connection(
        &mut self,
        link: &Link,
    ) -> Result<(u64, MultiplexedConnection), FetchError> {
        tokio::select! {
            c = link.get() => c.map_err(FetchError::Link),
            _ = self.stop.changed() => Err(FetchError::Stopped),
        }
    }

    /// One atomic pop-and-record of up to `max` messages, carrying the result writes and acks
    /// queued since the last fetch (the acks freed the slots this fetch fills). What the lane
    /// gave stays queued if the call fails.
    async fn fetch_batch(
        &mut self,
        poll_keys: &[String],
        max: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, FetchError> {
        let link = Arc::clone(&self.link);
        let (generation, mut conn) = self.connection(&link).await?;
        let lane = Arc::clone(&self.lane);
        let taken = lane.take().await;
        let cmd = self
            .call
            .command(&lane, &taken, poll_keys, self.queues.len(), max);
        let reply = self.call.invoke(&mut conn, &cmd);
        match self.spinner.wait(reply).await {
            Ok(flat) => {
                if taken
                    .writes
                    .iter()
                    .any(|w| w.payload.len() >= RECYCLE_AFTER)
                {
                    link.recycle();
                }
                taken.sent();
                link.succeeded();
                Ok(pairs(flat))
            }
            Err(e) => {
                taken.failed(&lane);
                Err(FetchError::Command(link.failed(generation, &e), e))
            }
        }
    }

    /// Waits (up to the BRPOP timeout) for a message, puts it back at the head of its list
    /// and fetches it through the atomic script, so it is recorded as unacked like any other.
    async fn block_for_one(
        &mut self,
        poll_keys: &[String],
        max: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, FetchError> {
        let blocking = Arc::clone(&self.blocking);
        let (generation, mut conn) = self.connection(&blocking).await?;
        let mut brpop = redis::cmd("BRPOP");
        brpop.arg(poll_keys).arg(self.brpop_timeout);
        // Not cut short at shutdown: the server may already have popped a message, and its
        // reply is the only copy. BRPOP returns within `brpop_timeout` anyway.
        let popped: Result<Option<(String, Vec<u8>)>, _> = brpop.query_async(&mut conn).await;
        let popped = match popped {
            Ok(p) => {
                blocking.succeeded();
                p
            }
            Err(e) => return Err(FetchError::Command(blocking.failed(generation, &e), e)),
        };
        let Some((key, message)) = popped else {
            return Ok(Vec::new());
        };
        // The message exists only here now: put it back, however long that takes.
        self.link
            .run(|mut c| {
                let (key, message) = (&key, &message);
                async move { redis::cmd("RPUSH").arg(key).arg(message).query_async::<()>(&mut c).await }
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, queue = %key, "a message taken by BRPOP could not be put back: {}", String::from_utf8_lossy(&message[..message.len().min(256)]));
                FetchError::Link(e)
            })?;
        if *self.stop.borrow() || self.consumed.has_changed().unwrap_or(false) {
            // The set changed while BRPOP waited: the message is back at the head of its
            // list, and the next round fetches from the new set.
            return Ok(Vec::new());
        }
        self.fetch_batch(poll_keys, max).await
    }

    /// Hands the messages to the worker, one permit each; returns false if the worker is gone.
    async fn deliver(
        &mut self,
        items: Vec<(usize, Vec<u8>)>,
        mut permits: Vec<PrefetchPermit>,
    ) -> bool {
        if items.iter().any(|(_, raw)| raw.len() >= RECYCLE_AFTER) {
            // Both connections carried this message: fresh ones give their buffers back.
            self.link.recycle();
            self.blocking.recycle();
        }
        for (queue_index, raw) in items {
            let permit = permits.pop();
            let queue = self.queues.get(queue_index).cloned().unwrap_or_default();
            let limit = self.max_message_bytes;
            let parsed = if limit > 0 && raw.len() > limit {
                envelope::parse_too_large(&raw, limit)
            } else {
                envelope::parse(&raw)
            };
            if raw.len() >= crate::memory::LARGE {
                crate::memory::large_allocation_done();
            }
            match parsed {
                Ok(env) => {
                    // The raw bytes are not needed past the parse: free them before waiting.
                    drop(raw);
                    let delivery = Delivery {
                        raw: env.message,
                        tag: env.delivery_tag.unwrap_or_default(),
                        queue,
                        permit,
                    };
                    if self.tx.send(delivery).await.is_err() {
                        return false;
                    }
                }
                Err(bad) => {
                    tracing::error!(
                        queue = %queue,
                        error = %bad.error,
                        message = %String::from_utf8_lossy(&raw[..raw.len().min(256)]),
                        "Received and deleted unknown message. Wrong destination?!?"
                    );
                    if let Some(tag) = bad.delivery_tag {
                        self.lane.push_ack(tag);
                    }
                }
            }
        }
        true
    }
}

/// Turns the script's flat `[queue_index, message, ...]` reply into pairs.
fn pairs(flat: Vec<redis::Value>) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(idx), Some(msg)) = (it.next(), it.next()) {
        let idx = match idx {
            redis::Value::Int(i) => usize::try_from(i).unwrap_or(0),
            _ => 0,
        };
        if let redis::Value::BulkString(bytes) = msg {
            out.push((idx, bytes));
        }
    }
    out
}
