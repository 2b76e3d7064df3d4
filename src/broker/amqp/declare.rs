//! Exchanges, queues and bindings declared exactly as Celery 5.7 declares them through kombu
//! (`kombu/entity.py` `Queue.declare`: the exchange, then the queue with `passive=False` and
//! the same flags and arguments, then the binding), so that a queue Celery already declared
//! is never declared again with other arguments (RabbitMQ would refuse with
//! `PRECONDITION_FAILED`). With quorum queues, the native delayed delivery topology of
//! Celery ≥ 5.5 (`kombu/transport/native_delayed_delivery.py`).

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use super::envelope::dict_to_table;
use crate::broker::QueueSpec;
use crate::value::Value;

/// The exchange a delayed message leaves the delay levels through.
pub const DELAYED_DELIVERY_EXCHANGE: &str = "celery_delayed_delivery";

/// Bits of the delay a routing key carries: levels `celery_delayed_0` to `_27`.
pub const DELAY_BITS: u32 = 28;

/// The exchange delayed messages are published to (the highest level).
pub const DELAYED_ENTRY_EXCHANGE: &str = "celery_delayed_27";

/// An exchange type by kombu's name.
pub fn exchange_kind(kind: &str) -> ExchangeKind {
    match kind {
        "direct" => ExchangeKind::Direct,
        "topic" => ExchangeKind::Topic,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}

/// Declares `queue` as kombu's `Queue.declare` does: its exchange (unless it is the default
/// exchange or an `amq.*` one, which kombu never declares), the queue, the binding.
pub async fn queue(channel: &Channel, queue: &QueueSpec) -> Result<(), lapin::Error> {
    let has_exchange = !queue.exchange.is_empty();
    if has_exchange && !queue.exchange.starts_with("amq.") {
        channel
            .exchange_declare(
                queue.exchange.as_str().into(),
                exchange_kind(&queue.exchange_type),
                ExchangeDeclareOptions {
                    passive: false,
                    durable: queue.exchange_durable,
                    auto_delete: queue.exchange_auto_delete,
                    internal: false,
                    nowait: false,
                },
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .queue_declare(
            queue.name.as_str().into(),
            QueueDeclareOptions {
                passive: false,
                durable: queue.durable,
                exclusive: queue.exclusive,
                auto_delete: queue.auto_delete,
                nowait: false,
            },
            dict_to_table(&queue.arguments),
        )
        .await?;
    if has_exchange {
        channel
            .queue_bind(
                queue.name.as_str().into(),
                queue.exchange.as_str().into(),
                queue.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Whether `queue` exists (a passive declaration on a channel of its own, which the server
/// closes when the queue is missing).
pub async fn exists(channel: &Channel, name: &str) -> Result<bool, lapin::Error> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_amqp_soft_error() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The name of delay level `level`.
pub fn level_name(level: u32) -> String {
    format!("celery_delayed_{level}")
}

/// The arguments of delay level `level`'s queue, as kombu declares them.
pub fn level_arguments(level: u32, queue_type: &str) -> FieldTable {
    let mut args = crate::value::Dict::new();
    args.insert("x-queue-type", queue_type);
    args.insert("x-overflow", "reject-publish");
    args.insert("x-message-ttl", Value::Int(1000i64 << level));
    let next = if level > 0 {
        level_name(level - 1)
    } else {
        DELAYED_DELIVERY_EXCHANGE.to_owned()
    };
    args.insert("x-dead-letter-exchange", next);
    if queue_type == "quorum" {
        args.insert("x-dead-letter-strategy", "at-least-once");
    }
    dict_to_table(&args)
}

/// Declares Celery's native delayed delivery topology as the `DelayedDelivery` bootstep does
/// (`declare_native_delayed_delivery_exchanges_and_queues` with
/// `broker_native_delayed_delivery_queue_type`, `quorum` by default): 28 topic exchanges and
/// queues `celery_delayed_27` … `_0`, each queue holding messages for 2^level seconds before
/// dead-lettering them one level down, the levels bound to each other by the bits of the
/// routing key, and `celery_delayed_delivery` at the bottom.
pub async fn delayed_delivery(channel: &Channel, queue_type: &str) -> Result<(), lapin::Error> {
    let topic = |name: String| {
        let channel = channel.clone();
        async move {
            channel
                .exchange_declare(
                    name.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
        }
    };
    let mut routing_key = "1.#".to_owned();
    for level in (0..DELAY_BITS).rev() {
        let name = level_name(level);
        topic(name.clone()).await?;
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                level_arguments(level, queue_type),
            )
            .await?;
        channel
            .queue_bind(
                name.as_str().into(),
                name.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        routing_key = format!("*.{routing_key}");
    }
    let mut routing_key = "0.#".to_owned();
    for level in (1..DELAY_BITS).rev() {
        // kombu: `next_level_exchange.bind_to(current_level, routing_key)`.
        channel
            .exchange_bind(
                level_name(level - 1).as_str().into(),
                level_name(level).as_str().into(),
                routing_key.as_str().into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        routing_key = format!("*.{routing_key}");
    }
    topic(DELAYED_DELIVERY_EXCHANGE.to_owned()).await?;
    channel
        .exchange_bind(
            DELAYED_DELIVERY_EXCHANGE.into(),
            level_name(0).as_str().into(),
            routing_key.as_str().into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Binds `queue` to the delayed delivery exchange as kombu's
/// `bind_queue_to_native_delayed_delivery_exchange` does: its exchange is bound to
/// `celery_delayed_delivery` and the queue to its exchange, both with `#.<routing key>`.
/// Queues on direct exchanges are skipped (with kombu's warning): native delayed delivery
/// needs a topic or fanout exchange.
pub async fn bind_delayed(channel: &Channel, queue: &QueueSpec) -> Result<(), lapin::Error> {
    if queue.exchange.is_empty() {
        return Ok(());
    }
    if queue.exchange_type == "direct" {
        tracing::warn!(
            "Exchange {} is a direct exchange and native delayed delivery do not support direct exchanges. ETA tasks published to this exchange will block the worker until the ETA arrives.",
            queue.exchange
        );
        return Ok(());
    }
    let routing_key = delayed_binding_key(&queue.routing_key);
    channel
        .exchange_bind(
            queue.exchange.as_str().into(),
            DELAYED_DELIVERY_EXCHANGE.into(),
            routing_key.as_str().into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name.as_str().into(),
            queue.exchange.as_str().into(),
            routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// `#.<routing key>`, or the key itself when it starts with `#`.
pub fn delayed_binding_key(routing_key: &str) -> String {
    if routing_key.starts_with('#') {
        routing_key.to_owned()
    } else {
        format!("#.{routing_key}")
    }
}

/// kombu's `calculate_routing_key`: the delay in whole seconds as 28 bits, one word each,
/// then the routing key (without the bits of an earlier delay). `None` when the delay is
/// under a second (kombu refuses it).
pub fn delayed_routing_key(countdown_secs: u64, routing_key: &str) -> Option<String> {
    if countdown_secs < 1 || routing_key.is_empty() {
        return None;
    }
    let countdown = countdown_secs.min((1u64 << DELAY_BITS) - 1);
    let bits: Vec<String> = (0..DELAY_BITS)
        .rev()
        .map(|b| ((countdown >> b) & 1).to_string())
        .collect();
    Some(format!("{}.{}", bits.join("."), strip_delay(routing_key)))
}

/// The routing key without a leading `0.1.…` delay prefix of 28 bits.
fn strip_delay(routing_key: &str) -> &str {
    let mut rest = routing_key;
    for _ in 0..DELAY_BITS {
        match rest.as_bytes() {
            [b'0' | b'1', b'.', ..] => rest = &rest[2..],
            _ => return routing_key,
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;

    #[test]
    fn routing_keys_carry_the_delay_in_28_bits() {
        let rk = delayed_routing_key(5, "default").expect("key");
        assert_eq!(rk, format!("{}0.1.0.1.default", "0.".repeat(24)));
        // A retried message's key loses its old delay first.
        assert_eq!(delayed_routing_key(5, &rk), Some(rk.clone()));
        assert_eq!(delayed_routing_key(0, "default"), None);
        assert_eq!(delayed_binding_key("default"), "#.default");
        assert_eq!(delayed_binding_key("#.x"), "#.x");
        assert_eq!(strip_delay("0.1.default"), "0.1.default");
    }

    #[test]
    fn delay_levels_have_kombus_arguments() {
        let args = level_arguments(3, "quorum");
        let get = |k: &str| args.inner().get(k).cloned();
        assert_eq!(get("x-message-ttl"), Some(AMQPValue::LongInt(8000)));
        assert_eq!(
            get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("celery_delayed_2".into()))
        );
        assert_eq!(
            get("x-dead-letter-strategy"),
            Some(AMQPValue::LongString("at-least-once".into()))
        );
        let bottom = level_arguments(0, "classic");
        assert_eq!(
            bottom.inner().get("x-dead-letter-exchange").cloned(),
            Some(AMQPValue::LongString("celery_delayed_delivery".into()))
        );
        assert!(!bottom.inner().contains_key("x-dead-letter-strategy"));
        let top = level_arguments(27, "quorum");
        assert_eq!(
            top.inner().get("x-message-ttl").cloned(),
            Some(AMQPValue::LongLongInt(134_217_728_000))
        );
    }
}
