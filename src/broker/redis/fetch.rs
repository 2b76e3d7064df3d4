//! The fetch loop: fills the prefetch window from the queues in kombu's order, a batch per
//! round trip, and blocks on `BRPOP` only when every queue is empty.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use super::envelope;
use super::keys::Keys;
use super::settle::ScriptCall;
use crate::broker::{Delivery, PrefetchPermit, PrefetchWindow};
use crate::redis_client::lane::{SettleLane, Taken};
use crate::redis_client::spin::Spinner;

/// Most messages taken in one round trip.
const MAX_BATCH: usize = 256;

/// State of one consumer.
pub(super) struct Fetcher {
    pub conn: MultiplexedConnection,
    pub blocking: MultiplexedConnection,
    pub keys: Keys,
    pub call: ScriptCall,
    pub queues: Vec<String>,
    pub window: PrefetchWindow,
    pub tx: mpsc::Sender<Delivery>,
    pub lane: std::sync::Arc<SettleLane>,
    pub stop: watch::Receiver<bool>,
    pub brpop_timeout: f64,
    /// How fetch replies are awaited (see `redis_client::spin`).
    pub spinner: Spinner,
    /// `rcelery_max_message_bytes` (0: no limit).
    pub max_message_bytes: usize,
}

impl Fetcher {
    /// Runs until stopped or until the receiver goes away.
    pub async fn run(mut self) {
        let mut poll_keys = self.keys.poll_keys(&self.queues);
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
            let items = match self.fetch_batch(&poll_keys, permits.len()).await {
                Ok(items) if !items.is_empty() => items,
                Ok(_) => match self.block_for_one(&poll_keys, permits.len()).await {
                    Ok(items) => items,
                    Err(e) => {
                        self.backoff(&e).await;
                        continue;
                    }
                },
                Err(e) => {
                    self.backoff(&e).await;
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

    async fn backoff(&self, e: &redis::RedisError) {
        tracing::warn!(error = %e, "cannot fetch from broker; retrying in 1s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// One atomic pop-and-record of up to `max` messages, carrying the result writes and acks
    /// queued since the last fetch (the acks freed the slots this fetch fills).
    async fn fetch_batch(
        &mut self,
        poll_keys: &[String],
        max: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, redis::RedisError> {
        let lane = std::sync::Arc::clone(&self.lane);
        let taken = lane.take().await;
        self.fetch_with(poll_keys, max, &lane, taken).await
    }

    async fn fetch_with(
        &mut self,
        poll_keys: &[String],
        max: usize,
        lane: &SettleLane,
        taken: Taken<'_>,
    ) -> Result<Vec<(usize, Vec<u8>)>, redis::RedisError> {
        let cmd = self.call.command(lane, &taken, poll_keys, self.queues.len(), max);
        let reply = self.call.invoke(&mut self.conn, &cmd);
        match self.spinner.wait(reply).await {
            Ok(flat) => {
                taken.sent();
                Ok(pairs(flat))
            }
            Err(e) => {
                taken.failed(lane, &e.to_string());
                Err(e)
            }
        }
    }

    /// Waits (up to the BRPOP timeout) for a message, puts it back at the head of its list
    /// and fetches it through the atomic script, so it is recorded as unacked like any other.
    async fn block_for_one(
        &mut self,
        poll_keys: &[String],
        max: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, redis::RedisError> {
        let mut brpop = redis::cmd("BRPOP");
        brpop.arg(poll_keys).arg(self.brpop_timeout);
        let popped: Option<(String, Vec<u8>)> = tokio::select! {
            r = brpop.query_async(&mut self.blocking) => r?,
            _ = self.stop.changed() => None,
        };
        let Some((key, message)) = popped else { return Ok(Vec::new()) };
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(&key).arg(&message).ignore();
        if *self.stop.borrow() {
            pipe.query_async::<()>(&mut self.conn).await?;
            return Ok(Vec::new());
        }
        pipe.query_async::<()>(&mut self.conn).await?;
        // The same connection keeps the order: the fetch sees the message pushed back.
        let lane = std::sync::Arc::clone(&self.lane);
        let taken = lane.take().await;
        self.fetch_with(poll_keys, max, &lane, taken).await
    }

    /// Hands the messages to the worker, one permit each; returns false if the worker is gone.
    async fn deliver(&mut self, items: Vec<(usize, Vec<u8>)>, mut permits: Vec<PrefetchPermit>) -> bool {
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

