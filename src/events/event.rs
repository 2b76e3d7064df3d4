//! One event: its type, its own fields, and the common fields Celery's `Event()` adds, in
//! Celery's key order (`hostname, utcoffset, pid, clock, <fields>, timestamp, type`).

use crate::broker::ExchangeSpec;
use crate::protocol::{OutgoingMessage, Properties};
use crate::value::{Dict, Value};

/// The exchange events go to (Celery's `event_exchange` setting, `celeryev`).
pub const EVENT_EXCHANGE: &str = "celeryev";

/// An event before the dispatcher stamps it: its type (`task-succeeded`) and its own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event type, `<group>-<name>`.
    pub kind: &'static str,
    /// The type's own fields, in Celery's order.
    pub fields: Dict,
}

impl Event {
    /// An event of `kind` with `fields`.
    pub fn new(kind: &'static str, fields: Dict) -> Self {
        Event { kind, fields }
    }

    /// The group it belongs to (`task`, `worker`).
    pub fn group(&self) -> &str {
        group_of(self.kind)
    }
}

/// An event with what the dispatcher adds when it is sent: the Lamport clock value and the
/// time it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// The event.
    pub event: Event,
    /// The dispatcher's Lamport clock, moved forward for this event.
    pub clock: u64,
    /// When it was sent, seconds since the epoch.
    pub timestamp: f64,
}

impl Stamped {
    /// The event's body as Celery's `Event()` builds it.
    pub fn body(&self, hostname: &str, pid: u32, utcoffset: f64) -> Dict {
        let mut d = Dict::with_capacity(self.event.fields.len() + 6);
        d.insert("hostname", hostname);
        d.insert("utcoffset", Value::Float(utcoffset));
        d.insert("pid", i64::from(pid));
        d.insert("clock", i64::try_from(self.clock).unwrap_or(i64::MAX));
        for (k, v) in self.event.fields.iter() {
            d.0.push((k.clone(), v.clone()));
        }
        d.insert("timestamp", Value::Float(self.timestamp));
        d.insert("type", self.event.kind);
        d
    }
}

/// The group of an event type: the part before the first `-` (Celery's `group_from`).
pub fn group_of(kind: &str) -> &str {
    kind.split('-').next().unwrap_or(kind)
}

/// The routing key of an event type: `-` replaced by `.` (`task.succeeded`).
pub fn routing_key(kind: &str) -> String {
    kind.replace('-', ".")
}

/// The `celeryev` exchange as Celery declares it for `transport`: kombu's `Exchange`
/// defaults (durable, not auto-deleted), topic, but fanout on Redis (Celery's
/// `get_exchange`), where it goes over Pub/Sub.
pub fn event_exchange(transport: &str) -> ExchangeSpec {
    let kind = if transport == "redis" {
        "fanout"
    } else {
        "topic"
    };
    ExchangeSpec {
        name: EVENT_EXCHANGE.to_owned(),
        kind: kind.to_owned(),
        durable: true,
        auto_delete: false,
    }
}

/// A JSON event message as Celery's dispatcher publishes it: headers `{hostname}`,
/// `delivery_mode` 1, `application/json` in `utf-8`.
pub fn message(body: &Value, routing_key: String, hostname: &str) -> OutgoingMessage {
    let mut headers = Dict::with_capacity(1);
    headers.insert("hostname", hostname);
    OutgoingMessage {
        body: crate::codec::json::encode(body),
        content_type: "application/json".to_owned(),
        content_encoding: "utf-8".to_owned(),
        headers,
        properties: Properties {
            delivery_mode: Some(1),
            ..Properties::default()
        },
        exchange: EVENT_EXCHANGE.to_owned(),
        routing_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_and_group_follow_the_type() {
        assert_eq!(routing_key("worker-heartbeat"), "worker.heartbeat");
        assert_eq!(routing_key("task-succeeded"), "task.succeeded");
        assert_eq!(group_of("task-succeeded"), "task");
        assert_eq!(group_of("worker-online"), "worker");
    }

    #[test]
    fn the_exchange_is_fanout_on_redis_only() {
        assert_eq!(event_exchange("redis").kind, "fanout");
        assert_eq!(event_exchange("amqp").kind, "topic");
        assert!(event_exchange("amqp").durable);
    }

    #[test]
    fn the_body_has_celerys_key_order() {
        let mut f = Dict::new();
        f.insert("uuid", "abc");
        let s = Stamped {
            event: Event::new("task-started", f),
            clock: 7,
            timestamp: 1.5,
        };
        let body = s.body("w@h", 42, 0.0);
        let keys: Vec<&str> = body.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "hostname",
                "utcoffset",
                "pid",
                "clock",
                "uuid",
                "timestamp",
                "type"
            ]
        );
        let m = message(&Value::Dict(body), routing_key("task-started"), "w@h");
        assert_eq!(m.routing_key, "task.started");
        assert_eq!(m.properties.delivery_mode, Some(1));
        assert_eq!(m.headers.get("hostname"), Some(&Value::str("w@h")));
        let text = String::from_utf8(m.body).unwrap_or_default();
        assert!(
            text.contains("\"type\": \"task-started\"")
                || text.contains("\"type\":\"task-started\""),
            "{text}"
        );
    }
}
