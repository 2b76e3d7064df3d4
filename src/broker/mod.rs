//! Message transports, one module each, behind the [`Broker`] trait.
//!
//! A broker delivers [`Delivery`]s on a channel, at most as many unacknowledged at once as the
//! prefetch window allows (each delivery holds a [`PrefetchPermit`] until it is settled), and
//! settles them by tag: ack, reject, or give back at shutdown. The worker widens the window
//! through the [`Qos`] hook while it holds a message for its ETA, as Celery's consumer raises
//! its prefetch count.
//!
//! Each transport is one folder here (`redis/`, `amqp/`, `filesystem/`): its broker, its typed transport options read
//! from `broker_transport_options`, the conversion of its driver's errors into
//! [`BrokerError`], and an `open` function that [`factory::connect`] calls for the URL
//! schemes it serves. A `;`-separated `broker_url` is a fail-over list ([`failover`]), which
//! the factory reads once for every transport.

pub mod amqp;
mod consumed;
pub mod factory;
pub mod failover;
pub mod filesystem;
pub mod redis;
mod transport_options;
mod window;

pub use consumed::ConsumedQueues;
pub use window::{PrefetchPermit, PrefetchWindow, Qos};

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::protocol::{OutgoingMessage, RawMessage};
use crate::value::{Dict, Value};

/// A queue to consume from, as declared in `task_queues` (or created from `-Q` names), with
/// everything Celery declares it with (kombu's `Queue` and its `Exchange`), so a transport
/// that declares queues on the server (AMQP) declares them exactly as Celery does.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Queue name.
    pub name: String,
    /// Exchange the queue is bound to (defaults to the queue name; empty: none).
    pub exchange: String,
    /// Exchange type (`direct`, `topic`, `fanout`).
    pub exchange_type: String,
    /// Binding routing key (defaults to the queue name).
    pub routing_key: String,
    /// `x-max-priority`, when the queue has priorities (also in [`QueueSpec::arguments`]).
    pub max_priority: Option<u8>,
    /// Queue `durable` (kombu: true).
    pub durable: bool,
    /// Queue `auto_delete` (kombu: false; true when exclusive).
    pub auto_delete: bool,
    /// Queue `exclusive` (kombu: false).
    pub exclusive: bool,
    /// Exchange `durable` (kombu: true).
    pub exchange_durable: bool,
    /// Exchange `auto_delete` (kombu: false).
    pub exchange_auto_delete: bool,
    /// The queue's declaration arguments as kombu sends them (`x-max-priority`,
    /// `x-queue-type`, `x-expires`, ...).
    pub arguments: Dict,
}

impl QueueSpec {
    /// A direct queue bound to an exchange of its own name with its own name as routing key,
    /// as Celery creates a missing queue (`task_create_missing_queues`) with the default
    /// settings.
    pub fn direct(name: &str) -> Self {
        QueueSpec {
            name: name.to_owned(),
            exchange: name.to_owned(),
            exchange_type: "direct".to_owned(),
            routing_key: name.to_owned(),
            max_priority: None,
            durable: true,
            auto_delete: false,
            exclusive: false,
            exchange_durable: true,
            exchange_auto_delete: false,
            arguments: Dict::new(),
        }
    }

    /// This queue with `x-max-priority` set to `priority` unless its arguments have one
    /// (Celery's `task_queue_max_priority`, `Queues._set_max_priority`).
    pub fn with_default_max_priority(mut self, priority: Option<u8>) -> Self {
        if let Some(p) = priority {
            if self.arguments.get("x-max-priority").is_none() {
                self.arguments
                    .insert("x-max-priority", Value::Int(i64::from(p)));
            }
        }
        self.max_priority =
            self.max_priority
                .or_else(|| match self.arguments.get("x-max-priority") {
                    Some(Value::Int(p)) => u8::try_from(*p).ok(),
                    _ => None,
                });
        self
    }

    /// The queue type (`x-queue-type`), `classic` when not given.
    pub fn queue_type(&self) -> &str {
        match self.arguments.get("x-queue-type") {
            Some(Value::Str(t)) => t,
            _ => "classic",
        }
    }

    /// True for a quorum queue (`x-queue-type: quorum`).
    pub fn is_quorum(&self) -> bool {
        self.queue_type() == "quorum"
    }
}

/// The queues the app knows (Celery's `app.amqp.queues`: `task_queues` or the default
/// queue) and how it creates a missing one, for a transport that declares a queue before it
/// publishes to it (AMQP, as kombu's `maybe_declare`) or that must know whether quorum
/// queues are in use.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueCatalog {
    /// The known queues.
    pub queues: Vec<QueueSpec>,
    /// `task_create_missing_queues` (true).
    pub create_missing: bool,
    /// How a missing queue is created (its name is replaced): the spec of a queue named
    /// `""` (Celery's `Queues.new_missing`, with `task_create_missing_queue_type`,
    /// `task_create_missing_queue_exchange_type` and `task_queue_max_priority`).
    pub missing_template: QueueSpec,
}

