//! kombu's Redis envelope: the JSON document stored in a queue list, with the serialized task
//! payload base64-encoded in `body`.

use base64::Engine;

use std::borrow::Cow;

use crate::codec::json::{self, PullReader};
use crate::protocol::{DeliveryInfo, Properties, RawMessage, TooLarge};
use crate::value::{Dict, Value};

/// Why a list item is not a kombu envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] json::JsonError),
    /// JSON, but not an object with a string `body`.
    #[error("not a kombu message envelope: {0}")]
    Shape(&'static str),
    /// `body_encoding` is base64 but the body is not.
    #[error("body is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
}

/// A parsed envelope.
#[derive(Debug)]
pub struct Envelope {
    /// The message inside.
    pub message: RawMessage,
    /// kombu's `properties.delivery_tag` (absent in hand-made messages).
    pub delivery_tag: Option<String>,
}

/// A list item that is not a usable envelope, with its delivery tag when one could be read
/// (the fetch script has then recorded it as unacked, and it must be settled).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct BadEnvelope {
    /// What was wrong.
    pub error: EnvelopeError,
    /// `properties.delivery_tag`, if the JSON had one.
    pub delivery_tag: Option<String>,
}

/// Parses a raw list item.
///
/// Walks the document member by member: strings are borrowed from `raw` (the base64 body is
/// decoded straight from it) and only `headers` becomes a [`Dict`]. The result is what a full
/// decode would give, for the same inputs (the same errors too); a repeated key counts with
/// its last value, as in Python.
///
/// The delivery tag, parsed or not, is the one the fetch script recorded the item under when
/// its fast path read one from the item's tail (see `tail.rs`), so that the item is always
/// settled under the tag it is held by in `unacked`.
pub fn parse(raw: &[u8]) -> Result<Envelope, BadEnvelope> {
    let parsed = walk(raw)
        .map_err(|e| bad(e.into(), None))
        .and_then(Fields::into_envelope);
    let Some(recorded) = super::tail::recorded_tag(raw) else {
        return parsed;
    };
    match parsed {
        Ok(env) => Ok(Envelope {
            delivery_tag: Some(recorded.to_owned()),
            ..env
        }),
        Err(e) => Err(bad(e.error, Some(recorded.to_owned()))),
    }
}

/// Reads what a refusal needs from a list item larger than `limit` bytes, without decoding
/// its body or building its headers: the delivery tag (to settle it), and the task id, name
/// and content type when they are plain strings. The message's body is empty and its
/// [`RawMessage::too_large`] set, so the worker refuses it.
pub fn parse_too_large(raw: &[u8], limit: usize) -> Result<Envelope, BadEnvelope> {
    let f = walk_skipping(raw).map_err(|e| bad(e.into(), None))?;
    if f.not_object {
        return Err(bad(
            EnvelopeError::Shape("top level is not an object"),
            None,
        ));
    }
    let owned = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
    let mut headers = Dict::new();
    for (key, value) in [("id", f.id), ("task", f.task)] {
        if let Some(v) = value {
            headers.insert(key, v.into_owned());
        }
    }
    let p = f.props;
    let message = RawMessage {
        content_type: owned(f.content_type).unwrap_or_default(),
        content_encoding: owned(f.content_encoding).unwrap_or_default(),
        headers,
        properties: Properties {
            correlation_id: owned(p.correlation_id),
            ..Properties::default()
        },
        delivery_info: DeliveryInfo {
            exchange: owned(p.exchange).unwrap_or_default(),
            routing_key: owned(p.routing_key).unwrap_or_default(),
            redelivered: p.redelivered,
        },
        too_large: Some(TooLarge {
            size: raw.len(),
            limit,
        }),
        ..RawMessage::default()
    };
    Ok(Envelope {
        message,
        delivery_tag: owned(p.delivery_tag),
    })
}

/// What [`parse_too_large`] keeps of an envelope.
#[derive(Default)]
struct Skimmed<'a> {
    id: Option<Cow<'a, str>>,
    task: Option<Cow<'a, str>>,
    content_type: Option<Cow<'a, str>>,
    content_encoding: Option<Cow<'a, str>>,
    props: Props<'a>,
    not_object: bool,
}

