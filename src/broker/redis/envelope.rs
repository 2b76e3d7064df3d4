//! kombu's Redis envelope: the JSON document stored in a queue list, with the serialized task
//! payload base64-encoded in `body`.

use base64::Engine;

use crate::codec::json;
use crate::protocol::{DeliveryInfo, Properties, RawMessage};
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
pub fn parse(raw: &[u8]) -> Result<Envelope, BadEnvelope> {
    let mut doc = match json::decode(raw) {
        Ok(Value::Dict(d)) => d,
        Ok(_) => return Err(bad(EnvelopeError::Shape("top level is not an object"), None)),
        Err(e) => return Err(bad(e.into(), None)),
    };
    let headers = match doc.get_mut("headers") {
        Some(Value::Dict(h)) => std::mem::take(h),
        _ => Dict::new(),
    };
    let empty = Dict::new();
    let props = doc.get("properties").and_then(Value::as_dict).unwrap_or(&empty);
    let tag = props.get("delivery_tag").and_then(Value::as_str).map(str::to_owned);
    let body_text = match doc.get("body") {
        Some(Value::Str(s)) => s.as_bytes(),
        Some(Value::Bytes(b)) => b.as_slice(),
        _ => return Err(bad(EnvelopeError::Shape("no string body"), tag)),
    };
    let encoding = props.get("body_encoding").and_then(Value::as_str);
    let body = match encoding {
        Some("base64") => match base64::engine::general_purpose::STANDARD.decode(body_text) {
            Ok(b) => b,
            Err(e) => return Err(bad(e.into(), tag)),
        },
        _ => body_text.to_vec(),
    };
    let di = props.get("delivery_info").and_then(Value::as_dict).unwrap_or(&empty);
    let text = |d: &Dict, k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
    let small = |d: &Dict, k: &str| d.get(k).and_then(Value::as_i64).map(|i| i.clamp(0, 255) as u8);
    let redelivered = di.get("redelivered").is_some_and(Value::truthy)
        || headers.get("redelivered").is_some_and(Value::truthy);
    let message = RawMessage {
        body,
        content_type: text(&doc, "content-type").unwrap_or_default(),
        content_encoding: text(&doc, "content-encoding").unwrap_or_default(),
        headers,
        properties: Properties {
            correlation_id: text(props, "correlation_id"),
            reply_to: text(props, "reply_to"),
            delivery_mode: small(props, "delivery_mode"),
            priority: small(props, "priority"),
            expiration: text(props, "expiration"),
        },
        delivery_info: DeliveryInfo {
            exchange: text(di, "exchange").unwrap_or_default(),
            routing_key: text(di, "routing_key").unwrap_or_default(),
            redelivered,
        },
    };
    Ok(Envelope { message, delivery_tag: tag })
}

fn bad(error: EnvelopeError, delivery_tag: Option<String>) -> BadEnvelope {
    BadEnvelope { error, delivery_tag }
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
