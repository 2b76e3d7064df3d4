//! Message transports, one module each, behind the [`Broker`] trait.
//!
//! A broker delivers [`Delivery`]s on a channel, at most as many unacknowledged at once as the
//! prefetch window allows (each delivery holds a [`PrefetchPermit`] until it is settled), and
//! settles them by tag: ack, reject, or give back at shutdown.

pub mod redis;

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::protocol::{OutgoingMessage, RawMessage};

/// A queue to consume from, as declared in `task_queues` (or created from `-Q` names).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Queue name.
    pub name: String,
    /// Exchange the queue is bound to (defaults to the queue name).
    pub exchange: String,
    /// Exchange type (`direct`, `topic`, `fanout`).
    pub exchange_type: String,
    /// Binding routing key (defaults to the queue name).
    pub routing_key: String,
    /// `x-max-priority`, when the queue has priorities.
    pub max_priority: Option<u8>,
}

impl QueueSpec {
    /// A direct queue bound to an exchange of its own name with its own name as routing key,
    /// as Celery creates a missing queue (`task_create_missing_queues`).
    pub fn direct(name: &str) -> Self {
        QueueSpec {
            name: name.to_owned(),
            exchange: name.to_owned(),
            exchange_type: "direct".to_owned(),
            routing_key: name.to_owned(),
            max_priority: None,
        }
    }
}

/// The window of unacknowledged messages (`prefetch_count`), shared by broker and worker.
#[derive(Debug, Clone)]
pub struct PrefetchWindow {
    sem: Arc<Semaphore>,
}

/// One slot of the prefetch window, held by a delivery until it is settled.
pub type PrefetchPermit = OwnedSemaphorePermit;

impl PrefetchWindow {
    /// A window of `count` messages; 0 means unlimited, as in Celery.
    pub fn new(count: usize) -> Self {
        let count = if count == 0 { Semaphore::MAX_PERMITS } else { count };
        PrefetchWindow { sem: Arc::new(Semaphore::new(count)) }
    }

    /// Waits for at least one free slot, then takes up to `max` slots at once.
    pub async fn acquire_up_to(&self, max: usize) -> Vec<PrefetchPermit> {
        let mut permits = Vec::new();
        match self.sem.clone().acquire_owned().await {
            Ok(p) => permits.push(p),
            Err(_) => return permits,
        }
        while permits.len() < max {
            match self.sem.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        permits
    }

    /// Stops handing out slots (shutdown): pending and future acquires return nothing.
    pub fn close(&self) {
        self.sem.close();
    }
}

/// A delivered message, to be settled exactly once by its tag.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub raw: RawMessage,
    /// The broker's tag for settling it.
    pub tag: String,
    /// The queue it was taken from.
    pub queue: String,
    /// Its slot in the prefetch window; dropping it frees the slot.
    pub permit: Option<PrefetchPermit>,
}

/// Errors talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker URL could not be used.
    #[error("invalid broker URL {url}: {reason}")]
    Url {
        /// The URL, password masked.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// A message transport.
pub trait Broker: Send + Sync + 'static {
    /// Declares/binds `queues` and starts delivering their messages on the returned channel,
    /// never more unsettled at once than `window` allows. Delivery stops when
    /// [`Broker::stop_consuming`] is called or the channel's receiver is dropped.
    fn consume(
        self: Arc<Self>,
        queues: Vec<QueueSpec>,
        window: PrefetchWindow,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<Delivery>, BrokerError>>;

    /// Stops fetching new messages; already delivered ones stay to be settled.
    fn stop_consuming(&self);

    /// Acknowledges a message: it is done and removed. Batched; see [`Broker::flush`].
    fn ack(&self, tag: &str);

    /// Rejects a message: removed, or with `requeue` put back at the end of its queue.
    fn reject(&self, tag: &str, requeue: bool);

    /// Gives unsettled messages back to the front of their queues, flagged `redelivered`
    /// (shutdown: prefetched but unstarted messages, and unfinished `acks_late` ones).
    fn restore(&self, tags: Vec<String>) -> BoxFuture<'_, Result<usize, BrokerError>>;

    /// Waits until every ack/reject issued so far has reached the broker.
    fn flush(&self) -> BoxFuture<'_, ()>;

    /// Publishes a task message (routing it as kombu would: the anonymous exchange goes
    /// straight to the queue named by the routing key).
    fn publish<'a>(&'a self, message: &'a OutgoingMessage) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Transport name for the banner (`redis`, `amqp`).
    fn transport(&self) -> &'static str;

    /// The broker URL with the password masked, for logs and the banner.
    fn display_url(&self) -> String;
}
