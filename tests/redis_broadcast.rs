//! Broadcast on the Redis transport against a real Redis: a pidbox command over Pub/Sub
//! reaches a subscribed node queue; a reply through the direct reply exchange reaches the
//! subscribed reply queue; bindings are recorded as kombu 5.7 does and removed at the end.
//!
//! Needs Redis at `RCELERY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`); fails, never
//! skips, when it is not there. Each test works under its own `global_keyprefix`.

use std::sync::Arc;
use std::time::Duration;

use rcelery::broker::redis::{RedisBroker, RedisTransportOptions};
use rcelery::broker::Broker;
use rcelery::codec::{AcceptContent, Serializer};
use rcelery::control::{ok_result, Command, MailboxSettings, Reply, ReplyTo};
use rcelery::value::Dict;
use redis::AsyncCommands;

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

#[tokio::test]
async fn a_command_and_its_reply_go_round() {
    let prefix = format!("bc-{}:", uuid::Uuid::new_v4());
    let b = broker(&prefix).await;
    let mailbox = MailboxSettings::default();
    let accept = AcceptContent::from_names(&["json"]).expect("json");

    let mut node = Arc::clone(&b)
        .subscribe(mailbox.node_queue("w1@host"))
        .await
        .expect("subscribes");
    let mut replies = Arc::clone(&b)
        .subscribe(mailbox.reply_queue("oid1"))
        .await
        .expect("subscribes");

    let client = redis::Client::open(url()).expect("url");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let member = "oid1\x06\x16\x06\x16oid1.reply.celery.pidbox";
    let bound: Vec<String> = c
        .smembers(format!("{prefix}_kombu.binding.reply.celery.pidbox"))
        .await
        .expect("smembers");
    assert_eq!(bound, vec![member.to_owned()]);
    let deadline: Option<f64> = c
        .zscore(
            format!("{prefix}_kombu.binding_deadlines"),
            "reply.celery.pidbox",
        )
        .await
        .expect("zscore");
    assert!(deadline.is_some(), "an expiring queue refreshes a deadline");

    let mut cmd = Command::new("ping", Dict::new());
    cmd.ticket = Some("t1".into());
    cmd.reply_to = Some(ReplyTo {
        exchange: mailbox.reply_exchange_name(),
        routing_key: "oid1".into(),
    });
    // The Pub/Sub subscription is made in the background: publish until it arrives.
    let out = cmd.encode(Serializer::Json, &mailbox.exchange_name());
    let got = loop {
        b.publish_to(&mailbox.exchange(), &out)
            .await
            .expect("publishes");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), node.recv()).await {
            break m;
        }
    };
    let back = Command::decode(&got, &accept).expect("decodes");
    assert_eq!(back.method, "ping");
    assert_eq!(back.ticket.as_deref(), Some("t1"));

    let reply = Reply {
        hostname: "w1@host".into(),
        result: ok_result("pong"),
        ticket: Some("t1".into()),
        clock: 1,
    };
    let out = reply.encode(Serializer::Json, back.reply_to.as_ref().expect("reply_to"));
    b.publish_to(&mailbox.reply_exchange(), &out)
        .await
        .expect("publishes");
    let got = tokio::time::timeout(Duration::from_secs(5), replies.recv())
        .await
        .expect("a reply in time")
        .expect("open");
    assert_eq!(Reply::decode(&got, &accept).expect("decodes"), vec![reply]);

    // A reply to nobody is dropped, not left in a list.
    let mut stray = out.clone();
    stray.routing_key = "nobody".into();
    b.publish_to(&mailbox.reply_exchange(), &stray)
        .await
        .expect("publishes");
    let exists: bool = c.exists(format!("{prefix}nobody")).await.expect("exists");
    assert!(!exists);

    drop(replies);
    drop(node);
    let mut left = vec![member.to_owned()];
    for _ in 0..50 {
        left = c
            .smembers(format!("{prefix}_kombu.binding.reply.celery.pidbox"))
            .await
            .expect("smembers");
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "an auto-delete queue's binding goes: {left:?}"
    );
}

#[tokio::test]
async fn a_pubsub_subscription_survives_a_killed_connection() {
    let prefix = format!("bc-{}:", uuid::Uuid::new_v4());
    let b = broker(&prefix).await;
    let mailbox = MailboxSettings::default();
    let accept = AcceptContent::from_names(&["json"]).expect("json");
    let node = format!("n-{}", uuid::Uuid::new_v4());
    let mut rx = Arc::clone(&b)
        .subscribe(mailbox.node_queue(&node))
        .await
        .expect("subscribes");
    let out = Command::new("ping", Dict::new()).encode(Serializer::Json, &mailbox.exchange_name());
    let first = until_received(&b, &mailbox, &out, &mut rx).await;
    assert_eq!(
        Command::decode(&first, &accept).expect("decodes").method,
        "ping"
    );
    let client = redis::Client::open(url()).expect("url");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut c)
        .await
        .expect("client kill");
    assert!(killed >= 1);
    // Drain what was in flight, then the subscription must come back by itself.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {}
    let again = until_received(&b, &mailbox, &out, &mut rx).await;
    assert_eq!(
        Command::decode(&again, &accept).expect("decodes").method,
        "ping"
    );
}

/// Publishes `out` until the subscription `rx` gets a message (it subscribes in the
/// background).
async fn until_received(
    b: &RedisBroker,
    mailbox: &MailboxSettings,
    out: &rcelery::protocol::OutgoingMessage,
    rx: &mut tokio::sync::mpsc::Receiver<rcelery::protocol::RawMessage>,
) -> rcelery::protocol::RawMessage {
    for _ in 0..200 {
        b.publish_to(&mailbox.exchange(), out)
            .await
            .expect("publishes");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            return m;
        }
    }
    panic!("no broadcast received");
}
