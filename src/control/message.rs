//! The pidbox wire model, transport-neutral: a command as kombu's `Mailbox._publish` sends
//! it and a reply as `Mailbox._publish_reply` sends it, both ways (built by a client or a
//! worker, decoded by the other).
//!
//! A command body is `{"method", "arguments", "destination", "pattern", "matcher"}` plus
//! `"ticket"` and `"reply_to": {"exchange", "routing_key"}` when a reply is wanted; its
//! headers are `{"clock": N, "expires": <epoch seconds or 0>}` and it is persistent
//! (`delivery_mode` 2). A reply body is `{<nodename>: <result>}` with headers
//! `{"ticket": <ticket>, "clock": N}`, transient (`delivery_mode` 1).

use crate::codec::{AcceptContent, ContentError, Serializer};
use crate::protocol::{OutgoingMessage, Properties, RawMessage};
use crate::value::{Dict, Value};

use super::matcher;

/// Why a pidbox message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The payload could not be decoded (or its content type is not accepted).
    #[error("cannot decode pidbox message: {0}")]
    Content(#[from] ContentError),
    /// The payload is not a mapping.
    #[error("pidbox message body is not a mapping but {0}")]
    NotAMapping(&'static str),
    /// A field has the wrong type.
    #[error("pidbox message field {field:?}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where a reply goes: the reply exchange and the client's routing key (its oid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// The reply exchange (`reply.celery.pidbox`).
    pub exchange: String,
    /// The routing key (the client's oid).
    pub routing_key: String,
}

/// A remote control command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The command name (`ping`, `stats`, ...).
    pub method: String,
    /// Its keyword arguments.
    pub arguments: Dict,
    /// The nodes it is for; `None` (or empty) for every node.
    pub destination: Option<Vec<String>>,
    /// A node name pattern, used with [`Command::matcher`] when there is no destination.
    pub pattern: Option<String>,
    /// `glob` or `pcre`.
    pub matcher: Option<String>,
    /// The reply ticket (a uuid), when a reply is wanted.
    pub ticket: Option<String>,
    /// Where to reply, when a reply is wanted.
    pub reply_to: Option<ReplyTo>,
    /// The sender's Lamport clock (`clock` header; 0 when absent).
    pub clock: u64,
    /// When the sender stops waiting, in epoch seconds (`expires` header; `None` for 0).
    pub expires: Option<f64>,
}

impl Command {
    /// A command for every node, no reply wanted.
    pub fn new(method: &str, arguments: Dict) -> Self {
        Command {
            method: method.to_owned(),
            arguments,
            destination: None,
            pattern: None,
            matcher: None,
            ticket: None,
            reply_to: None,
            clock: 0,
            expires: None,
        }
    }

    /// True when the sender wants a reply (kombu replies whenever `reply_to` is set).
    pub fn wants_reply(&self) -> bool {
        self.reply_to.is_some()
    }

    /// True when the sender stopped waiting before `now` (epoch seconds).
    pub fn is_expired(&self, now: f64) -> bool {
        self.expires.is_some_and(|e| e > 0.0 && now > e)
    }

    /// kombu's `Node.handle_message` rule: a non-empty `destination` must name `hostname`;
    /// else `pattern` with `matcher` must match it; else every node runs the command.
    pub fn is_for(&self, hostname: &str) -> bool {
        match (&self.destination, &self.pattern, &self.matcher) {
            (Some(d), _, _) if !d.is_empty() => d.iter().any(|n| n == hostname),
            (_, Some(p), Some(m)) if !p.is_empty() && !m.is_empty() => {
                matcher::matches(hostname, p, Some(m))
            }
            _ => true,
        }
    }

    /// The body, keys in kombu's order.
    pub fn body(&self) -> Value {
        let opt = |s: &Option<String>| s.clone().map_or(Value::None, Value::Str);
        let mut b = Dict::with_capacity(7);
        b.insert("method", self.method.as_str());
        b.insert("arguments", Value::Dict(self.arguments.clone()));
        b.insert(
            "destination",
            self.destination.as_ref().map_or(Value::None, |d| {
                Value::List(d.iter().map(|n| Value::Str(n.clone())).collect())
            }),
        );
        b.insert("pattern", opt(&self.pattern));
        b.insert("matcher", opt(&self.matcher));
        if let Some(reply_to) = &self.reply_to {
            b.insert("ticket", opt(&self.ticket));
            let mut r = Dict::with_capacity(2);
            r.insert("exchange", reply_to.exchange.as_str());
            r.insert("routing_key", reply_to.routing_key.as_str());
            b.insert("reply_to", Value::Dict(r));
        }
        Value::Dict(b)
    }

