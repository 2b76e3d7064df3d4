//! Broadcast on Redis, as kombu's Redis transport does it: a fanout exchange (the pidbox
//! command exchange, `celeryev`) goes over Pub/Sub on channel
//! `<global_keyprefix>/<db>.<exchange>[/<routing_key>]` and its queues are `PSUBSCRIBE`s;
//! a direct or topic exchange (the pidbox reply exchange) is routed through its binding
//! table `_kombu.binding.<exchange>` into lists, read with `BRPOP` without acknowledgement.
//!
//! A subscription records its binding as kombu 5.7 does (a queue with `x-expires` refreshes
//! a binding deadline in `_kombu.binding_deadlines`; one without is also listed in
//! `_kombu.binding_permanent.<exchange>`), is made again after each reconnect, and removes
//! its binding (and, for an auto-delete list queue, its lists) when its receiver is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::Script;
use tokio::sync::mpsc;

use super::envelope;
use super::keys::{binding_member, parse_binding_member, Keys};
use crate::broker::{ExchangeSpec, QueueSpec};
use crate::protocol::RawMessage;
use crate::redis_client::client::Timeouts;
use crate::redis_client::endpoint::Endpoint;
use crate::redis_client::link::{Failure, Link};
use crate::value::Value;

/// kombu's `REFRESH_BINDING`: add the member, raise the exchange's deadline (server clock).
const REFRESH_BINDING: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[2], 'GT', ms + tonumber(ARGV[3]), ARGV[2])
";

/// kombu's `MIN_BINDING_TTL` (ms) and `BINDING_EXPIRES_FACTOR`.
const MIN_BINDING_TTL_MS: i64 = 60 * 60 * 1000;
const BINDING_EXPIRES_FACTOR: i64 = 2;

/// Messages waiting for the subscriber before new ones are dropped (broadcasts are lossy).
const CHANNEL_CAPACITY: usize = 256;

/// What broadcasting needs to know about the broker.
#[derive(Clone)]
pub(super) struct Broadcast {
    pub keys: Keys,
    /// `/<db>.` (kombu's `keyprefix_fanout`), or the `fanout_prefix` option's text, or "".
    pub fanout_prefix: String,
    /// kombu's `fanout_patterns` (true).
    pub fanout_patterns: bool,
    pub brpop_timeout: f64,
    pub endpoint: Arc<dyn Endpoint>,
    pub connect_timeout: Duration,
}

impl Broadcast {
    /// The Pub/Sub channel a fanout message to `exchange` with `routing_key` goes to.
    pub fn publish_channel(&self, exchange: &str, routing_key: &str) -> String {
        if self.fanout_patterns && !routing_key.is_empty() {
            format!(
                "{}{}{exchange}/{routing_key}",
                self.keys.prefix, self.fanout_prefix
            )
        } else {
            format!("{}{}{exchange}", self.keys.prefix, self.fanout_prefix)
        }
    }

    /// The channel pattern a fanout queue bound with `routing_key` subscribes to (`#` is
    /// `*` in a Redis pattern).
    pub fn subscribe_pattern(&self, exchange: &str, routing_key: &str) -> String {
        self.publish_channel(exchange, &routing_key.replace('#', "*"))
    }

