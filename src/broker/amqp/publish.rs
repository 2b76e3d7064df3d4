//! Publishing as kombu's `Producer.publish` does on py-amqp: the target queue declared first
//! (kombu's `maybe_declare`, once per connection), then `basic_publish` on the publisher
//! channel, waiting for the broker's confirm. With quorum queues, a message with an ETA
//! for a queue on a topic or fanout exchange goes through Celery's native delayed delivery
//! (`celery_delayed_27` with kombu's `calculate_routing_key`), as Celery ≥ 5.5's
//! `send_task` routes it.

use lapin::options::BasicPublishOptions;
use lapin::Confirmation;

use super::declare;
use super::envelope;
use super::error::TRANSPORT;
use super::link::Session;
use crate::broker::{BrokerError, QueueCatalog, QueueSpec};
use crate::protocol::OutgoingMessage;
use crate::value::{DateTime, Value};

/// Where a message goes: exchange and routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub exchange: String,
    pub routing_key: String,
}

/// The route of `message`: as given, or through the delay levels when native delayed
/// delivery applies (`quorum`: quorum queues are in use).
pub(super) fn route(message: &OutgoingMessage, catalog: &QueueCatalog, quorum: bool) -> Route {
    let given = Route {
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
    };
    if !quorum {
        return given;
    }
    let Some(countdown) = countdown_secs(message) else {
        return given;
    };
    let queue = if message.exchange.is_empty() {
        catalog.find(&message.routing_key)
    } else {
        None
    };
    let (exchange_type, routing_key) = match &queue {
        Some(q) => (q.exchange_type.as_str(), q.routing_key.as_str()),
        None if !message.exchange.is_empty() => {
            match catalog
                .queues
                .iter()
                .find(|q| q.exchange == message.exchange)
            {
                Some(q) => (q.exchange_type.as_str(), message.routing_key.as_str()),
                None => return given,
            }
        }
        None => return given,
    };
    if exchange_type == "direct" {
        tracing::warn!(
            "Direct exchanges are not supported with native delayed delivery: {} is a direct exchange, so this task may block the worker until its ETA arrives",
            queue.as_ref().map_or(message.exchange.as_str(), |q| q.exchange.as_str())
        );
        return given;
    }
    match declare::delayed_routing_key(countdown, routing_key) {
        Some(rk) => Route {
            exchange: declare::DELAYED_ENTRY_EXCHANGE.to_owned(),
            routing_key: rk,
        },
        None => given,
    }
}

/// Seconds from now until the message's `eta` header, when it is a second or more away,
/// rounded: the ETA was set moments ago from a countdown, which Celery passes to
/// `calculate_routing_key` as `int(countdown)`.
fn countdown_secs(message: &OutgoingMessage) -> Option<u64> {
    let Some(Value::Str(eta)) = message.headers.get("eta") else {
        return None;
    };
    let at = DateTime::parse_iso(eta).ok()?.to_utc_assuming_utc()?;
    let secs = (at - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0;
    (secs.round() >= 1.0).then_some(secs.round() as u64)
}

/// Declares the queue a message for the default exchange goes to, once per connection:
/// as the app declares it when known; else, if it does not exist yet, as Celery creates a
/// missing queue. A queue that exists already is left as it is.
pub(super) async fn ensure_queue(
    session: &Session,
    queue: &str,
    catalog: &QueueCatalog,
) -> Result<(), lapin::Error> {
    if queue.is_empty() || queue.starts_with("amq.") {
        return Ok(());
    }
    if session
        .declared
        .lock()
        .map(|d| d.contains(queue))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let spec: Option<QueueSpec> = match catalog.find(queue) {
        Some(q) => Some(q),
        None => {
            let scratch = session.scratch_channel().await?;
            let exists = declare::exists(&scratch, queue).await?;
            let _ = scratch.close(200, "OK".into()).await;
            (!exists && catalog.create_missing).then(|| catalog.missing(queue))
        }
    };
    if let Some(spec) = spec {
        let channel = session.publisher().await?;
        declare::queue(&channel, &spec).await?;
    }
    if let Ok(mut d) = session.declared.lock() {
        d.insert(queue.to_owned());
    }
    Ok(())
}

/// Publishes `message` by `route` on the session's publisher channel; with confirms, waits
/// for the broker's ack (a nack is an error).
pub(super) async fn publish(
    session: &Session,
    message: &OutgoingMessage,
    route: &Route,
    confirms: bool,
) -> Result<(), PublishError> {
    let channel = session.publisher().await?;
    let confirm = channel
        .basic_publish(
            route.exchange.as_str().into(),
            route.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            &message.body,
            envelope::properties(message),
        )
        .await?;
    if confirms {
        match confirm.await? {
            Confirmation::Nack(_) => {
                return Err(PublishError::Nacked(format!(
                    "the broker did not accept the message for {:?}/{:?} (basic.nack)",
                    route.exchange, route.routing_key
                )))
            }
            Confirmation::Ack(_) | Confirmation::NotRequested => {}
        }
    }
    Ok(())
}

/// Why a publish failed.
#[derive(Debug)]
pub(super) enum PublishError {
    /// The driver's error.
    Driver(lapin::Error),
    /// The broker refused the message.
    Nacked(String),
}

impl From<lapin::Error> for PublishError {
    fn from(e: lapin::Error) -> Self {
        PublishError::Driver(e)
    }
}

impl From<PublishError> for BrokerError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Driver(e) => e.into(),
            PublishError::Nacked(reason) => BrokerError::Refused {
                transport: TRANSPORT,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NewTask;

    fn catalog() -> QueueCatalog {
        let mut topic = QueueSpec::direct("tq");
        topic.exchange = "tx".into();
        topic.exchange_type = "topic".into();
        topic.routing_key = "tq.rk".into();
        QueueCatalog {
            queues: vec![QueueSpec::direct("dq"), topic],
            ..QueueCatalog::default()
        }
    }

    fn message(queue: &str, countdown: i64) -> OutgoingMessage {
        let eta = chrono::Utc::now() + chrono::Duration::seconds(countdown);
        NewTask {
            id: "i".into(),
            name: "tasks.add".into(),
            routing_key: queue.into(),
            eta: Some(DateTime::from_chrono_utc(&eta)),
            ..NewTask::default()
        }
        .encode(crate::codec::Serializer::Json)
    }

    #[test]
    fn an_eta_on_a_topic_quorum_queue_goes_through_the_delay_levels() {
        let r = route(&message("tq", 10), &catalog(), true);
        assert_eq!(r.exchange, "celery_delayed_27");
        assert!(r.routing_key.ends_with(".tq.rk"), "{}", r.routing_key);
        assert_eq!(r.routing_key.split('.').count(), 28 + 2);
    }

    #[test]
    fn direct_queues_and_classic_setups_publish_as_given() {
        let direct = route(&message("dq", 10), &catalog(), true);
        assert_eq!(
            (direct.exchange.as_str(), direct.routing_key.as_str()),
            ("", "dq")
        );
        let classic = route(&message("tq", 10), &catalog(), false);
        assert_eq!(classic.exchange, "");
        let now = route(&message("tq", 0), &catalog(), true);
        assert_eq!(now.exchange, "");
    }
}
