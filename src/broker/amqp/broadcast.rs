//! Broadcast on AMQP, as kombu's pidbox and event receivers use RabbitMQ: an exchange is
//! declared (once per connection) before the first publish to it; a subscription declares
//! its exchange and queue exactly as given (Celery 5.7's pidbox queues are exclusive,
//! auto-delete, with `x-message-ttl` and `x-expires`), binds it, and consumes it `no_ack` on
//! a channel of its own. After a reconnect it is made again; what was published meanwhile is
//! lost, as with kombu. Dropping the receiver closes the channel (the server then deletes an
//! auto-delete queue).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::mpsc;

use super::declare;
use super::envelope;
use super::error::is_connection_error;
use super::link::{Link, Session};
use super::publish::{self, PublishError, Route};
use crate::broker::{BrokerError, ExchangeSpec, QueueSpec};
use crate::protocol::{OutgoingMessage, RawMessage};

/// Messages waiting for the subscriber before new ones are dropped (broadcasts are lossy).
const CHANNEL_CAPACITY: usize = 256;

/// Publishes `message` to `exchange`, declaring it first on this connection.
pub(super) async fn publish_to(
    link: &Link,
    exchange: &ExchangeSpec,
    message: &OutgoingMessage,
    confirms: bool,
) -> Result<(), BrokerError> {
    let route = Route {
        exchange: exchange.name.clone(),
        routing_key: message.routing_key.clone(),
    };
    loop {
        let session = link.get().await?;
        let attempt = async {
            declare_exchange(&session, exchange).await?;
            publish::publish(&session, message, &route, confirms).await
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(PublishError::Driver(e)) if is_connection_error(&e) => {
                link.failed(session.generation, &e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn declare_exchange(session: &Session, exchange: &ExchangeSpec) -> Result<(), lapin::Error> {
    if exchange.name.is_empty() || exchange.name.starts_with("amq.") {
        return Ok(());
    }
    let key = format!("exchange\u{0}{}", exchange.name);
    if session
        .declared
        .lock()
        .map(|d| d.contains(&key))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let channel = session.publisher().await?;
    channel
        .exchange_declare(
            exchange.name.as_str().into(),
            declare::exchange_kind(&exchange.kind),
            ExchangeDeclareOptions {
                passive: false,
                durable: exchange.durable,
                auto_delete: exchange.auto_delete,
                internal: false,
                nowait: false,
            },
            FieldTable::default(),
        )
        .await?;
    if let Ok(mut d) = session.declared.lock() {
        d.insert(key);
    }
    Ok(())
}

/// Subscribes to `queue`: the first declaration is made before this returns (so that a reply
/// published right after finds the queue), then a task keeps the subscription alive.
pub(super) async fn subscribe(
    link: Arc<Link>,
    queue: QueueSpec,
) -> Result<mpsc::Receiver<RawMessage>, BrokerError> {
    let (session, channel, consumer) = loop {
        let session = link.get().await?;
        match setup(&session, &queue).await {
            Ok((channel, consumer)) => break (session, channel, consumer),
            Err(e) if is_connection_error(&e) => link.failed(session.generation, &e.to_string()),
            Err(e) => return Err(e.into()),
        }
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(run(link, queue, tx, session, channel, consumer));
    Ok(rx)
}

/// Declares, binds and consumes `queue` on a new channel of `session`.
async fn setup(session: &Session, queue: &QueueSpec) -> Result<(Channel, Consumer), lapin::Error> {
    let channel = session.connection.create_channel().await?;
    let made = async {
        declare::queue(&channel, queue).await?;
        channel
            .basic_consume(
                queue.name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
    };
    match made.await {
        Ok(consumer) => Ok((channel, consumer)),
        Err(e) => {
            let _ = channel.close(200, "OK".into()).await;
            Err(e)
        }
    }
}

async fn run(
    link: Arc<Link>,
    queue: QueueSpec,
    tx: mpsc::Sender<RawMessage>,
    mut session: Arc<Session>,
    mut channel: Channel,
    mut consumer: Consumer,
) {
    let mut failures: u32 = 0;
    let mut last_warning: Option<Instant> = None;
    loop {
        // Consume until the channel ends or the receiver goes.
        loop {
            let next = tokio::select! {
                d = consumer.next() => d,
                _ = tx.closed() => {
                    let _ = channel.close(200, "OK".into()).await;
                    return;
                }
            };
            match next {
                Some(Ok(d)) => {
                    failures = 0;
                    let raw = envelope::raw_message(&d);
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(raw) {
                        tracing::warn!(queue = %queue.name, "broadcast message dropped: the receiver is behind");
                    }
                }
                Some(Err(e)) => {
                    if is_connection_error(&e) {
                        link.failed(session.generation, &e.to_string());
                    }
                    break;
                }
                None => break,
            }
        }
        // Make it again, on the connection the link has now.
        loop {
            failures = failures.saturating_add(1);
            let wait = Duration::from_millis(200u64 << failures.min(5)).min(Duration::from_secs(5));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tx.closed() => return,
            }
            let next = tokio::select! {
                s = link.get() => s,
                _ = tx.closed() => return,
            };
            let Ok(next) = next else {
                continue;
            };
            match setup(&next, &queue).await {
                Ok((c, k)) => {
                    tracing::info!(queue = %queue.name, "broadcast subscription restored");
                    (session, channel, consumer) = (next, c, k);
                    break;
                }
                Err(e) => {
                    if is_connection_error(&e) {
                        link.failed(next.generation, &e.to_string());
                    }
                    let due = last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(30));
                    if due {
                        last_warning = Some(Instant::now());
                        tracing::warn!(queue = %queue.name, error = %e, "cannot subscribe to a broadcast queue (another node of the same name?); retrying");
                    }
                }
            }
        }
    }
}
