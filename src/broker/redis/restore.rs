//! Giving unacked messages back to their queues: kombu's `restore_by_tag` (reject with
//! requeue, shutdown) and `restore_visible` (messages unacked for longer than the
//! visibility timeout, e.g. left by a killed worker).

use std::time::{SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;

use super::envelope::{mark_redelivered, priority_of};
use super::keys::{parse_binding_member, Keys};
use super::Scripts;
use crate::broker::BrokerError;
use crate::codec::json;
use crate::value::Value;

/// Seconds since the epoch, as kombu scores `unacked_index`.
pub(super) fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Restores each tag still in `unacked`: flags it redelivered and pushes it onto the queue(s)
/// its exchange and routing key lead to, at the back (`leftmost`, like a requeue) or the front.
/// Returns how many were restored.
pub(super) async fn restore_tags(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    scripts: &Scripts,
    tags: &[String],
    leftmost: bool,
) -> Result<usize, BrokerError> {
    let mut restored = 0;
    for chunk in tags.chunks(256) {
        let stored: Vec<Option<Vec<u8>>> =
            redis::cmd("HMGET").arg(&keys.unacked).arg(chunk).query_async(conn).await?;
        let mut pipe = redis::pipe();
        let mut count = 0;
        for (tag, value) in chunk.iter().zip(stored) {
            let Some(value) = value else { continue };
            let Some((envelope, exchange, routing_key)) = split_unacked(&value) else {
                tracing::error!(delivery_tag = %tag, "dropping unreadable entry from unacked");
                pipe.cmd("ZREM").arg(&keys.unacked_index).arg(tag).ignore();
                pipe.cmd("HDEL").arg(&keys.unacked).arg(tag).ignore();
                continue;
            };
            let priority = priority_of(&envelope);
            let payload = json::encode(&mark_redelivered(envelope));
            let queues = route(conn, keys, &exchange, &routing_key).await?;
            let inv = pipe.cmd("EVALSHA");
            inv.arg(scripts.restore.get_hash()).arg(2 + queues.len());
            inv.arg(&keys.unacked).arg(&keys.unacked_index);
            for q in &queues {
                inv.arg(keys.queue_key(q, priority));
            }
            inv.arg(tag).arg(payload).arg(if leftmost { "1" } else { "0" });
            count += 1;
        }
        if count > 0 || !pipe.is_empty() {
            let results: Vec<redis::Value> = pipe.query_async(conn).await?;
            restored += results.iter().filter(|v| matches!(v, redis::Value::Int(1))).count();
        }
    }
    Ok(restored)
}

/// Restores every message unacked for longer than `visibility_timeout` seconds, holding
/// `unacked_mutex` so that only one worker does it at a time (kombu's `restore_visible`).
pub(super) async fn restore_visible(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    scripts: &Scripts,
    visibility_timeout: f64,
    mutex_expire_secs: u64,
) -> Result<usize, BrokerError> {
    let token = uuid::Uuid::new_v4().to_string();
    let locked: Option<String> = redis::cmd("SET")
        .arg(&keys.unacked_mutex)
        .arg(&token)
        .arg("PX")
        .arg(mutex_expire_secs * 1000)
        .arg("NX")
        .query_async(conn)
        .await?;
    if locked.is_none() {
        return Ok(0);
    }
    let ceiling = now_secs() - visibility_timeout;
    let result = async {
        let tags: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(&keys.unacked_index)
            .arg(ceiling)
            .arg(0)
            .query_async(conn)
            .await?;
        if tags.is_empty() {
            return Ok(0);
        }
        restore_tags(conn, keys, scripts, &tags, false).await
    }
    .await;
    let _: redis::RedisResult<i64> = scripts
        .release_mutex
        .key(&keys.unacked_mutex)
        .arg(&token)
        .invoke_async(conn)
        .await;
    result
}

/// Splits an `unacked` value `[envelope, exchange, routing_key]`.
fn split_unacked(value: &[u8]) -> Option<(Value, String, String)> {
    let mut items = match json::decode(value).ok()? {
        Value::List(items) if items.len() == 3 => items,
        _ => return None,
    };
    let routing_key = items.pop()?.as_str()?.to_owned();
    let exchange = items.pop()?.as_str()?.to_owned();
    let envelope = items.pop()?;
    Some((envelope, exchange, routing_key))
}

/// The queues a message published to `exchange` with `routing_key` goes to: the routing key
/// itself for the anonymous exchange, else the direct bindings recorded in Redis. A message
/// nothing routes to goes back to the queue named by its routing key rather than being lost.
pub(super) async fn route(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    exchange: &str,
    routing_key: &str,
) -> Result<Vec<String>, BrokerError> {
    if exchange.is_empty() {
        return Ok(vec![routing_key.to_owned()]);
    }
    let members: Vec<String> =
        redis::cmd("SMEMBERS").arg(keys.binding_set(exchange)).query_async(conn).await?;
    let mut queues: Vec<String> = members
        .iter()
        .filter_map(|m| parse_binding_member(m))
        .filter(|(rk, _, _)| *rk == routing_key)
        .map(|(_, _, q)| q.to_owned())
        .collect();
    queues.dedup();
    if queues.is_empty() {
        queues.push(routing_key.to_owned());
    }
    Ok(queues)
}
