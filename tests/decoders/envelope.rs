//! Invariants of kombu's Redis envelope reader (`rcelery::broker::redis::parse_envelope`),
//! shared by the `envelope` fuzz target and `tests/decoder_robustness.rs`:
//!
//! - it never panics, and reads what a plain reading of the document says (a reference built
//!   here from the document as a value tree, with Python's last-key-wins rule): the same
//!   message, the same delivery tag, the same kind of refusal, the same JSON error;
//! - the delivery tag is the one the fetch script records the message under in `unacked`: the
//!   tag its fast path reads from the tail (a line-by-line port of its `kombu_tail` below),
//!   else the document's; so a message is settled under the tag it is held by, whether it
//!   parses or not;
//! - restoring (`mark_redelivered`, re-encoded as the restore does) and publishing
//!   (`publish_envelope`) give envelopes that read back as the same message.

use base64::Engine;

use rcelery::broker::redis::{
    mark_redelivered, parse_envelope, priority_of, publish_envelope, Envelope, EnvelopeError,
};
use rcelery::codec::json::{self, JsonError, PullReader};
use rcelery::protocol::{DeliveryInfo, OutgoingMessage, Properties, RawMessage};
use rcelery::value::{Dict, Value};

/// Checks every invariant on one input; panics on a violation. True if it parsed.
pub fn check(raw: &[u8]) -> bool {
    let Some(env) = parse_as_documented(raw) else {
        return false;
    };
    restored_reads_the_same(raw, &env.message);
    published_reads_the_same(&env.message);
    true
}

/// Parses `raw` and checks the outcome against the reference and the fetch script's tail.
fn parse_as_documented(raw: &[u8]) -> Option<Envelope> {
    let parsed = parse_envelope(raw);
    let recorded = kombu_tail_tag(raw);
    let tag = match &parsed {
        Ok(env) => env.delivery_tag.as_deref(),
        Err(bad) => bad.delivery_tag.as_deref(),
    };
    if let Some(recorded) = &recorded {
        assert_eq!(
            tag,
            Some(recorded.as_str()),
            "the fetch script records the message under another tag"
        );
    }
    // Where the fast path reads no tag, the script decodes the envelope whole: the tag is the
    // document's.
    let expected_tag =
        |from_document: &Option<String>| recorded.clone().or_else(|| from_document.clone());
    match (&parsed, reference(raw)) {
        (Ok(env), Ok((message, document_tag))) => {
            assert_eq!(
                format!("{:?}", env.message),
                format!("{message:?}"),
                "message differs from the document"
            );
            assert_eq!(env.delivery_tag, expected_tag(&document_tag));
        }
        (Err(bad), Err(Refusal { kind, tag, json })) => {
            let got = match &bad.error {
                EnvelopeError::Json(_) => Kind::Json,
                EnvelopeError::Shape(_) => Kind::Shape,
                EnvelopeError::Base64(_) => Kind::Base64,
            };
            assert_eq!(got, kind, "refused as {:?}, expected {kind:?}", bad.error);
            assert_eq!(
                bad.delivery_tag,
                expected_tag(&tag),
                "refusal's delivery tag"
            );
            if let (EnvelopeError::Json(a), Some(b)) = (&bad.error, json) {
                assert_eq!(
                    (a.offset, &a.message),
                    (b.offset, &b.message),
                    "JSON error differs"
                );
            }
        }
        (_, expected) => panic!("parse gave {parsed:?}, the document says {expected:?}"),
    }
    parsed.ok()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Json,
    Shape,
    Base64,
}

#[derive(Debug)]
struct Refusal {
    kind: Kind,
    tag: Option<String>,
    json: Option<JsonError>,
}