/// Walks the whole document, keeping only short string members and skipping the rest.
fn walk_skipping(raw: &[u8]) -> Result<Skimmed<'_>, json::JsonError> {
    let mut doc = PullReader::new(raw)?;
    let mut f = Skimmed::default();
    if !doc.at_object() {
        doc.skip()?;
        doc.finish()?;
        f.not_object = true;
        return Ok(f);
    }
    doc.enter_object()?;
    while let Some(key) = doc.next_key()? {
        match &*key {
            "content-type" => f.content_type = short(doc.string_or_skip()?),
            "content-encoding" => f.content_encoding = short(doc.string_or_skip()?),
            "headers" if doc.at_object() => {
                doc.enter_object()?;
                while let Some(key) = doc.next_key()? {
                    match &*key {
                        "id" => f.id = short(doc.string_or_skip()?),
                        "task" => f.task = short(doc.string_or_skip()?),
                        _ => doc.skip()?,
                    }
                }
            }
            "properties" if doc.at_object() => {
                doc.enter_object()?;
                while let Some(key) = doc.next_key()? {
                    match &*key {
                        "correlation_id" => f.props.correlation_id = short(doc.string_or_skip()?),
                        "delivery_tag" => f.props.delivery_tag = short(doc.string_or_skip()?),
                        "delivery_info" if doc.at_object() => {
                            doc.enter_object()?;
                            while let Some(key) = doc.next_key()? {
                                match &*key {
                                    "exchange" => f.props.exchange = short(doc.string_or_skip()?),
                                    "routing_key" => {
                                        f.props.routing_key = short(doc.string_or_skip()?)
                                    }
                                    _ => doc.skip()?,
                                }
                            }
                        }
                        _ => doc.skip()?,
                    }
                }
            }
            _ => doc.skip()?,
        }
    }
    doc.finish()?;
    Ok(f)
}

/// Longest string member [`parse_too_large`] keeps (ids, names, tags are far shorter).
const SHORT: usize = 1024;

fn short(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    s.filter(|s| s.len() <= SHORT)
}

/// An envelope's members as read, borrowed from the raw bytes where possible.
#[derive(Default)]
struct Fields<'a> {
    body: Option<Cow<'a, [u8]>>,
    content_type: Option<Cow<'a, str>>,
    content_encoding: Option<Cow<'a, str>>,
    headers: Option<Dict>,
    props: Props<'a>,
    /// The top level was not an object.
    not_object: bool,
}

/// `properties` and its `delivery_info`.
#[derive(Default)]
struct Props<'a> {
    correlation_id: Option<Cow<'a, str>>,
    reply_to: Option<Cow<'a, str>>,
    expiration: Option<Cow<'a, str>>,
    delivery_mode: Option<u8>,
    priority: Option<u8>,
    delivery_tag: Option<Cow<'a, str>>,
    body_encoding: Option<Cow<'a, str>>,
    exchange: Option<Cow<'a, str>>,
    routing_key: Option<Cow<'a, str>>,
    redelivered: bool,
}

fn walk(raw: &[u8]) -> Result<Fields<'_>, json::JsonError> {
    let mut doc = PullReader::new(raw)?;
    let mut f = Fields::default();
    if !doc.at_object() {
        doc.value()?;
        doc.finish()?;
        f.not_object = true;
        return Ok(f);
    }
    doc.enter_object()?;
    while let Some(key) = doc.next_key()? {
        match &*key {
            "body" => {
                f.body = match doc.string_or_value()? {
                    Ok(Cow::Borrowed(s)) => Some(Cow::Borrowed(s.as_bytes())),
                    Ok(Cow::Owned(s)) => Some(Cow::Owned(s.into_bytes())),
                    Err(Value::Bytes(b)) => Some(Cow::Owned(b)),
                    Err(_) => None,
                }
            }
            "content-type" => f.content_type = text(&mut doc)?,
            "content-encoding" => f.content_encoding = text(&mut doc)?,
            "headers" => {
                f.headers = match doc.value()? {
                    Value::Dict(h) => Some(h),
                    _ => None,
                }
            }
            "properties" => f.props = properties(&mut doc)?,
            _ => {
                doc.value()?;
            }
        }
    }
    doc.finish()?;
    Ok(f)
}

/// A string member; any other value counts as absent.
fn text<'a>(doc: &mut PullReader<'a>) -> Result<Option<Cow<'a, str>>, json::JsonError> {
    Ok(doc.string_or_value()?.ok())
}

