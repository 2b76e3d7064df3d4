//! The event publisher against a real Redis: events sent through the dispatcher reach a
//! receiver subscribed to the `celeryev` fanout exchange as Celery's messages (JSON,
//! headers `{hostname}`, delivery mode 1), several task events at once as one `task.multi`
//! list, and a full buffer drops events without waiting.
//!
//! Needs Redis at `RCELERY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`); fails, never
//! skips, when it is not there. Each test works under its own `global_keyprefix`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rcelery::broker::redis::{RedisBroker, RedisTransportOptions};
use rcelery::broker::{Broker, QueueSpec};
use rcelery::events::{
    event_exchange, fields, worker_event, EventDispatcher, EventSettings, Publisher, WorkerCounts,
};
use rcelery::protocol::RawMessage;
use rcelery::value::Value;

fn url() -> String {
    std::env::var("RCELERY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

async fn broker(prefix: &str) -> Arc<RedisBroker> {
    let options = RedisTransportOptions {
        global_keyprefix: prefix.to_owned(),
        ..RedisTransportOptions::default()
    };
    Arc::new(
        RedisBroker::connect(&url(), options)
            .await
            .unwrap_or_else(|e| panic!("Redis for tests is not reachable at {}: {e}", url())),
    )
}

/// A receiver's queue, as Celery's `EventReceiver` binds it (`#`, on the fanout exchange).
fn receiver_queue() -> QueueSpec {
    let ex = event_exchange("redis");
    QueueSpec {
        exchange: ex.name,
        exchange_type: ex.kind,
        routing_key: "#".into(),
        durable: false,
        auto_delete: true,
        ..QueueSpec::direct(&format!("celeryev.{}", uuid::Uuid::new_v4()))
    }
}

fn body(m: &RawMessage) -> Value {
    rcelery::codec::json::decode(&m.body).expect("a JSON body")
}

#[tokio::test]
async fn events_reach_a_receiver_as_celerys_messages() {
    let prefix = format!("ev-{}:", uuid::Uuid::new_v4());
    let b = broker(&prefix).await;
    let mut rx = Arc::clone(&b)
        .subscribe(receiver_queue())
        .await
        .expect("subscribes");
    let settings = EventSettings {
        task_events: true,
        ..EventSettings::default()
    };
    let (events, queue) = EventDispatcher::new(&settings, Arc::default());
    let broker: Arc<dyn Broker> = b.clone();
    let publisher = Publisher::spawn(broker, queue, events.clone(), "w1@test".into());

    // The Pub/Sub subscription is made in the background: send until one arrives.
    let first = loop {
        events.send(worker_event(
            "worker-heartbeat",
            2.0,
            WorkerCounts::default(),
        ));
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            break m;
        }
    };
    assert_eq!(first.headers.get("hostname"), Some(&Value::str("w1@test")));
    assert_eq!(first.properties.delivery_mode, Some(1));
    assert_eq!(first.content_type, "application/json");
    let hb = body(&first);
    let hb = hb.as_dict().expect("a dict");
    assert_eq!(hb.get("type"), Some(&Value::str("worker-heartbeat")));
    assert_eq!(hb.get("hostname"), Some(&Value::str("w1@test")));

    let ids: Vec<String> = (0..50).map(|i| format!("task-{i}")).collect();
    for id in &ids {
        events.send(fields::task_started(id));
    }
    let mut seen = Vec::new();
    let mut lists = 0;
    while seen.len() < ids.len() {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the task events arrive")
            .expect("subscribed");
        let items = match body(&m) {
            Value::List(items) => {
                lists += 1;
                assert_eq!(m.delivery_info.routing_key, "task.multi");
                items
            }
            Value::Dict(d) if d.get("type") == Some(&Value::str("worker-heartbeat")) => continue,
            single => vec![single],
        };
        for e in items {
            let d = e.as_dict().expect("an event");
            assert_eq!(d.get("type"), Some(&Value::str("task-started")));
            seen.push(
                d.get("uuid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    assert_eq!(seen, ids, "every event, in the order sent");
    assert!(lists >= 1, "fifty events sent at once go out in batches");
    publisher.close(Duration::from_secs(5)).await;
    assert_eq!(events.stats().dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_full_buffer_drops_without_waiting() {
    let settings = EventSettings {
        task_events: true,
        buffer: 4,
        ..EventSettings::default()
    };
    // No publisher reads the queue: it stays full.
    let (events, _queue) = EventDispatcher::new(&settings, Arc::default());
    for i in 0..1000 {
        events.send(fields::task_started(&format!("t{i}")));
    }
    assert_eq!(events.stats().dropped.load(Ordering::Relaxed), 996);
}