impl Default for QueueCatalog {
    fn default() -> Self {
        QueueCatalog {
            queues: Vec::new(),
            create_missing: true,
            missing_template: QueueSpec::direct(""),
        }
    }
}

impl QueueCatalog {
    /// The known queue `name`.
    pub fn find(&self, name: &str) -> Option<QueueSpec> {
        self.queues.iter().find(|q| q.name == name).cloned()
    }

    /// The queue Celery would create for the missing name `name`.
    pub fn missing(&self, name: &str) -> QueueSpec {
        let mut q = self.missing_template.clone();
        q.name = name.to_owned();
        q.exchange = name.to_owned();
        q.routing_key = name.to_owned();
        q
    }

    /// True when a known queue is a quorum queue (Celery's `detect_quorum_queues`).
    pub fn has_quorum(&self) -> bool {
        self.queues.iter().any(QueueSpec::is_quorum)
    }
}

/// An exchange published to by name (pidbox commands and replies, events), as kombu declares
/// it. Task messages do not need one: they go to queues through [`Broker::publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    /// Exchange name (`celery.pidbox`, `reply.celery.pidbox`, `celeryev`).
    pub name: String,
    /// Exchange type: `direct`, `fanout` or `topic`.
    pub kind: String,
    /// Declared `durable`.
    pub durable: bool,
    /// Declared `auto_delete`.
    pub auto_delete: bool,
}