    /// The lists a direct or topic `exchange` routes `routing_key` to (none when no binding
    /// matches: kombu drops such a message).
    pub async fn route(
        &self,
        conn: &mut MultiplexedConnection,
        exchange: &ExchangeSpec,
        routing_key: &str,
    ) -> Result<Vec<String>, redis::RedisError> {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.binding_set(&exchange.name))
            .query_async(conn)
            .await?;
        let topic = exchange.kind == "topic";
        let mut queues: Vec<String> = members
            .iter()
            .filter_map(|m| parse_binding_member(m))
            .filter(|(rk, _, _)| {
                if topic {
                    topic_matches(rk, routing_key)
                } else {
                    *rk == routing_key
                }
            })
            .map(|(_, _, q)| q.to_owned())
            .collect();
        queues.sort();
        queues.dedup();
        Ok(queues)
    }

    /// Records `queue`'s binding as kombu 5.7's `_queue_bind` does.
    pub async fn bind(
        &self,
        conn: &mut MultiplexedConnection,
        queue: &QueueSpec,
    ) -> Result<(), redis::RedisError> {
        let member = binding_member(&queue.routing_key, &topic_pattern(queue), &queue.name);
        let table = self.keys.binding_set(&queue.exchange);
        match binding_ttl_ms(queue) {
            Some(ttl) => {
                Script::new(REFRESH_BINDING)
                    .key(table)
                    .key(format!("{}_kombu.binding_deadlines", self.keys.prefix))
                    .arg(member)
                    .arg(&queue.exchange)
                    .arg(ttl)
                    .invoke_async::<()>(conn)
                    .await
            }
            None => {
                redis::pipe()
                    .cmd("SADD")
                    .arg(table)
                    .arg(&member)
                    .ignore()
                    .cmd("SADD")
                    .arg(self.permanent_set(&queue.exchange))
                    .arg(&member)
                    .ignore()
                    .query_async::<()>(conn)
                    .await
            }
        }
    }

    /// Removes `queue`'s binding (kombu's `_delete`), and its lists when `lists`.
    pub async fn unbind(
        &self,
        conn: &mut MultiplexedConnection,
        queue: &QueueSpec,
        lists: bool,
    ) -> Result<(), redis::RedisError> {
        let member = binding_member(&queue.routing_key, &topic_pattern(queue), &queue.name);
        let mut pipe = redis::pipe();
        pipe.cmd("SREM")
            .arg(self.keys.binding_set(&queue.exchange))
            .arg(&member)
            .ignore()
            .cmd("SREM")
            .arg(self.permanent_set(&queue.exchange))
            .arg(&member)
            .ignore();
        if lists {
            for key in self.keys.poll_keys(std::slice::from_ref(&queue.name)) {
                pipe.cmd("DEL").arg(key).ignore();
            }
        }
        pipe.query_async::<()>(conn).await
    }

    fn permanent_set(&self, exchange: &str) -> String {
        format!("{}_kombu.binding_permanent.{exchange}", self.keys.prefix)
    }
}

/// The binding table lifetime kombu 5.7 gives a queue with `x-expires` (ms), `None` for a
/// queue without.
fn binding_ttl_ms(queue: &QueueSpec) -> Option<i64> {
    match queue.arguments.get("x-expires") {
        Some(Value::Int(ms)) => {
            Some((ms.saturating_mul(BINDING_EXPIRES_FACTOR)).max(MIN_BINDING_TTL_MS))
        }
        _ => None,
    }
}

/// The binding member's pattern: empty but for a topic exchange, where kombu stores the
/// regex it matches with (`key_to_pattern`: `^a\.[^\.]+\..*?$` for `a.*.#`).
fn topic_pattern(queue: &QueueSpec) -> String {
    if queue.exchange_type != "topic" {
        return String::new();
    }
    let words: Vec<String> = queue
        .routing_key
        .split('.')
        .map(|w| match w {
            "#" => ".*?".to_owned(),
            "*" => r"[^\.]+".to_owned(),
            other => other
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || c == '#' || c == '*' {
                        c.to_string()
                    } else if c == '\0' {
                        "\\000".to_owned()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect(),
        })
        .collect();
    format!("^{}$", words.join(r"\."))
}

/// AMQP topic matching: `*` is one word, `#` zero or more.
pub fn topic_matches(binding: &str, key: &str) -> bool {
    fn go(b: &[&str], k: &[&str]) -> bool {
        match b.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&w, rest)) => match k.split_first() {
                Some((&kw, krest)) if w == "*" || w == kw => go(rest, krest),
                _ => false,
            },
        }
    }
    let b: Vec<&str> = binding.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&b, &k)
}

