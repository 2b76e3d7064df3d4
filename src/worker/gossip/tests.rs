use super::*;
use crate::protocol::DeliveryInfo;
use crate::value::Dict;

fn raw(routing_key: &str, body: &str, header_host: Option<&str>) -> RawMessage {
    let mut headers = Dict::new();
    if let Some(h) = header_host {
        headers.insert("hostname", h);
    }
    RawMessage {
        body: body.as_bytes().to_vec(),
        content_type: "application/json".to_owned(),
        content_encoding: "utf-8".to_owned(),
        headers,
        delivery_info: DeliveryInfo {
            routing_key: routing_key.to_owned(),
            ..DeliveryInfo::default()
        },
        ..RawMessage::default()
    }
}

#[test]
fn the_queue_is_declared_as_celerys_gossip_receiver() {
    let q = queue("amqp", 2.0);
    assert!(q.name.starts_with("celeryev."));
    assert_eq!(q.exchange, "celeryev");
    assert_eq!(q.exchange_type, "topic");
    assert_eq!(q.routing_key, "worker.#");
    assert!(q.auto_delete && !q.durable && !q.exclusive);
    assert_eq!(q.arguments.get("x-message-ttl"), Some(&Value::Int(2000)));
    assert_eq!(q.arguments.get("x-expires"), Some(&Value::Int(60_000)));
    assert_eq!(queue("redis", 2.0).exchange_type, "fanout");
}

#[test]
fn worker_events_are_read_and_others_skipped() {
    let accept = AcceptContent::default();
    let hb = raw(
        "worker.heartbeat",
        r#"{"type": "worker-heartbeat", "hostname": "b@h", "clock": 17, "freq": 2.0}"#,
        Some("a@h"),
    );
    let heard = read(&hb, &accept).unwrap().unwrap();
    assert_eq!(heard.hostname, "a@h", "the header names the node");
    assert_eq!(
        (heard.kind.as_str(), heard.clock, heard.freq),
        ("worker-heartbeat", 17, Some(2.0))
    );
    let v1 = raw(
        "worker.online",
        r#"{"type": "worker-online", "hostname": "b@h"}"#,
        None,
    );
    assert_eq!(read(&v1, &accept).unwrap().unwrap().hostname, "b@h");
    let task = raw("task.succeeded", "garbage", None);
    assert_eq!(read(&task, &accept), Ok(None));
    for body in [
        "not json",
        "[1, 2]",
        r#"{"type": "worker-heartbeat"}"#,
        r#"{"hostname": "x"}"#,
    ] {
        assert!(
            read(&raw("worker.heartbeat", body, None), &accept).is_err(),
            "{body}"
        );
    }
}

#[test]
fn another_nodes_event_moves_the_clock_past_it_and_ours_by_one() {
    let clock = LamportClock::new(5);
    let nodes = Nodes::default();
    let now = Instant::now();
    let heard = |host: &str, clock: u64| Heard {
        hostname: host.to_owned(),
        kind: "worker-heartbeat".to_owned(),
        clock,
        freq: Some(2.0),
    };
    take_in(&heard("b@h", 30), "a@h", &clock, &nodes, now);
    assert_eq!(clock.value(), 31);
    assert_eq!(nodes.alive(now), ["b@h"]);
    take_in(&heard("a@h", 100), "a@h", &clock, &nodes, now);
    assert_eq!(clock.value(), 32);
    assert_eq!(nodes.len(), 1, "our own events are not tracked");
}