impl ExchangeSpec {
    /// A non-durable exchange of `kind` (`direct`, `fanout`, `topic`), as the pidbox and event
    /// exchanges are declared.
    pub fn transient(name: &str, kind: &str) -> Self {
        ExchangeSpec {
            name: name.to_owned(),
            kind: kind.to_owned(),
            durable: false,
            auto_delete: false,
        }
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

/// Errors talking to a broker, by kind; no variant names a transport. Each transport turns
/// its driver's errors into these (`From` impls in its own folder), naming itself in the
/// message where the driver's text is kept.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The broker URL could not be used.
    #[error("invalid broker URL {url}: {reason}")]
    Url {
        /// The URL, password masked.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// Every allowed attempt to reach the broker failed (`broker_connection_max_retries` ran
    /// out, or `broker_connection_retry` is off).
    #[error("cannot reach {target}: gave up after {attempts} attempt(s): {last}")]
    GaveUp {
        /// Role and masked URL.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The connection broke (or a reply did not come in time) during an operation.
    #[error("{transport}: connection lost: {reason}")]
    ConnectionLost {
        /// The transport (`redis`, ...).
        transport: &'static str,
        /// The driver's words, password-free.
        reason: String,
    },
    /// The broker answered with an error that retrying cannot cure.
    #[error("{transport}: {reason}")]
    Refused {
        /// The transport (`redis`, ...).
        transport: &'static str,
        /// The broker's answer.
        reason: String,
    },
    /// A reply the transport could not understand.
    #[error("{transport}: protocol error: {reason}")]
    Protocol {
        /// The transport (`redis`, ...).
        transport: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Celery's broker connection settings (`broker_connection_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionSettings {
    /// `broker_connection_retry` (true): reconnect when the connection is lost.
    pub retry: bool,
    /// `broker_connection_retry_on_startup` (true; unset follows `broker_connection_retry`):
    /// keep trying when the broker is not there at start.
    pub retry_on_startup: bool,
    /// `broker_connection_max_retries` (100): attempts before giving up; `None` forever.
    pub max_retries: Option<u32>,
    /// `broker_connection_timeout` (4 s): how long one connection attempt may take.
    pub timeout: Duration,
    /// `broker_heartbeat` (120 s; `None` when 0): the heartbeat a transport with heartbeats
    /// (AMQP) asks the server for.
    pub heartbeat: Option<Duration>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            retry: true,
            retry_on_startup: true,
            max_retries: Some(100),
            timeout: Duration::from_secs(4),
            heartbeat: Some(Duration::from_secs(120)),
        }
    }
}

/// A message transport.
pub trait Broker: Send + Sync + 'static {
    /// Declares/binds `queues` and starts delivering their messages on the returned channel,
    /// never more unsettled at once than `window` allows. Delivery stops when
    /// [`Broker::stop_consuming`] is called or the channel's receiver is dropped.
    ///
    /// The set may change while the consumer runs (remote control's `add_consumer` /
    /// `cancel_consumer`): a queue added is declared and bound as at start and consumed; a
    /// queue cancelled gives no new messages, while those already delivered from it stay to
    /// be settled. After a reconnect the consumer takes from the set as it is then.
    fn consume(
        self: Arc<Self>,
        queues: ConsumedQueues,
        window: PrefetchWindow,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<Delivery>, BrokerError>>;

    /// Stops fetching new messages; already delivered ones stay to be settled.
    fn stop_consuming(&self);

    /// Acknowledges a message: it is done and removed. Batched; see [`Broker::flush`].
    fn ack(&self, tag: &str);

    /// Rejects a message: removed, or with `requeue` put back at the end of its queue.
    fn reject(&self, tag: &str, requeue: bool);

    /// Whether the message of `tag` is still this worker's to run and settle: false once the
    /// broker has given it back by itself (AMQP: the channel that delivered it closed, so the
    /// server requeued it and delivers it again under a new tag). The worker drops such a
    /// message instead of running it, as Celery clears its held requests when its connection
    /// closes. Brokers whose holds outlive a connection (Redis: leases) keep the default.
    fn still_held(&self, tag: &str) -> bool {
        let _ = tag;
        true
    }

    /// Gives unsettled messages back to the front of their queues, flagged `redelivered`
    /// (shutdown: prefetched but unstarted messages, and unfinished `acks_late` ones).
    fn restore(&self, tags: Vec<String>) -> BoxFuture<'_, Result<usize, BrokerError>>;

    /// Waits until every ack/reject issued so far has reached the broker.
    fn flush(&self) -> BoxFuture<'_, ()>;

    /// Publishes a task message (routing it as kombu would: the anonymous exchange goes
    /// straight to the queue named by the routing key).
    fn publish<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Renews this worker's hold on messages it still has (an ETA wait, a rate-limit wait, a
    /// long task), so that no restore gives them to another consumer while it is alive.
    /// Brokers that need no renewal (AMQP holds a message for as long as the channel lives)
    /// do nothing.
    fn renew<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), BrokerError>> {
        let _ = tags;
        Box::pin(async { Ok(()) })
    }

    /// How often [`Broker::renew`] must run for a hold to stay valid; `None` if never.
    fn renew_interval(&self) -> Option<Duration> {
        None
    }

    /// Changes every time the broker connection is made anew (after an outage), so that the
    /// worker can renew its holds at once.
    fn epochs(&self) -> Option<watch::Receiver<u64>> {
        None
    }

    /// Why delivery stopped for good, if it did (the connection could not be restored within
    /// `broker_connection_max_retries`, or `broker_connection_retry` is off).
    fn fatal_error(&self) -> Option<String> {
        None
    }

    /// The hook through which the worker widens the prefetch `window` while it holds messages
    /// that must not fill it (ETA and countdown messages), as Celery's `QoS` does. By default
    /// the window itself, which grows by one slot per increment; a transport whose server
    /// counts unacknowledged messages (AMQP's `basic_qos`) tells it too.
    fn qos(&self, window: &PrefetchWindow) -> Arc<dyn Qos> {
        Arc::new(window.clone())
    }

    /// Publishes `message` to the named `exchange` (its routing key in the message): a pidbox
    /// command (fanout), a pidbox reply (direct) or an event (topic; fanout on Redis, as
    /// Celery forces it). Each transport routes as kombu does: AMQP declares the exchange
    /// (once per connection) and publishes to it; Redis sends a fanout exchange over Pub/Sub
    /// and routes direct and topic exchanges through its binding tables.
    fn publish_to<'a>(
        &'a self,
        exchange: &'a ExchangeSpec,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        let _ = message;
        let reason = format!(
            "publishing to exchange {:?} is not supported yet",
            exchange.name
        );
        let transport = self.transport();
        Box::pin(async move { Err(BrokerError::Refused { transport, reason }) })
    }

    /// Subscribes to `queue`, bound to its exchange with its routing key (a pidbox mailbox,
    /// an event receiver, a pidbox reply queue), and delivers its messages without
    /// acknowledgements (kombu's `no_ack`), outside the prefetch window. The subscription is
    /// made again after each reconnect; what was broadcast meanwhile is lost, as it is for
    /// kombu's fanout. It ends when the receiver is dropped.
    fn subscribe(
        self: Arc<Self>,
        queue: QueueSpec,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<RawMessage>, BrokerError>> {
        let reason = format!("subscribing to {:?} is not supported yet", queue.name);
        let transport = self.transport();
        Box::pin(async move { Err(BrokerError::Refused { transport, reason }) })
    }

    /// Transport name for the banner (`redis`, `amqp`).
    fn transport(&self) -> &'static str;

    /// The broker URL with the password masked, for logs and the banner.
    fn display_url(&self) -> String;
}