/// Starts a subscription to a fanout queue over Pub/Sub; returns its receiver.
pub(super) fn subscribe_fanout(
    b: Broadcast,
    link: Arc<Link>,
    queue: QueueSpec,
) -> mpsc::Receiver<RawMessage> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let pattern = b.subscribe_pattern(&queue.exchange, &queue.routing_key);
        let timeouts = Timeouts {
            connect: Some(b.connect_timeout),
            response: None,
        };
        let mut failures: u32 = 0;
        let mut refreshed = Instant::now();
        'outer: loop {
            if tx.is_closed() {
                break;
            }
            let opened = b.endpoint.open_pubsub(timeouts).await;
            let mut pubsub = match opened {
                Ok(p) => p,
                Err(e) => {
                    failures += 1;
                    note(failures, &queue.name, &e.error);
                    if wait_or_closed(&tx, backoff(failures)).await {
                        break;
                    }
                    continue;
                }
            };
            if let Err(e) = pubsub.psubscribe(&pattern).await {
                failures += 1;
                note(failures, &queue.name, &e);
                if wait_or_closed(&tx, backoff(failures)).await {
                    break;
                }
                continue;
            }
            if let Err(e) = link
                .run(|mut c| {
                    let (b, q) = (&b, &queue);
                    async move { b.bind(&mut c, q).await }
                })
                .await
            {
                tracing::warn!(queue = %queue.name, error = %e, "could not record the binding of a broadcast queue");
            }
            if failures > 0 {
                tracing::info!(queue = %queue.name, "broadcast subscription restored");
            }
            failures = 0;
            tracing::debug!(queue = %queue.name, %pattern, "subscribed");
            let mut stream = pubsub.into_on_message();
            let refresh_every = refresh_interval(&queue);
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => deliver(&tx, &queue.name, msg.get_payload_bytes()),
                        None => {
                            failures += 1;
                            tracing::warn!(queue = %queue.name, "broadcast subscription lost; subscribing again");
                            if wait_or_closed(&tx, backoff(failures)).await {
                                break 'outer;
                            }
                            continue 'outer;
                        }
                    },
                    _ = tx.closed() => break 'outer,
                    _ = tokio::time::sleep(refresh_every.saturating_sub(refreshed.elapsed())), if refresh_every > Duration::ZERO => {
                        refreshed = Instant::now();
                        let _ = link.run(|mut c| {
                            let (b, q) = (&b, &queue);
                            async move { b.bind(&mut c, q).await }
                        }).await;
                    }
                }
            }
        }
        if queue.auto_delete {
            let _ = link
                .run(|mut c| {
                    let (b, q) = (&b, &queue);
                    async move { b.unbind(&mut c, q, false).await }
                })
                .await;
        }
        tracing::debug!(queue = %queue.name, "unsubscribed");
    });
    rx
}

