//! Publishing: kombu's envelope (`prepare_message` + `_inplace_augment_message`), key for key
//! in kombu's order, pushed with `LPUSH` onto the queue's priority sub-list.

use base64::Engine;
use redis::aio::MultiplexedConnection;

use super::keys::Keys;
use super::restore::route;
use crate::codec::json;
use crate::protocol::OutgoingMessage;
use crate::value::{Dict, Value};

/// The envelope kombu stores in the list, with a fresh `delivery_tag`.
pub fn envelope(message: &OutgoingMessage) -> Vec<u8> {
    let p = &message.properties;
    let mut props = Dict::with_capacity(8);
    props.insert(
        "correlation_id",
        p.correlation_id.clone().map_or(Value::None, Value::Str),
    );
    // kombu passes on only the properties it was given: a message without `reply_to` (a
    // result of the rpc:// backend) has no such key.
    if let Some(reply_to) = &p.reply_to {
        props.insert("reply_to", reply_to.as_str());
    }
    props.insert("delivery_mode", i64::from(p.delivery_mode.unwrap_or(2)));
    if let Some(expiration) = &p.expiration {
        props.insert("expiration", expiration.as_str());
    }
    let mut delivery_info = Dict::with_capacity(2);
    delivery_info.insert("exchange", message.exchange.as_str());
    delivery_info.insert("routing_key", message.routing_key.as_str());
    props.insert("delivery_info", Value::Dict(delivery_info));
    props.insert("priority", i64::from(p.priority.unwrap_or(0)));
    props.insert("body_encoding", "base64");
    props.insert("delivery_tag", uuid::Uuid::new_v4().to_string());
    let mut env = Dict::with_capacity(5);
    env.insert(
        "body",
        base64::engine::general_purpose::STANDARD.encode(&message.body),
    );
    env.insert("content-encoding", message.content_encoding.as_str());
    env.insert("content-type", message.content_type.as_str());
    env.insert("headers", Value::Dict(message.headers.clone()));
    env.insert("properties", Value::Dict(props));
    json::encode(&Value::Dict(env))
}

/// Routes and pushes one message's envelope (`payload`, from [`envelope`]).
pub(super) async fn push(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    message: &OutgoingMessage,
    payload: &[u8],
) -> Result<(), redis::RedisError> {
    let priority = message.properties.priority.unwrap_or(0).min(9);
    let queues = route(conn, keys, &message.exchange, &message.routing_key).await?;
    let mut pipe = redis::pipe();
    for q in &queues {
        pipe.cmd("LPUSH")
            .arg(keys.queue_key(q, priority))
            .arg(payload)
            .ignore();
    }
    pipe.query_async::<()>(conn).await
}