/// The envelope as the document says, read from a value tree.
fn reference(raw: &[u8]) -> Result<(RawMessage, Option<String>), Refusal> {
    let doc = plain_tree(raw).map_err(|e| Refusal {
        kind: Kind::Json,
        tag: None,
        json: Some(e),
    })?;
    let refuse = |kind, tag: &Option<String>| Refusal {
        kind,
        tag: tag.clone(),
        json: None,
    };
    let Some(top) = doc.as_dict() else {
        return Err(refuse(Kind::Shape, &None));
    };
    let empty = Dict::new();
    let props = top
        .get("properties")
        .and_then(Value::as_dict)
        .unwrap_or(&empty);
    // The reader takes text with a lone surrogate with U+FFFD in its place.
    let text = |d: &Dict, k: &str| match d.get(k) {
        Some(Value::Str(s)) => Some(s.clone()),
        Some(Value::SurrogateStr(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    let small = |d: &Dict, k: &str| {
        d.get(k)
            .and_then(Value::as_i64)
            .map(|i| i.clamp(0, 255) as u8)
    };
    let tag = text(props, "delivery_tag");
    let body = match top.get("body") {
        Some(Value::Str(s)) => s.as_bytes().to_vec(),
        Some(Value::Bytes(b)) => b.clone(),
        // The reader takes a body with a lone surrogate as text with U+FFFD in its place
        // (kombu could not encode it to bytes at all).
        Some(Value::SurrogateStr(s)) => s.to_string_lossy().into_bytes(),
        _ => return Err(refuse(Kind::Shape, &tag)),
    };
    let body = match props.get("body_encoding").and_then(Value::as_str) {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|_| refuse(Kind::Base64, &tag))?,
        _ => body,
    };
    let headers = top
        .get("headers")
        .and_then(Value::as_dict)
        .cloned()
        .unwrap_or_default();
    let info = props
        .get("delivery_info")
        .and_then(Value::as_dict)
        .unwrap_or(&empty);
    let redelivered = info.get("redelivered").is_some_and(Value::truthy)
        || headers.get("redelivered").is_some_and(Value::truthy);
    let message = RawMessage {
        body,
        content_type: text(top, "content-type").unwrap_or_default(),
        content_encoding: text(top, "content-encoding").unwrap_or_default(),
        headers,
        properties: Properties {
            correlation_id: text(props, "correlation_id"),
            reply_to: text(props, "reply_to"),
            delivery_mode: small(props, "delivery_mode"),
            priority: small(props, "priority"),
            expiration: text(props, "expiration"),
        },
        delivery_info: DeliveryInfo {
            exchange: text(info, "exchange").unwrap_or_default(),
            routing_key: text(info, "routing_key").unwrap_or_default(),
            redelivered,
        },
        too_large: None,
    };
    Ok((message, tag))
}

/// The document as a value tree, kombu's tags applied except to the objects the envelope
/// reader walks member by member (the top level, `properties`, `properties.delivery_info`),
/// which it reads as plain objects, as documented on `PullReader`.
fn plain_tree(raw: &[u8]) -> Result<Value, JsonError> {
    let mut doc = PullReader::new(raw)?;
    let value = plain(&mut doc, &["properties", "delivery_info"])?;
    doc.finish()?;
    Ok(value)
}

/// Reads the next value; an object is walked plain, and so is its member named `inner[0]`,
/// and so on down.
fn plain(doc: &mut PullReader<'_>, inner: &[&str]) -> Result<Value, JsonError> {
    if !doc.at_object() {
        return doc.value();
    }
    doc.enter_object()?;
    let mut d = Dict::new();
    while let Some(key) = doc.next_key()? {
        let value = match inner.split_first() {
            Some((first, rest)) if *key == **first => plain(doc, rest)?,
            _ => doc.value()?,
        };
        d.insert(key.into_owned(), value);
    }
    Ok(Value::Dict(d))
}

/// A port of the fetch script's `kombu_tail` (src/broker/redis/scripts.rs): the delivery tag
/// it reads from a kombu-shaped tail without decoding, or `None` when it would decode the
/// message whole. Indices are Lua's (1-based, inclusive) to keep the port line for line.
pub fn kombu_tail_tag(m: &[u8]) -> Option<String> {
    let n = m.len();
    // string.sub(m, i, j) for i >= 1.
    let sub = |i: usize, j: usize| -> &[u8] {
        let j = j.min(n);
        if i == 0 || i > j {
            &[]
        } else {
            &m[i - 1..j]
        }
    };
    // string.find(m, pat, init, true)
    let find = |pat: &[u8], init: usize| -> Option<usize> {
        let init = init.max(1);
        if init > n + 1 {
            return None;
        }
        m[init - 1..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| p + init)
    };
    if n < 3 || &m[n - 3..] != b"\"}}" {
        return None;
    }
    let d = find(
        b"\"delivery_info\": {\"exchange\": \"",
        n.saturating_sub(400).max(1),
    )?;
    let exs = d + 31;
    let exe = find(b"\"", exs)?;
    if sub(exe, exe + 18) != b"\", \"routing_key\": \"" {
        return None;
    }
    let rks = exe + 19;
    let rke = find(b"\"", rks)?;
    if sub(rke, rke + 15) != b"\"}, \"priority\": " {
        return None;
    }
    let ps = rke + 16;
    let pe = find(b", \"body_encoding\": \"base64\", \"delivery_tag\": \"", ps)?;
    let priority = sub(ps, pe.saturating_sub(1));
    if priority.is_empty() || !priority.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (ex, rk, tag) = (sub(exs, exe - 1), sub(rks, rke - 1), sub(pe + 46, n - 3));
    if ex.contains(&b'\\') || rk.contains(&b'\\') || tag.contains(&b'"') || tag.contains(&b'\\') {
        return None;
    }
    // The worker settles by string: a tag that is not UTF-8 cannot be settled either way.
    String::from_utf8(tag.to_vec()).ok()
}

/// The restore path: decode whole, read the priority, mark redelivered, re-encode; the
/// envelope put back reads as the same message, redelivered.
fn restored_reads_the_same(raw: &[u8], message: &RawMessage) {
    let Ok(doc) = json::decode(raw) else {
        // Only a tag kombu's hook refuses on a walked object gets here (see `plain_tree`);
        // the restore drops such an entry.
        return;
    };
    assert_eq!(
        priority_of(&doc),
        message.properties.priority.unwrap_or(0),
        "restore reads another priority"
    );
    let again = json::encode(&mark_redelivered(doc));
    let Some(env) = parse_as_documented(&again) else {
        panic!(
            "a restored envelope does not parse: {}",
            String::from_utf8_lossy(&again)
        );
    };
    let mut want = message.clone();
    want.headers.insert("redelivered", true);
    want.delivery_info.redelivered = true;
    assert_eq!(
        format!("{:?}", env.message),
        format!("{want:?}"),
        "restored message differs"
    );
}

/// The publish path: the message sent again reads the same.
fn published_reads_the_same(message: &RawMessage) {
    let out = OutgoingMessage {
        body: message.body.clone(),
        content_type: message.content_type.clone(),
        content_encoding: message.content_encoding.clone(),
        headers: message.headers.clone(),
        properties: message.properties.clone(),
        exchange: message.delivery_info.exchange.clone(),
        routing_key: message.delivery_info.routing_key.clone(),
    };
    let raw = publish_envelope(&out);
    let Some(env) = parse_as_documented(&raw) else {
        panic!(
            "a published envelope does not parse: {}",
            String::from_utf8_lossy(&raw)
        );
    };
    assert!(
        env.delivery_tag.is_some_and(|t| t.len() == 36),
        "published without a uuid tag"
    );
    if fast_path_reads(message) && !headers_look_like_a_tail(message) {
        assert!(
            kombu_tail_tag(&raw).is_some(),
            "the fast path does not read our own envelope"
        );
    }
    let mut want = message.clone();
    want.properties.delivery_mode = Some(message.properties.delivery_mode.unwrap_or(2));
    want.properties.priority = Some(message.properties.priority.unwrap_or(0));
    want.delivery_info.redelivered = message
        .headers
        .get("redelivered")
        .is_some_and(Value::truthy);
    assert_eq!(
        format!("{:?}", env.message),
        format!("{want:?}"),
        "published message differs"
    );
}

/// True when the headers hold the text the fast path looks for (it then reads them, finds no
/// tail and decodes whole).
fn headers_look_like_a_tail(message: &RawMessage) -> bool {
    let headers = json::encode(&Value::Dict(message.headers.clone()));
    headers.windows(14).any(|w| w == b"delivery_info\"")
}

/// True when the fetch script's fast path reads the envelope we publish for `message`: its
/// exchange and routing key need no escaping in JSON and the tail fits the 400 bytes the
/// script searches.
fn fast_path_reads(message: &RawMessage) -> bool {
    let plain = |s: &str| {
        s.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    };
    let (ex, rk) = (
        &message.delivery_info.exchange,
        &message.delivery_info.routing_key,
    );
    let priority = message.properties.priority.unwrap_or(0).to_string();
    plain(ex) && plain(rk) && ex.len() + rk.len() + priority.len() <= 250
}