/// Starts a subscription to a list queue (direct or topic exchange) on its own blocking
/// connection `blocking`; returns its receiver.
pub(super) fn subscribe_list(
    b: Broadcast,
    link: Arc<Link>,
    blocking: Link,
    queue: QueueSpec,
) -> mpsc::Receiver<RawMessage> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let keys = b.keys.poll_keys(std::slice::from_ref(&queue.name));
        let expires = match queue.arguments.get("x-expires") {
            Some(Value::Int(ms)) if *ms > 0 => Some(*ms),
            _ => None,
        };
        let mut bound_generation = 0;
        let mut refreshed = Instant::now();
        let refresh_every = refresh_interval(&queue);
        let brpop_timeout = b.brpop_timeout.max(0.1);
        loop {
            if tx.is_closed() {
                break;
            }
            let (generation, mut conn) = match blocking.get().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(queue = %queue.name, error = %e, "broadcast queue: broker unreachable");
                    if wait_or_closed(&tx, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            };
            let stale = refresh_every > Duration::ZERO && refreshed.elapsed() >= refresh_every;
            if generation != bound_generation || stale {
                match b.bind(&mut conn, &queue).await {
                    Ok(()) => {
                        bound_generation = generation;
                        refreshed = Instant::now();
                    }
                    Err(e) => {
                        blocking.failed(generation, &e);
                        if wait_or_closed(&tx, blocking.backoff()).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let mut brpop = redis::cmd("BRPOP");
            brpop.arg(&keys).arg(brpop_timeout);
            let popped: Result<Option<(String, Vec<u8>)>, _> = tokio::select! {
                r = brpop.query_async(&mut conn) => r,
                _ = tx.closed() => break,
            };
            match popped {
                Ok(Some((_, payload))) => {
                    blocking.succeeded();
                    deliver(&tx, &queue.name, &payload);
                }
                Ok(None) => blocking.succeeded(),
                Err(e) => {
                    if blocking.failed(generation, &e) == Failure::Permanent {
                        tracing::warn!(queue = %queue.name, error = %e, "broadcast queue: BRPOP refused");
                    }
                    if wait_or_closed(&tx, blocking.backoff()).await {
                        break;
                    }
                    continue;
                }
            }
            if let Some(ms) = expires {
                // kombu's `_maybe_update_queues_expire`: the lists live `x-expires` after use.
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("PEXPIRE").arg(k).arg(ms).ignore();
                }
                let _ = pipe.query_async::<()>(&mut conn).await;
            }
        }
        if queue.auto_delete {
            let _ = link
                .run(|mut c| {
                    let (b, q) = (&b, &queue);
                    async move { b.unbind(&mut c, q, true).await }
                })
                .await;
        }
        tracing::debug!(queue = %queue.name, "unsubscribed");
    });
    rx
}

/// How often a queue with `x-expires` refreshes its binding deadline (a third of it, as
/// kombu); zero for a queue without.
fn refresh_interval(queue: &QueueSpec) -> Duration {
    binding_ttl_ms(queue).map_or(Duration::ZERO, |ms| {
        Duration::from_millis(u64::try_from(ms / 3).unwrap_or(0))
    })
}

fn deliver(tx: &mpsc::Sender<RawMessage>, queue: &str, payload: &[u8]) {
    match envelope::parse(payload) {
        Ok(env) => {
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(env.message) {
                tracing::warn!(queue, "broadcast message dropped: the receiver is behind");
            }
        }
        Err(e) => {
            tracing::warn!(queue, error = %e, "skipping a broadcast message that is not a kombu envelope")
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(5);
    Duration::from_millis(200u64 << exp).min(Duration::from_secs(5))
}

fn note(failures: u32, queue: &str, error: &redis::RedisError) {
    if failures == 1 || failures.is_multiple_of(30) {
        tracing::warn!(queue, error = %error, attempt = failures, "broadcast subscription: cannot reach the broker");
    }
}

/// Sleeps `d`; true when the receiver went away meanwhile.
async fn wait_or_closed(tx: &mpsc::Sender<RawMessage>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => tx.is_closed(),
        _ = tx.closed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching_as_amqp() {
        assert!(topic_matches("worker.#", "worker.heartbeat"));
        assert!(topic_matches("#", "task.multi"));
        assert!(topic_matches("task.*", "task.sent"));
        assert!(!topic_matches("task.*", "task.a.b"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(!topic_matches("worker.#", "task.sent"));
        assert!(topic_matches("oid", "oid"));
    }

    #[test]
    fn topic_pattern_is_kombus_regex() {
        let mut q = QueueSpec::direct("celeryev.x");
        q.exchange_type = "topic".into();
        q.routing_key = "worker.#".into();
        assert_eq!(topic_pattern(&q), r"^worker\..*?$");
        q.routing_key = "a.*".into();
        assert_eq!(topic_pattern(&q), r"^a\.[^\.]+$");
        q.routing_key = "a-b.#".into();
        assert_eq!(topic_pattern(&q), r"^a\-b\..*?$");
        q.exchange_type = "direct".into();
        assert_eq!(topic_pattern(&q), "");
    }
}
