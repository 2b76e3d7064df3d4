//! The AMQP 0-9-1 transport (RabbitMQ) on lapin, as Celery 5.7 uses RabbitMQ through kombu's
//! py-amqp transport: `amqp://`, `pyamqp://` and `amqps://` URLs with virtual hosts;
//! exchanges, queues and bindings declared exactly as Celery declares them
//! ([`declare`]: durable flags, `x-max-priority`, `x-queue-type`, Celery ≥ 5.5's native
//! delayed delivery topology with quorum queues); `basic_qos` = concurrency × multiplier,
//! global unless quorum queues are in use, raised while ETA tasks wait ([`qos`]); acks and
//! rejects by tag, a no-op for a tag of a channel that has closed since ([`settle`]);
//! publisher confirms for everything the worker publishes ([`publish`]); heartbeats; and a
//! connection that heals ([`link`]) with Celery's `broker_connection_*` retry settings.

mod broadcast;
mod consume;
mod declare;
mod envelope;
mod error;
mod link;
mod open;
mod options;
mod publish;
mod qos;
mod settle;
mod url;

pub use envelope::{amqp_to_value, dict_to_table, table_to_dict, value_to_amqp};
pub use open::open;
pub use options::AmqpTransportOptions;
pub use url::AmqpUrl;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    Broker, BrokerError, ConsumedQueues, Delivery, ExchangeSpec, PrefetchWindow, Qos, QueueCatalog,
    QueueSpec,
};
use crate::protocol::{OutgoingMessage, RawMessage};
use link::Link;
use qos::{AmqpQos, QosState};
use settle::{Ackers, SettleOp};

/// An AMQP broker connection.
pub struct AmqpBroker {
    link: Arc<Link>,
    options: AmqpTransportOptions,
    catalog: QueueCatalog,
    ackers: Arc<Ackers>,
    settle: mpsc::UnboundedSender<SettleOp>,
    stop: watch::Sender<bool>,
    fatal: Arc<OnceLock<String>>,
    qos: OnceLock<Arc<QosState>>,
}

impl AmqpBroker {
    fn new(link: Arc<Link>, options: AmqpTransportOptions, catalog: QueueCatalog) -> AmqpBroker {
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        tokio::spawn(settle::run(settle_rx));
        AmqpBroker {
            link,
            options,
            catalog,
            ackers: Arc::default(),
            settle: settle_tx,
            stop: watch::Sender::new(false),
            fatal: Arc::default(),
            qos: OnceLock::new(),
        }
    }

    /// Quorum queues are in use (Celery's `detect_quorum_queues`, over the app's queues and
    /// the consumed ones).
    fn quorum(&self, consumed: &[QueueSpec]) -> bool {
        self.catalog.has_quorum() || consumed.iter().any(QueueSpec::is_quorum)
    }

    fn qos_state(&self, window: &PrefetchWindow) -> Arc<QosState> {
        Arc::clone(
            self.qos
                .get_or_init(|| QosState::new(window.initial_count())),
        )
    }

    async fn publish_once(&self, message: &OutgoingMessage) -> Result<(), BrokerError> {
        let route = publish::route(message, &self.catalog, self.catalog.has_quorum());
        loop {
            let session = self.link.get().await?;
            let attempt = async {
                if route.exchange.is_empty() {
                    publish::ensure_queue(&session, &route.routing_key, &self.catalog).await?;
                }
                publish::publish(&session, message, &route, self.options.confirm_publish).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(publish::PublishError::Driver(e)) if error::is_connection_error(&e) => {
                    self.link.failed(session.generation, &e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Broker for AmqpBroker {
    fn consume(
        self: Arc<Self>,
        consumed: ConsumedQueues,
        window: PrefetchWindow,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<Delivery>, BrokerError>> {
        async move {
            let queues = consumed.watch();
            let quorum = self.quorum(&queues.borrow());
            if quorum {
                tracing::info!("Global QoS is disabled. Prefetch count is now static.");
            }
            let global_qos = self.options.qos_global.unwrap_or(!quorum) && !quorum;
            let (tx, rx) = mpsc::channel(1024);
            let consumer = consume::Consumer {
                link: Arc::clone(&self.link),
                queues,
                quorum,
                global_qos,
                qos: self.qos_state(&window),
                window,
                tx,
                stop: self.stop.subscribe(),
                ackers: Arc::clone(&self.ackers),
                fatal: Arc::clone(&self.fatal),
                consumer_timeout: self.options.consumer_timeout,
            };
            tokio::spawn(consumer.run());
            Ok(rx)
        }
        .boxed()
    }

    fn stop_consuming(&self) {
        let _ = self.stop.send(true);
    }

    fn ack(&self, tag: &str) {
        if let Some(acker) = self.ackers.take(tag) {
            let _ = self.settle.send(SettleOp::Ack(tag.to_owned(), acker));
        }
    }

    fn reject(&self, tag: &str, requeue: bool) {
        if let Some(acker) = self.ackers.take(tag) {
            let _ = self
                .settle
                .send(SettleOp::Reject(tag.to_owned(), acker, requeue));
        }
    }

    fn still_held(&self, tag: &str) -> bool {
        Ackers::generation(tag).is_none_or(|generation| self.link.is_live(generation))
    }

    fn restore(&self, tags: Vec<String>) -> BoxFuture<'_, Result<usize, BrokerError>> {
        async move {
            // Celery's warm shutdown leaves unacknowledged messages to the server, which
            // requeues them when the channel closes; rejecting them with requeue does the
            // same at once, flagged `redelivered`.
            self.flush().await;
            let mut restored = 0;
            for tag in tags {
                if let Some(acker) = self.ackers.take(&tag) {
                    if settle::reject_now(&tag, acker, true).await {
                        restored += 1;
                    }
                }
            }
            Ok(restored)
        }
        .boxed()
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        async move {
            let (tx, rx) = oneshot::channel();
            if self.settle.send(SettleOp::Flush(tx)).is_ok() {
                let _ = rx.await;
            }
        }
        .boxed()
    }

    fn publish<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.publish_once(message).boxed()
    }

    fn publish_to<'a>(
        &'a self,
        exchange: &'a ExchangeSpec,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        broadcast::publish_to(&self.link, exchange, message, self.options.confirm_publish).boxed()
    }

    fn subscribe(
        self: Arc<Self>,
        queue: QueueSpec,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<RawMessage>, BrokerError>> {
        broadcast::subscribe(Arc::clone(&self.link), queue).boxed()
    }

    fn epochs(&self) -> Option<watch::Receiver<u64>> {
        Some(self.link.epochs())
    }

    fn fatal_error(&self) -> Option<String> {
        self.fatal.get().cloned()
    }

    fn qos(&self, window: &PrefetchWindow) -> Arc<dyn Qos> {
        Arc::new(AmqpQos {
            window: window.clone(),
            state: self.qos_state(window),
        })
    }

    fn transport(&self) -> &'static str {
        "amqp"
    }

    fn display_url(&self) -> String {
        self.link.display().to_owned()
    }
}

/// Seconds as a duration; negative or non-finite values count as zero.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO)
}