    /// The message to publish to the command exchange `exchange` (routing key `""`).
    pub fn encode(&self, serializer: Serializer, exchange: &str) -> OutgoingMessage {
        let mut headers = Dict::with_capacity(2);
        headers.insert("clock", clock_value(self.clock));
        headers.insert("expires", self.expires.map_or(Value::Int(0), Value::Float));
        outgoing(
            serializer,
            &self.body(),
            headers,
            2,
            exchange,
            String::new(),
        )
    }

    /// Reads a command from a delivered message, decoding it with the `accept` list.
    pub fn decode(raw: &RawMessage, accept: &AcceptContent) -> Result<Command, ControlError> {
        let body = accept.decode(&raw.content_type, &raw.body)?;
        let Value::Dict(b) = body else {
            return Err(ControlError::NotAMapping(type_name(&body)));
        };
        let method = match b.get("method") {
            Some(Value::Str(m)) => m.clone(),
            other => return Err(field("method", "a string", other)),
        };
        let arguments = match b.get("arguments") {
            None | Some(Value::None) => Dict::new(),
            Some(Value::Dict(d)) => d.clone(),
            other => return Err(field("arguments", "a mapping", other)),
        };
        let destination = match b.get("destination") {
            None | Some(Value::None) => None,
            Some(Value::List(v) | Value::Tuple(v)) => Some(
                v.iter()
                    .map(|n| match n {
                        Value::Str(s) => Ok(s.clone()),
                        other => Err(field("destination", "a list of names", Some(other))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            other => return Err(field("destination", "a list", other)),
        };
        let reply_to = match b.get("reply_to") {
            None | Some(Value::None) => None,
            Some(Value::Dict(r)) => Some(ReplyTo {
                exchange: string_field(r, "exchange", "reply_to")?.unwrap_or_default(),
                routing_key: string_field(r, "routing_key", "reply_to")?.unwrap_or_default(),
            }),
            other => return Err(field("reply_to", "a mapping", other)),
        };
        Ok(Command {
            method,
            arguments,
            destination,
            pattern: string_field(&b, "pattern", "pattern")?,
            matcher: string_field(&b, "matcher", "matcher")?,
            ticket: string_field(&b, "ticket", "ticket")?,
            reply_to,
            clock: header_clock(&raw.headers),
            expires: match raw.headers.get("expires") {
                Some(v) => number(v).filter(|e| *e > 0.0),
                None => None,
            },
        })
    }
}

/// A reply: one node's answer to one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The answering node.
    pub hostname: String,
    /// Its answer.
    pub result: Value,
    /// The command's ticket (`ticket` header).
    pub ticket: Option<String>,
    /// The node's Lamport clock (`clock` header).
    pub clock: u64,
}

impl Reply {
    /// The body `{hostname: result}`.
    pub fn body(&self) -> Value {
        let mut b = Dict::with_capacity(1);
        b.insert(self.hostname.as_str(), self.result.clone());
        Value::Dict(b)
    }

    /// The message to publish to `reply_to` (transient, headers `ticket` and `clock`).
    pub fn encode(&self, serializer: Serializer, reply_to: &ReplyTo) -> OutgoingMessage {
        let mut headers = Dict::with_capacity(2);
        headers.insert(
            "ticket",
            self.ticket.clone().map_or(Value::None, Value::Str),
        );
        headers.insert("clock", clock_value(self.clock));
        outgoing(
            serializer,
            &self.body(),
            headers,
            1,
            &reply_to.exchange,
            reply_to.routing_key.clone(),
        )
    }

    /// Reads the replies in a delivered reply message (normally one node; kombu's body is a
    /// mapping of node name to answer).
    pub fn decode(raw: &RawMessage, accept: &AcceptContent) -> Result<Vec<Reply>, ControlError> {
        let body = accept.decode(&raw.content_type, &raw.body)?;
        let Value::Dict(b) = body else {
            return Err(ControlError::NotAMapping(type_name(&body)));
        };
        let ticket = match raw.headers.get("ticket") {
            Some(Value::Str(t)) => Some(t.clone()),
            _ => None,
        };
        let clock = header_clock(&raw.headers);
        b.0.into_iter()
            .map(|(k, v)| match k {
                Value::Str(hostname) => Ok(Reply {
                    hostname,
                    result: v,
                    ticket: ticket.clone(),
                    clock,
                }),
                other => Err(field("reply", "keyed by node name", Some(&other))),
            })
            .collect()
    }
}

/// The `{"error": "<text>"}` answer Celery gives when a command fails (an unknown command's
/// `KeyError('x')` included).
pub fn error_result(text: impl Into<String>) -> Value {
    let mut d = Dict::with_capacity(1);
    d.insert("error", text.into());
    Value::Dict(d)
}

/// The `{"ok": "<text>"}` answer of Celery's `ok()`.
pub fn ok_result(text: impl Into<Value>) -> Value {
    let mut d = Dict::with_capacity(1);
    d.insert("ok", text.into());
    Value::Dict(d)
}

fn outgoing(
    serializer: Serializer,
    body: &Value,
    headers: Dict,
    delivery_mode: u8,
    exchange: &str,
    routing_key: String,
) -> OutgoingMessage {
    OutgoingMessage {
        body: serializer.encode(body),
        content_type: serializer.content_type().to_owned(),
        content_encoding: serializer.content_encoding().to_owned(),
        headers,
        properties: Properties {
            delivery_mode: Some(delivery_mode),
            ..Properties::default()
        },
        exchange: exchange.to_owned(),
        routing_key,
    }
}

fn clock_value(clock: u64) -> Value {
    Value::Int(i64::try_from(clock).unwrap_or(i64::MAX))
}

/// The `clock` header as a number (kombu sends an int; a numeric string or a float is taken
/// too; anything else counts as 0).
fn header_clock(headers: &Dict) -> u64 {
    headers
        .get("clock")
        .and_then(number)
        .filter(|c| c.is_finite() && *c >= 0.0)
        .map_or(0, |c| c.min(u64::MAX as f64) as u64)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string_field(d: &Dict, key: &str, name: &'static str) -> Result<Option<String>, ControlError> {
    match d.get(key) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        other => Err(field(name, "a string", other)),
    }
}

fn field(name: &'static str, wanted: &str, got: Option<&Value>) -> ControlError {
    ControlError::Field {
        field: name,
        reason: match got {
            None => format!("missing (expected {wanted})"),
            Some(v) => format!("expected {wanted}, got {}", type_name(v)),
        },
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) | Value::SurrogateStr(_) => "str",
        Value::Bytes(_) | Value::ByteArray(_) => "bytes",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Dict(_) => "dict",
        Value::Set(_) | Value::FrozenSet(_) => "set",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json;

    fn raw(body: &str, headers: &str) -> RawMessage {
        let headers = match json::decode(headers.as_bytes()) {
            Ok(Value::Dict(d)) => d,
            other => panic!("headers: {other:?}"),
        };
        RawMessage {
            body: body.as_bytes().to_vec(),
            content_type: "application/json".into(),
            content_encoding: "utf-8".into(),
            headers,
            ..RawMessage::default()
        }
    }

    fn accept() -> AcceptContent {
        AcceptContent::from_names(&["json"]).expect("json")
    }

    // A command exactly as Python's `app.control.inspect().ping()` sends it ([live]).
    const PING: &str = r#"{"method": "ping", "arguments": {}, "destination": null, "pattern": null, "matcher": null, "ticket": "5d2c1e33-7a1c-4bd8-9d2b-0a3bb8e3e0a1", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "4f1e0c9a-6b7d-3c2e-8a1f-2d3c4b5a6978"}}"#;

    #[test]
    fn decodes_a_python_ping() {
        let c = Command::decode(
            &raw(PING, r#"{"clock": 7, "expires": 1790000000.5}"#),
            &accept(),
        )
        .expect("decodes");
        assert_eq!(c.method, "ping");
        assert!(c.arguments.is_empty());
        assert_eq!(c.destination, None);
        assert_eq!(
            c.ticket.as_deref(),
            Some("5d2c1e33-7a1c-4bd8-9d2b-0a3bb8e3e0a1")
        );
        assert_eq!(
            c.reply_to,
            Some(ReplyTo {
                exchange: "reply.celery.pidbox".into(),
                routing_key: "4f1e0c9a-6b7d-3c2e-8a1f-2d3c4b5a6978".into()
            })
        );
        assert_eq!(c.clock, 7);
        assert_eq!(c.expires, Some(1790000000.5));
        assert!(c.wants_reply());
        assert!(!c.is_expired(1789999999.0));
        assert!(c.is_expired(1790000001.0));
    }

    #[test]
    fn a_command_round_trips_in_kombus_key_order() {
        let mut c = Command::new("ping", Dict::new());
        c.ticket = Some("5d2c1e33-7a1c-4bd8-9d2b-0a3bb8e3e0a1".into());
        c.reply_to = Some(ReplyTo {
            exchange: "reply.celery.pidbox".into(),
            routing_key: "4f1e0c9a-6b7d-3c2e-8a1f-2d3c4b5a6978".into(),
        });
        c.clock = 3;
        let out = c.encode(Serializer::Json, "celery.pidbox");
        assert_eq!(String::from_utf8(out.body.clone()).expect("utf-8"), PING);
        assert_eq!(out.exchange, "celery.pidbox");
        assert_eq!(out.routing_key, "");
        assert_eq!(out.properties.delivery_mode, Some(2));
        assert_eq!(out.headers.get("expires"), Some(&Value::Int(0)));
        let back = Command::decode(
            &RawMessage {
                body: out.body,
                content_type: out.content_type,
                content_encoding: out.content_encoding,
                headers: out.headers,
                ..RawMessage::default()
            },
            &accept(),
        )
        .expect("decodes");
        assert_eq!(back, c);
    }

    #[test]
    fn a_cast_has_no_ticket_nor_reply_to() {
        let c = Command::new("shutdown", Dict::new());
        let text = String::from_utf8(json::encode(&c.body())).expect("utf-8");
        assert_eq!(
            text,
            r#"{"method": "shutdown", "arguments": {}, "destination": null, "pattern": null, "matcher": null}"#
        );
        assert!(!c.wants_reply());
        assert!(!c.is_expired(f64::MAX));
    }

    #[test]
    fn destination_then_pattern_then_everyone() {
        let mut c = Command::new("ping", Dict::new());
        assert!(c.is_for("a@h"));
        c.destination = Some(vec!["b@h".into()]);
        assert!(!c.is_for("a@h"));
        assert!(c.is_for("b@h"));
        c.destination = Some(vec![]);
        assert!(c.is_for("a@h"));
        c.destination = None;
        c.pattern = Some("a@*".into());
        assert!(c.is_for("a@h"), "pattern without matcher: everyone");
        c.matcher = Some("glob".into());
        assert!(c.is_for("a@h"));
        assert!(!c.is_for("b@h"));
        c.matcher = Some("pcre".into());
        c.pattern = Some("b".into());
        assert!(c.is_for("b@h"));
        assert!(!c.is_for("ab@h"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            "[]",
            "{}",
            r#"{"method": 3}"#,
            r#"{"method": "ping", "arguments": [1]}"#,
            r#"{"method": "ping", "destination": "a@h"}"#,
            r#"{"method": "ping", "destination": [1]}"#,
            r#"{"method": "ping", "reply_to": "x"}"#,
            r#"{"method": "ping", "pattern": 1}"#,
            "not json",
        ] {
            assert!(
                Command::decode(&raw(body, "{}"), &accept()).is_err(),
                "{body}"
            );
        }
        let mut pickled = raw(PING, "{}");
        pickled.content_type = "application/x-python-serialize".into();
        assert!(matches!(
            Command::decode(&pickled, &accept()),
            Err(ControlError::Content(_))
        ));
    }

    #[test]
    fn odd_headers_count_as_absent() {
        let c = Command::decode(&raw(PING, r#"{"clock": "12", "expires": 0}"#), &accept())
            .expect("decodes");
        assert_eq!(c.clock, 12);
        assert_eq!(c.expires, None);
        let c = Command::decode(&raw(PING, r#"{"clock": -4, "expires": "x"}"#), &accept())
            .expect("decodes");
        assert_eq!(c.clock, 0);
        assert_eq!(c.expires, None);
    }

    #[test]
    fn a_reply_round_trips() {
        let r = Reply {
            hostname: "w1@h".into(),
            result: ok_result("pong"),
            ticket: Some("t".into()),
            clock: 9,
        };
        let to = ReplyTo {
            exchange: "reply.celery.pidbox".into(),
            routing_key: "oid".into(),
        };
        let out = r.encode(Serializer::Json, &to);
        assert_eq!(
            String::from_utf8(out.body.clone()).expect("utf-8"),
            r#"{"w1@h": {"ok": "pong"}}"#
        );
        assert_eq!(out.properties.delivery_mode, Some(1));
        assert_eq!(out.exchange, "reply.celery.pidbox");
        assert_eq!(out.routing_key, "oid");
        let back = Reply::decode(
            &RawMessage {
                body: out.body,
                content_type: out.content_type,
                content_encoding: out.content_encoding,
                headers: out.headers,
                ..RawMessage::default()
            },
            &accept(),
        )
        .expect("decodes");
        assert_eq!(back, vec![r]);
    }

    #[test]
    fn error_and_ok_shapes() {
        assert_eq!(
            String::from_utf8(json::encode(&error_result("KeyError('x')"))).expect("utf-8"),
            r#"{"error": "KeyError('x')"}"#
        );
        assert_eq!(
            String::from_utf8(json::encode(&ok_result("pong"))).expect("utf-8"),
            r#"{"ok": "pong"}"#
        );
    }
}