/// A small non-negative int member (priority, delivery mode), clamped to a byte.
fn small(doc: &mut PullReader<'_>) -> Result<Option<u8>, json::JsonError> {
    Ok(doc
        .string_or_value()?
        .err()
        .and_then(|v| v.as_i64())
        .map(|i| i.clamp(0, 255) as u8))
}

fn properties<'a>(doc: &mut PullReader<'a>) -> Result<Props<'a>, json::JsonError> {
    let mut p = Props::default();
    if !doc.at_object() {
        doc.value()?;
        return Ok(p);
    }
    doc.enter_object()?;
    while let Some(key) = doc.next_key()? {
        match &*key {
            "correlation_id" => p.correlation_id = text(doc)?,
            "reply_to" => p.reply_to = text(doc)?,
            "expiration" => p.expiration = text(doc)?,
            "delivery_mode" => p.delivery_mode = small(doc)?,
            "priority" => p.priority = small(doc)?,
            "delivery_tag" => p.delivery_tag = text(doc)?,
            "body_encoding" => p.body_encoding = text(doc)?,
            "delivery_info" => {
                p.exchange = None;
                p.routing_key = None;
                p.redelivered = false;
                if !doc.at_object() {
                    doc.value()?;
                    continue;
                }
                doc.enter_object()?;
                while let Some(key) = doc.next_key()? {
                    match &*key {
                        "exchange" => p.exchange = text(doc)?,
                        "routing_key" => p.routing_key = text(doc)?,
                        "redelivered" => p.redelivered = doc.value()?.truthy(),
                        _ => {
                            doc.value()?;
                        }
                    }
                }
            }
            _ => {
                doc.value()?;
            }
        }
    }
    Ok(p)
}

impl Fields<'_> {
    fn into_envelope(self) -> Result<Envelope, BadEnvelope> {
        if self.not_object {
            return Err(bad(
                EnvelopeError::Shape("top level is not an object"),
                None,
            ));
        }
        let p = self.props;
        let owned = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
        let tag = owned(p.delivery_tag);
        let Some(body_text) = self.body else {
            return Err(bad(EnvelopeError::Shape("no string body"), tag));
        };
        let body = match p.body_encoding.as_deref() {
            Some("base64") => match base64::engine::general_purpose::STANDARD.decode(&body_text) {
                Ok(b) => b,
                Err(e) => return Err(bad(e.into(), tag)),
            },
            _ => body_text.into_owned(),
        };
        let headers = self.headers.unwrap_or_default();
        let redelivered = p.redelivered || headers.get("redelivered").is_some_and(Value::truthy);
        let message = RawMessage {
            body,
            too_large: None,
            content_type: owned(self.content_type).unwrap_or_default(),
            content_encoding: owned(self.content_encoding).unwrap_or_default(),
            headers,
            properties: Properties {
                correlation_id: owned(p.correlation_id),
                reply_to: owned(p.reply_to),
                delivery_mode: p.delivery_mode,
                priority: p.priority,
                expiration: owned(p.expiration),
            },
            delivery_info: DeliveryInfo {
                exchange: owned(p.exchange).unwrap_or_default(),
                routing_key: owned(p.routing_key).unwrap_or_default(),
                redelivered,
            },
        };
        Ok(Envelope {
            message,
            delivery_tag: tag,
        })
    }
}

fn bad(error: EnvelopeError, delivery_tag: Option<String>) -> BadEnvelope {
    BadEnvelope {
        error,
        delivery_tag,
    }
}

/// Sets `headers.redelivered` and `properties.delivery_info.redelivered` to true, as kombu does
/// when it restores a message, and re-serializes the envelope as Python's `json.dumps` would.
pub fn mark_redelivered(envelope: Value) -> Value {
    let mut doc = match envelope {
        Value::Dict(d) => d,
        other => return other,
    };
    match doc.get_mut("headers") {
        Some(Value::Dict(h)) => h.insert("redelivered", true),
        _ => {
            let mut h = Dict::new();
            h.insert("redelivered", true);
            doc.insert("headers", h);
        }
    }
    if let Some(Value::Dict(props)) = doc.get_mut("properties") {
        match props.get_mut("delivery_info") {
            Some(Value::Dict(di)) => di.insert("redelivered", true),
            _ => {
                let mut di = Dict::new();
                di.insert("redelivered", true);
                props.insert("delivery_info", di);
            }
        }
    }
    Value::Dict(doc)
}

