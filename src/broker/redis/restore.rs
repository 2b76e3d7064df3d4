//! Giving unacked messages back to their queues: kombu's `restore_by_tag` (reject with
//! requeue, shutdown) and `restore_visible` (messages unacked for longer than the
//! visibility timeout, e.g. left by a killed worker).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::RedisError;

use super::envelope::{mark_redelivered, priority_of};
use super::keys::{parse_binding_member, Keys};
use super::Scripts;
use crate::broker::BrokerError;
use crate::codec::json;
use crate::redis_client::link::Link;
use crate::value::Value;

/// Seconds since the epoch, as kombu scores `unacked_index`.
pub(super) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
) -> Result<usize, RedisError> {
    let mut restored = 0;
    for chunk in tags.chunks(256) {
        let stored: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(&keys.unacked)
            .arg(chunk)
            .query_async(conn)
            .await?;
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
            inv.arg(tag)
                .arg(payload)
                .arg(if leftmost { "1" } else { "0" });
            count += 1;
        }
        if count > 0 || !pipe.is_empty() {
            let results: Vec<redis::Value> = pipe.query_async(conn).await?;
            restored += results
                .iter()
                .filter(|v| matches!(v, redis::Value::Int(1)))
                .count();
        }
    }
    Ok(restored)
}

/// kombu's `restore_visible`: gives back every message unacked for longer than the
/// visibility timeout, holding `unacked_mutex` so that one worker at a time does it.
///
/// The mutex is taken with a token of ours and an expiry, and released only by its owner
/// (compare-and-delete). When a call times out on our side it may still run on the server
/// (a `CLIENT PAUSE` queues it), so the token is remembered until its release is known to
/// have got through: the next attempt releases it first, instead of leaving the mutex held
/// until it expires.
pub(super) struct Restorer {
    keys: Keys,
    scripts: Scripts,
    visibility_timeout: f64,
    mutex_expire_secs: u64,
    /// A token that may still hold the mutex.
    unreleased: Mutex<Option<String>>,
}

impl Restorer {
    pub(super) fn new(
        keys: Keys,
        scripts: Scripts,
        visibility_timeout: f64,
        mutex_expire_secs: u64,
    ) -> Self {
        Restorer {
            keys,
            scripts,
            visibility_timeout,
            mutex_expire_secs,
            unreleased: Mutex::new(None),
        }
    }

    /// One restore pass over `link`; returns how many messages went back.
    pub(super) async fn restore_visible(&self, link: &Link) -> Result<usize, BrokerError> {
        let (generation, mut conn) = link.get().await?;
        let outcome = self.pass(&mut conn).await;
        match &outcome {
            Ok(_) => link.succeeded(),
            Err(e) => {
                link.failed(generation, e);
            }
        }
        Ok(outcome?)
    }

    async fn pass(&self, conn: &mut MultiplexedConnection) -> Result<usize, RedisError> {
        let leftover = self.unreleased_token();
        if let Some(token) = leftover {
            self.release(conn, &token).await?;
        }
        let token = uuid::Uuid::new_v4().to_string();
        self.set_unreleased(Some(token.clone()));
        let locked: Option<String> = redis::cmd("SET")
            .arg(&self.keys.unacked_mutex)
            .arg(&token)
            .arg("PX")
            .arg(self.mutex_expire_secs.saturating_mul(1000).max(1))
            .arg("NX")
            .query_async(conn)
            .await?;
        if locked.is_none() {
            self.set_unreleased(None);
            return Ok(0);
        }
        let ceiling = now_secs() - self.visibility_timeout;
        let restored = async {
            let tags: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&self.keys.unacked_index)
                .arg(ceiling)
                .arg(0)
                .query_async(conn)
                .await?;
            if tags.is_empty() {
                return Ok(0);
            }
            restore_tags(conn, &self.keys, &self.scripts, &tags, false).await
        }
        .await;
        let released = self.release(conn, &token).await;
        let restored = restored?;
        released?;
        Ok(restored)
    }

    /// Deletes the mutex if `token` holds it; forgets the token once that is known.
    async fn release(
        &self,
        conn: &mut MultiplexedConnection,
        token: &str,
    ) -> Result<(), RedisError> {
        let _: i64 = self
            .scripts
            .release_mutex
            .key(&self.keys.unacked_mutex)
            .arg(token)
            .invoke_async(conn)
            .await?;
        self.set_unreleased(None);
        Ok(())
    }

    fn unreleased_token(&self) -> Option<String> {
        self.unreleased.lock().ok().and_then(|t| t.clone())
    }

    fn set_unreleased(&self, token: Option<String>) {
        if let Ok(mut t) = self.unreleased.lock() {
            *t = token;
        }
    }
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
) -> Result<Vec<String>, RedisError> {
    if exchange.is_empty() {
        return Ok(vec![routing_key.to_owned()]);
    }
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.binding_set(exchange))
        .query_async(conn)
        .await?;
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
