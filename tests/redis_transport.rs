//! The Redis transport against a real Redis: fetch order, ack emulation, restore, garbage.
//!
//! Needs Redis at `RCELERY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`); fails, never
//! skips, when it is not there. Each test works under its own `global_keyprefix`.

use std::sync::Arc;
use std::time::Duration;

use rcelery::broker::redis::{RedisBroker, RedisTransportOptions};
use rcelery::broker::{Broker, Delivery, PrefetchWindow, QueueSpec};
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("RCELERY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

async fn conn() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url()).expect("valid test Redis URL");
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis for tests is not reachable at {}: {e}", url()))
}

/// A kombu envelope as Celery 5.5 writes it (body: base64 of a JSON v2 body).
fn envelope(id: &str, priority: u8) -> String {
    let body = format!("[[\"{id}\"], {{}}, {{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}}]");
    let b64 = base64_encode(body.as_bytes());
    format!(
        "{{\"body\": \"{b64}\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", \
\"headers\": {{\"lang\": \"py\", \"task\": \"tasks.echo\", \"id\": \"{id}\", \"retries\": 0}}, \
\"properties\": {{\"correlation_id\": \"{id}\", \"reply_to\": \"r\", \"delivery_mode\": 2, \
\"delivery_info\": {{\"exchange\": \"\", \"routing_key\": \"q\"}}, \"priority\": {priority}, \
\"body_encoding\": \"base64\", \"delivery_tag\": \"tag-{id}\"}}}}"
    )
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Fixture {
    prefix: String,
    conn: redis::aio::MultiplexedConnection,
}

impl Fixture {
    async fn new() -> Fixture {
        let prefix = format!("rcelery-test-{}:", uuid::Uuid::new_v4());
        Fixture {
            prefix,
            conn: conn().await,
        }
    }

    fn options(&self) -> RedisTransportOptions {
        RedisTransportOptions {
            global_keyprefix: self.prefix.clone(),
            ..RedisTransportOptions::default()
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn push(&mut self, key: &str, value: &str) {
        let k = self.key(key);
        let _: () = self.conn.lpush(k, value).await.expect("LPUSH");
    }

    async fn cleanup(mut self) {
        let keys: Vec<String> = self
            .conn
            .keys(format!("{}*", self.prefix))
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: () = self.conn.del(keys).await.unwrap_or(());
        }
    }
}

async fn start(
    f: &Fixture,
    window: usize,
) -> (Arc<RedisBroker>, tokio::sync::mpsc::Receiver<Delivery>) {
    let broker = Arc::new(
        RedisBroker::connect(&url(), f.options())
            .await
            .expect("broker connects"),
    );
    let rx = Arc::clone(&broker)
        .consume(
            vec![QueueSpec::direct("q")].into(),
            PrefetchWindow::new(window),
        )
        .await
        .expect("consume starts");
    (broker, rx)
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5s")
        .expect("channel open")
}

#[tokio::test]
async fn priorities_come_first_and_fifo_within_a_priority() {
    let mut f = Fixture::new().await;
    f.push("q", &envelope("low-1", 0)).await;
    f.push("q", &envelope("low-2", 0)).await;
    f.push("q\x06\x166", &envelope("p7", 7)).await;
    f.push("q\x06\x163", &envelope("p5", 5)).await;
    let (_broker, mut rx) = start(&f, 10).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(
            next(&mut rx)
                .await
                .raw
                .properties
                .correlation_id
                .unwrap_or_default(),
        );
    }
    assert_eq!(order, ["low-1", "low-2", "p5", "p7"]);
    f.cleanup().await;
}

#[tokio::test]
async fn delivered_messages_are_unacked_until_acked() {
    let mut f = Fixture::new().await;
    f.push("q", &envelope("a", 0)).await;
    let (broker, mut rx) = start(&f, 4).await;
    let d = next(&mut rx).await;
    assert_eq!(d.tag, "tag-a");
    let stored: Option<String> = f.conn.hget(f.key("unacked"), "tag-a").await.expect("HGET");
    let stored = stored.expect("recorded in unacked");
    assert!(stored.starts_with("[{\"body\""), "{stored}");
    assert!(stored.ends_with("}, \"\", \"q\"]"), "{stored}");
    let score: Option<f64> = f
        .conn
        .zscore(f.key("unacked_index"), "tag-a")
        .await
        .expect("ZSCORE");
    assert!(score.is_some());
    broker.ack(&d.tag);
    broker.flush().await;
    let left: i64 = f.conn.hlen(f.key("unacked")).await.expect("HLEN");
    let idx: i64 = f.conn.zcard(f.key("unacked_index")).await.expect("ZCARD");
    assert_eq!((left, idx), (0, 0));
    f.cleanup().await;
}

#[tokio::test]
async fn envelopes_in_another_shape_are_still_recorded_with_their_route() {
    // Properties in another order and an escaped routing key: the fetch script's fast path
    // does not match, and its full JSON decode must still find tag, exchange and routing key.
    let mut f = Fixture::new().await;
    let shuffled = envelope("s", 0)
        .replace("\"routing_key\": \"q\"", "\"routing_key\": \"q\\u00e9\"")
        .replace(
            ", \"body_encoding\": \"base64\", \"delivery_tag\": \"tag-s\"}}",
            "}}",
        )
        .replace(
            "\"properties\": {",
            "\"properties\": {\"delivery_tag\": \"tag-s\", \"body_encoding\": \"base64\", ",
        );
    assert!(
        shuffled.contains("\"properties\": {\"delivery_tag\""),
        "{shuffled}"
    );
    f.push("q", &shuffled).await;
    let (broker, mut rx) = start(&f, 4).await;
    let d = next(&mut rx).await;
    assert_eq!(d.tag, "tag-s");
    let stored: Option<String> = f.conn.hget(f.key("unacked"), "tag-s").await.expect("HGET");
    let stored = stored.expect("recorded in unacked");
    assert!(stored.ends_with("}, \"\", \"q\u{e9}\"]"), "{stored}");
    broker.ack(&d.tag);
    broker.flush().await;
    f.cleanup().await;
}

#[tokio::test]
async fn each_message_is_recorded_with_its_own_route_and_tag() {
    // Uuid-long tags: the fetch script reuses the route of a tail it has just read, and must
    // notice a tail that differs.
    let mut f = Fixture::new().await;
    let ids: Vec<String> = (1..=5).map(|i| format!("{i:0>32}")).collect();
    let routes = [("", "q"), ("", "q"), ("", "other"), ("ex", "q"), ("", "q")];
    for (id, (ex, rk)) in ids.iter().zip(routes) {
        let e = envelope(id, 0).replace(
            "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"q\"}",
            &format!("\"delivery_info\": {{\"exchange\": \"{ex}\", \"routing_key\": \"{rk}\"}}"),
        );
        f.push("q", &e).await;
    }
    let (broker, mut rx) = start(&f, 5).await;
    for _ in 0..5 {
        next(&mut rx).await;
    }
    for (id, (ex, rk)) in ids.iter().zip(routes) {
        let tag = format!("tag-{id}");
        assert_eq!(tag.len(), 36);
        let stored: Option<String> = f.conn.hget(f.key("unacked"), &tag).await.expect("HGET");
        let stored = stored.unwrap_or_else(|| panic!("{tag} recorded in unacked"));
        assert!(
            stored.ends_with(&format!(
                "\"delivery_tag\": \"{tag}\"}}}}, \"{ex}\", \"{rk}\"]"
            )),
            "{stored}"
        );
        broker.ack(&tag);
    }
    broker.flush().await;
    f.cleanup().await;
}

#[tokio::test]
async fn restore_puts_messages_back_in_order_flagged_redelivered() {
    let mut f = Fixture::new().await;
    for id in ["a", "b", "c"] {
        f.push("q", &envelope(id, 0)).await;
    }
    let (broker, mut rx) = start(&f, 3).await;
    let mut tags = Vec::new();
    for _ in 0..3 {
        tags.push(next(&mut rx).await.tag);
    }
    broker.stop_consuming();
    let n = broker.restore(tags).await.expect("restore");
    assert_eq!(n, 3);
    let items: Vec<String> = f.conn.lrange(f.key("q"), 0, -1).await.expect("LRANGE");
    // RPOP takes from the right: the oldest ("a") must be there.
    let ids: Vec<bool> = items
        .iter()
        .map(|i| i.contains("\"redelivered\": true"))
        .collect();
    assert_eq!(ids, [true, true, true]);
    assert!(items[2].contains("\"id\": \"a\""), "{}", items[2]);
    assert!(items[0].contains("\"id\": \"c\""), "{}", items[0]);
    let left: i64 = f.conn.hlen(f.key("unacked")).await.expect("HLEN");
    assert_eq!(left, 0);
    f.cleanup().await;
}

#[tokio::test]
async fn reject_with_requeue_goes_to_the_back() {
    let mut f = Fixture::new().await;
    f.push("q", &envelope("a", 0)).await;
    let (broker, mut rx) = start(&f, 1).await;
    let d = next(&mut rx).await;
    broker.stop_consuming();
    f.push("q", &envelope("b", 0)).await;
    broker.reject(&d.tag, true);
    broker.flush().await;
    let items: Vec<String> = f.conn.lrange(f.key("q"), 0, -1).await.expect("LRANGE");
    assert_eq!(items.len(), 2);
    assert!(
        items[0].contains("\"id\": \"a\""),
        "requeued message is last in line"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn garbage_is_dropped_and_the_next_message_delivered() {
    let mut f = Fixture::new().await;
    f.push("q", "this is not json").await;
    f.push("q", "{\"body\": 1}").await;
    f.push("q", &envelope("ok", 0)).await;
    let (_broker, mut rx) = start(&f, 4).await;
    let d = next(&mut rx).await;
    assert_eq!(d.raw.properties.correlation_id.as_deref(), Some("ok"));
    let left: i64 = f.conn.llen(f.key("q")).await.expect("LLEN");
    assert_eq!(left, 0);
    f.cleanup().await;
}

#[tokio::test]
async fn messages_unacked_past_the_visibility_timeout_are_restored_at_start() {
    let mut f = Fixture::new().await;
    let env = envelope("lost", 0);
    let stale = format!("[{env}, \"\", \"q\"]");
    let _: () = f
        .conn
        .hset(f.key("unacked"), "tag-lost", stale)
        .await
        .expect("HSET");
    let _: () = f
        .conn
        .zadd(f.key("unacked_index"), "tag-lost", 1.0)
        .await
        .expect("ZADD");
    let (_broker, mut rx) = start(&f, 1).await;
    let d = next(&mut rx).await;
    assert_eq!(d.tag, "tag-lost");
    assert!(d.raw.delivery_info.redelivered);
    f.cleanup().await;
}

#[tokio::test]
async fn the_prefetch_window_bounds_unsettled_deliveries() {
    let mut f = Fixture::new().await;
    for i in 0..5 {
        f.push("q", &envelope(&format!("m{i}"), 0)).await;
    }
    let (broker, mut rx) = start(&f, 2).await;
    let a = next(&mut rx).await;
    let _b = next(&mut rx).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "window of 2 is full"
    );
    broker.ack(&a.tag);
    drop(a);
    let c = next(&mut rx).await;
    assert_eq!(c.raw.properties.correlation_id.as_deref(), Some("m2"));
    f.cleanup().await;
}

/// The test URL with another database number (results live apart from the broker's keys).
fn other_db_url() -> String {
    let u = url();
    match u.rsplit_once('/') {
        Some((head, db)) if db.parse::<u32>().is_ok() => {
            let other = if db == "14" { "13" } else { "14" };
            format!("{head}/{other}")
        }
        _ => format!("{}/14", u.trim_end_matches('/')),
    }
}

#[tokio::test]
async fn a_backend_on_the_same_server_stores_with_the_acks_in_order() {
    use rcelery::backend::redis::RedisBackend;
    use rcelery::backend::{MetaEncoder, ResultBackend, ResultRecord, State};
    use rcelery::codec::Serializer;
    use rcelery::value::Value;

    let mut f = Fixture::new().await;
    for id in ["a", "b"] {
        f.push("q", &envelope(id, 0)).await;
    }
    let (broker, mut rx) = start(&f, 1).await;
    let encoder = MetaEncoder {
        serializer: Serializer::Json,
        extended: false,
        timezone: chrono_tz::UTC,
    };
    let results_prefix = format!("{}results:", f.prefix);
    let mut backend = RedisBackend::connect(
        &other_db_url(),
        encoder,
        Some(Duration::from_secs(60)),
        &results_prefix,
    )
    .await
    .expect("backend connects");
    assert!(rcelery::redis_client::same_server(&url(), &other_db_url()));
    assert!(backend.share_lane(broker.settle_lane()));
    assert!(backend.orders_writes_before_acks());
    let record = |id: &str, result: i64| ResultRecord {
        task_id: id.to_owned(),
        state: State::Success,
        result: Value::Int(result),
        traceback: None,
        children: Vec::new(),
        group_id: None,
        parent_id: None,
        extended: None,
        reply_to: None,
        correlation_id: None,
    };

    // Window of one: "b" can only arrive once "a" is acked, and the ack goes right after the
    // write is queued, before its reply.
    let a = next(&mut rx).await;
    let stored = backend.store(record("a", 1));
    broker.ack(&a.tag);
    drop(a); // frees the prefetch slot, as the worker does on ack
    stored.await.expect("stored through the lane");
    let b = next(&mut rx).await;
    assert_eq!(b.tag, "tag-b");

    let mut results = redis::Client::open(other_db_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let key_a = format!("{results_prefix}celery-task-meta-a");
    let meta: String = results.get(&key_a).await.expect("GET meta");
    assert!(
        meta.starts_with(r#"{"status": "SUCCESS", "result": 1,"#),
        "{meta}"
    );
    let ttl: i64 = results.ttl(&key_a).await.expect("TTL");
    assert!(ttl > 0 && ttl <= 60, "ttl {ttl}");
    let in_broker_db: bool = f.conn.exists(&key_a).await.expect("EXISTS");
    assert!(!in_broker_db, "the write must go to the backend's database");

    // A stored SUCCESS is never overwritten, also through the lane.
    let again = backend.store(ResultRecord {
        state: State::Failure,
        ..record("a", 2)
    });
    broker.ack(&b.tag);
    again.await.expect("queued write answered");
    broker.flush().await;
    let meta_after: String = results.get(&key_a).await.expect("GET meta");
    assert_eq!(meta_after, meta);
    let left: i64 = f.conn.hlen(f.key("unacked")).await.expect("HLEN");
    assert_eq!(left, 0);
    let _: () = results.del(&key_a).await.expect("DEL");
    f.cleanup().await;
}

#[tokio::test]
async fn garbage_with_a_kombu_tail_leaves_nothing_in_unacked() {
    let mut f = Fixture::new().await;
    // Not JSON, but its tail looks like kombu's: the fetch script records it under its tag.
    let good = envelope("after", 0);
    let tail = &good[good.find("\"properties\"").expect("properties")..];
    let garbage = format!(
        "{{\"body\": not json, {}",
        tail.replace("tag-after", "tag-garbage")
    );
    f.push("q", &garbage).await;
    f.push("q", &good).await;
    let (broker, mut rx) = start(&f, 4).await;
    let d = next(&mut rx).await;
    assert_eq!(d.tag, "tag-after");
    broker.ack(&d.tag);
    broker.flush().await;
    let unacked: i64 = f.conn.hlen(f.key("unacked")).await.expect("HLEN");
    assert_eq!(
        unacked, 0,
        "the garbage must be removed from unacked at once"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn renewing_keeps_held_messages_from_being_restored() {
    let mut f = Fixture::new().await;
    f.push("q", &envelope("held", 0)).await;
    let (broker, mut rx) = start(&f, 4).await;
    let d = next(&mut rx).await;
    let before: f64 = f
        .conn
        .zscore(f.key("unacked_index"), &d.tag)
        .await
        .expect("ZSCORE");
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker
        .renew(std::slice::from_ref(&d.tag))
        .await
        .expect("renew");
    let after: f64 = f
        .conn
        .zscore(f.key("unacked_index"), &d.tag)
        .await
        .expect("ZSCORE");
    assert!(
        after > before,
        "the hold was not renewed: {before} -> {after}"
    );
    // A tag no longer held (acked) is not brought back into the index by a late renewal.
    broker.ack(&d.tag);
    broker.flush().await;
    broker
        .renew(std::slice::from_ref(&d.tag))
        .await
        .expect("renew");
    let gone: Option<f64> = f
        .conn
        .zscore(f.key("unacked_index"), &d.tag)
        .await
        .expect("ZSCORE");
    assert_eq!(gone, None);
    assert!(broker.renew_interval().is_some());
    f.cleanup().await;
}

#[tokio::test]
async fn a_byte_budget_splits_batches_and_keeps_the_order() {
    let mut f = Fixture::new().await;
    // Each message ~40 kB; a budget of 100 kB takes at most 3 per fetch and gives the rest back.
    let padding = "x".repeat(40_000);
    for i in 0..8 {
        let env = envelope(&format!("big{i}"), 0).replace(
            "\"lang\": \"py\"",
            &format!("\"lang\": \"py\", \"pad\": \"{padding}\""),
        );
        f.push("q", &env).await;
    }
    let options = RedisTransportOptions {
        rcelery_max_message_bytes: 100_000,
        ..f.options()
    };
    let broker = Arc::new(
        RedisBroker::connect(&url(), options)
            .await
            .expect("broker connects"),
    );
    let mut rx = Arc::clone(&broker)
        .consume(vec![QueueSpec::direct("q")].into(), PrefetchWindow::new(16))
        .await
        .expect("consume starts");
    let mut seen = Vec::new();
    for _ in 0..8 {
        let d = next(&mut rx).await;
        seen.push(d.raw.properties.correlation_id.clone().unwrap_or_default());
    }
    let want: Vec<String> = (0..8).map(|i| format!("big{i}")).collect();
    assert_eq!(
        seen, want,
        "messages given back over budget must keep their place"
    );
    f.cleanup().await;
}