/// The message priority stored in an envelope's properties (0 when absent).
pub fn priority_of(envelope: &Value) -> u8 {
    envelope
        .as_dict()
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_dict)
        .and_then(|p| p.get("priority"))
        .and_then(Value::as_i64)
        .map_or(0, |p| p.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KOMBU: &str = r#"{"body": "eyJhIjogMX0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"task": "tasks.add", "id": "i1", "stamps": {}}, "properties": {"correlation_id": "i1", "reply_to": "r", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "default"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t1"}}"#;

    #[test]
    fn reads_kombus_envelope() {
        let env = parse(KOMBU.as_bytes()).unwrap();
        let m = env.message;
        assert_eq!(env.delivery_tag.as_deref(), Some("t1"));
        assert_eq!(m.body, br#"{"a": 1}"#);
        assert_eq!(
            (m.content_type.as_str(), m.content_encoding.as_str()),
            ("application/json", "utf-8")
        );
        assert_eq!(m.headers.get("id"), Some(&Value::str("i1")));
        assert_eq!(m.headers.get("stamps"), Some(&Value::Dict(Dict::new())));
        assert_eq!(m.properties.correlation_id.as_deref(), Some("i1"));
        assert_eq!(
            (m.properties.delivery_mode, m.properties.priority),
            (Some(2), Some(0))
        );
        assert_eq!(
            (
                m.delivery_info.exchange.as_str(),
                m.delivery_info.routing_key.as_str()
            ),
            ("", "default")
        );
        assert!(!m.delivery_info.redelivered);
    }

    #[test]
    fn escapes_repeated_keys_and_odd_types_read_as_a_full_decode_would() {
        let doc = r#"{"body": "a\u0062c", "body_encoding": 1, "headers": [], "headers": {"redelivered": true},
            "properties": {"priority": "high", "priority": 300, "delivery_tag": "x\"y",
            "delivery_info": {"exchange": "e", "redelivered": 0}, "delivery_info": {"routing_key": "r\n"}},
            "content-type": 5, "extra": [1, {"__type__": "bytes", "__value__": "AA=="}]}"#;
        let env = parse(doc.as_bytes()).unwrap();
        let m = env.message;
        assert_eq!(
            m.body, b"abc",
            "no body_encoding in properties: the text is the body"
        );
        assert_eq!(env.delivery_tag.as_deref(), Some("x\"y"));
        assert_eq!(m.properties.priority, Some(255));
        assert_eq!(
            m.delivery_info.exchange, "",
            "the last delivery_info counts, whole"
        );
        assert_eq!(m.delivery_info.routing_key, "r\n");
        assert!(
            m.delivery_info.redelivered,
            "headers.redelivered counts too"
        );
        assert_eq!(m.content_type, "");
    }

    #[test]
    fn a_message_too_large_keeps_only_what_a_refusal_needs() {
        let big_body = "QUJD".repeat(10_000);
        let doc = format!(
            r#"{{"body": "{big_body}", "content-type": "application/x-python-serialize", "headers": {{"lang": "py", "task": "tasks.echo", "argsrepr": [{big}], "id": "i\"7"}}, "properties": {{"correlation_id": "i7", "delivery_info": {{"exchange": "", "routing_key": "default"}}, "body_encoding": "base64", "delivery_tag": "t7"}}}}"#,
            big = "1, ".repeat(10_000) + "1"
        );
        let env = parse_too_large(doc.as_bytes(), 1000).unwrap();
        assert_eq!(env.delivery_tag.as_deref(), Some("t7"));
        let m = env.message;
        assert_eq!(
            m.too_large,
            Some(TooLarge {
                size: doc.len(),
                limit: 1000
            })
        );
        assert!(m.body.is_empty(), "the body is not decoded");
        assert_eq!(
            m.headers.len(),
            2,
            "only id and task are kept: {:?}",
            m.headers
        );
        assert_eq!(m.headers.get("id"), Some(&Value::str("i\"7")));
        assert_eq!(m.headers.get("task"), Some(&Value::str("tasks.echo")));
        assert_eq!(m.content_type, "application/x-python-serialize");
        assert_eq!(m.properties.correlation_id.as_deref(), Some("i7"));
        assert_eq!(m.delivery_info.routing_key, "default");
        assert_eq!(parse(doc.as_bytes()).unwrap().message.too_large, None);
    }

    #[test]
    fn a_message_too_large_with_odd_members_still_gives_its_tag() {
        let doc = r#"{"headers": [1, {"id": "x"}], "body": {"a": [null, true, -1.5e3, "\u00e9"]}, "properties": {"delivery_tag": "t1", "priority": 3}}"#;
        let env = parse_too_large(doc.as_bytes(), 10).unwrap();
        assert_eq!(env.delivery_tag.as_deref(), Some("t1"));
        assert!(env.message.headers.is_empty());
        for garbage in [
            &b"[1, 2]"[..],
            b"{\"body\": \"x\"",
            b"{\"body\": \"\\q\"}",
            b"{\"a\": tru}",
        ] {
            assert!(parse_too_large(garbage, 1).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn the_message_size_limit_is_a_transport_option_of_64_mib_by_default() {
        use crate::broker::redis::RedisTransportOptions;
        assert_eq!(
            RedisTransportOptions::default().rcelery_max_message_bytes,
            64 * 1024 * 1024
        );
        let o: RedisTransportOptions =
            toml::from_str("rcelery_max_message_bytes = 1000\nvisibility_timeout = 5.0").unwrap();
        assert_eq!(o.rcelery_max_message_bytes, 1000);
    }

    #[test]
    fn a_tagged_bytes_body_is_the_body() {
        // kombu tags bytes with their UTF-8 text.
        let doc = r#"{"body": {"__type__": "bytes", "__value__": "hi"}, "properties": {}}"#;
        assert_eq!(parse(doc.as_bytes()).unwrap().message.body, b"hi");
    }

    #[test]
    fn refusals_keep_the_delivery_tag_when_there_is_one() {
        let no_body = r#"{"properties": {"delivery_tag": "t9"}, "body": null}"#;
        let e = parse(no_body.as_bytes()).unwrap_err();
        assert!(matches!(e.error, EnvelopeError::Shape(_)));
        assert_eq!(e.delivery_tag.as_deref(), Some("t9"));
        let bad_b64 =
            r#"{"body": "!!", "properties": {"body_encoding": "base64", "delivery_tag": "t8"}}"#;
        let e = parse(bad_b64.as_bytes()).unwrap_err();
        assert!(matches!(e.error, EnvelopeError::Base64(_)));
        assert_eq!(e.delivery_tag.as_deref(), Some("t8"));
        for garbage in [
            &b"[1, 2]"[..],
            b"\"text\"",
            b"{\"body\": \"x\"} extra",
            b"{\"body\": \"x\",}",
            b"{\"a\": [1,}",
            b"\xff",
        ] {
            let e = parse(garbage).unwrap_err();
            assert!(e.delivery_tag.is_none(), "{garbage:?}");
        }
        assert!(matches!(
            parse(b"[1, 2]").unwrap_err().error,
            EnvelopeError::Shape(_)
        ));
        assert!(matches!(
            parse(b"{\"body\": \"x\"} extra").unwrap_err().error,
            EnvelopeError::Json(_)
        ));
    }

    #[test]
    fn items_are_settled_under_the_tag_the_fetch_script_recorded() {
        // Found by fuzzing: a NUL in the headers. The script's fast path reads the tag from the
        // tail and records the item as unacked; the refusal must carry that tag to remove it.
        let garbage = KOMBU.replace(r#""id": "i1""#, "\"id\":\u{0} \"i1\"");
        let e = parse(garbage.as_bytes()).unwrap_err();
        assert!(matches!(e.error, EnvelopeError::Json(_)));
        assert_eq!(e.delivery_tag.as_deref(), Some("t1"));
        // Valid JSON with a second kombu-shaped tail: the tail read is the one recorded.
        let two_tails = KOMBU
            .replace(r#"{"exchange": "", "routing_key": "default"}"#, r#"{"routing_key": "default", "exchange": ""}"#)
            .replace(
                r#""delivery_tag": "t1"}}"#,
                r#""delivery_tag": "t1"}, "x": {"delivery_info": {"exchange": "", "routing_key": ""}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t2"}}"#,
            );
        assert_eq!(
            parse(two_tails.as_bytes()).unwrap().delivery_tag.as_deref(),
            Some("t2")
        );
    }
}
