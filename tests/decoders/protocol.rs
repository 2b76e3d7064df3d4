//! Invariants of task-message decoding (`rcelery::protocol::decode_task`, protocol v1 and
//! v2, JSON and pickle bodies), shared by the `protocol` fuzz target and
//! `tests/decoder_robustness.rs`.
//!
//! The input is split into a [`RawMessage`] (see [`message_from`] for the layout; [`input`]
//! builds one). Checked:
//! - decoding never panics; a failure leaves the message as it was (it may be forwarded) and
//!   is the one Celery's order of checks gives (task name, registration, accept list, body);
//! - a decoded task keeps its headers, properties and delivery info, and sent again as we
//!   send tasks (`NewTask`, pickle; JSON too when it came as JSON) decodes to the same task;
//! - every signature in `callbacks`, `errbacks`, `chain` and `chord` reads back the same
//!   after being written again.

use rcelery::codec::json;
use rcelery::codec::{AcceptContent, ContentError, Serializer};
use rcelery::protocol::{
    decode_task, DecodeError, DeliveryInfo, NewTask, Properties, RawMessage, Signature, TaskMessage,
};
use rcelery::value::{Dict, Value};

/// Content types selected by the low three bits of the first byte.
const CONTENT_TYPES: [&str; 8] = [
    "application/json",
    "application/x-python-serialize",
    "application/data",
    "text/plain",
    "application/x-yaml",
    "",
    "application/json",
    "application/x-python-serialize",
];

/// `accept_content` lists selected by bits 3 and 4 of the first byte.
const ACCEPT: [&[&str]; 4] = [&["json"], &["pickle"], &["json", "pickle"], &[]];

/// Bit 5 of the first byte: no task name is registered.
pub const UNREGISTERED: u8 = 0x20;

/// Builds an input: `flags`, then the headers JSON, a NUL, the properties JSON, a NUL, and
/// the body bytes. JSON text never holds a NUL, so the split is unambiguous.
pub fn input(flags: u8, headers_json: &[u8], properties_json: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(headers_json);
    out.push(0);
    out.extend_from_slice(properties_json);
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// The flags byte for a content type (as in [`CONTENT_TYPES`]), accepting JSON and pickle.
pub fn flags_for(content_type: &str) -> u8 {
    let ct = CONTENT_TYPES
        .iter()
        .position(|c| *c == content_type)
        .unwrap_or(0) as u8;
    ct | 2 << 3
}

/// The message an input stands for, its accept list, and whether names are registered.
/// Headers that are not a JSON object count as `{}`; the properties object holds
/// `correlation_id`, `reply_to`, `delivery_mode`, `priority`, `expiration`, `exchange`,
/// `routing_key`, `redelivered`.
pub fn message_from(data: &[u8]) -> Option<(RawMessage, AcceptContent, bool)> {
    let (&flags, rest) = data.split_first()?;
    let mut parts = rest.splitn(3, |b| *b == 0);
    let headers = parts.next().unwrap_or_default();
    let properties = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let headers = match json::decode(headers) {
        Ok(Value::Dict(d)) => d,
        _ => Dict::new(),
    };
    let props = match json::decode(properties) {
        Ok(Value::Dict(d)) => d,
        _ => Dict::new(),
    };
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_owned);
    let small = |k: &str| {
        props
            .get(k)
            .and_then(Value::as_i64)
            .map(|i| i.clamp(0, 255) as u8)
    };
    let raw = RawMessage {
        body: body.to_vec(),
        content_type: CONTENT_TYPES[usize::from(flags & 7)].to_owned(),
        content_encoding: "utf-8".to_owned(),
        headers,
        properties: Properties {
            correlation_id: text("correlation_id"),
            reply_to: text("reply_to"),
            delivery_mode: small("delivery_mode"),
            priority: small("priority"),
            expiration: text("expiration"),
        },
        delivery_info: DeliveryInfo {
            exchange: text("exchange").unwrap_or_default(),
            routing_key: text("routing_key").unwrap_or_default(),
            redelivered: props.get("redelivered").is_some_and(Value::truthy),
        },
        too_large: None,
    };
    let accept = AcceptContent::from_names(ACCEPT[usize::from(flags >> 3 & 3)]).ok()?;
    Some((raw, accept, flags & UNREGISTERED == 0))
}

/// Checks every invariant on one input; panics on a violation. True if a task decoded.
pub fn check(data: &[u8]) -> bool {
    let Some((mut raw, accept, registered)) = message_from(data) else {
        return false;
    };
    let before = raw.clone();
    let expected = expected_failure(&before, &accept, registered);
    match decode_task(&mut raw, &accept, |_| registered) {
        Err(e) => {
            assert_eq!(
                format!("{raw:?}"),
                format!("{before:?}"),
                "a refused message was changed"
            );
            assert_eq!(
                Some(kind(&e)),
                expected.as_ref().map(|(k, _)| *k),
                "refused as {e}"
            );
            if let (DecodeError::UnknownTask { id, .. }, Some((_, want_id))) = (&e, &expected) {
                assert_eq!(id, want_id, "unknown task's id");
            }
            false
        }
        Ok(task) => {
            assert!(
                expected.is_none() || expected.as_ref().is_some_and(|(k, _)| *k == Kind::Invalid),
                "decoded, but Celery refuses it as {expected:?}"
            );
            kept_as_received(&task, &before);
            sent_again_reads_the_same(&task, Serializer::Pickle);
            if before.content_type == "application/json" {
                sent_again_reads_the_same(&task, Serializer::Json);
            }
            signatures_read_back(&task);
            true
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Disallowed,
    Undecodable,
    UnknownFormat,
    Invalid,
    UnknownTask,
    TooLarge,
}

fn kind(e: &DecodeError) -> Kind {
    match e {
        DecodeError::Disallowed(_) => Kind::Disallowed,
        DecodeError::Undecodable { .. } => Kind::Undecodable,
        DecodeError::UnknownFormat(_) => Kind::UnknownFormat,
        DecodeError::Invalid(_) => Kind::Invalid,
        DecodeError::UnknownTask { .. } => Kind::UnknownTask,
        DecodeError::TooLarge { .. } => Kind::TooLarge,
    }
}

/// How Celery's consumer refuses the message, in its order of checks (see
/// `src/protocol/decode.rs`), with the task id an unknown task reports. `Invalid` means the
/// fields decide: it may decode, or be refused as invalid. `None`: it must decode.
fn expected_failure(
    raw: &RawMessage,
    accept: &AcceptContent,
    registered: bool,
) -> Option<(Kind, Option<String>)> {
    let body = accept.decode(&raw.content_type, &raw.body);
    let id_of = |d: Option<&Dict>| {
        d.and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match raw.headers.get("task") {
        Some(Value::Str(_)) if !registered => Some((Kind::UnknownTask, id_of(Some(&raw.headers)))),
        Some(Value::Str(_)) => match body {
            Err(ContentError::Disallowed { .. }) => Some((Kind::Disallowed, None)),
            Err(_) => Some((Kind::Undecodable, None)),
            Ok(_) => Some((Kind::Invalid, None)),
        },
        Some(_) => Some((Kind::UnknownFormat, None)),
        None => match body {
            Err(_) => Some((Kind::Undecodable, None)),
            Ok(b) => match b
                .as_dict()
                .and_then(|d| d.get("task"))
                .and_then(Value::as_str)
            {
                None => Some((Kind::UnknownFormat, None)),
                Some(_) if !registered => Some((Kind::UnknownTask, id_of(b.as_dict()))),
                Some(_) => Some((Kind::Invalid, None)),
            },
        },
    }
}

/// A v2 task carries the message's headers, properties and delivery info unchanged; a v1
/// task its properties and delivery info.
fn kept_as_received(task: &TaskMessage, raw: &RawMessage) {
    assert!(!task.id.is_empty(), "a task without an id");
    assert_eq!(task.content_type, raw.content_type);
    assert_eq!(
        format!("{:?}", task.properties),
        format!("{:?}", raw.properties)
    );
    assert_eq!(
        format!("{:?}", task.delivery_info),
        format!("{:?}", raw.delivery_info)
    );
    match raw.headers.get("task") {
        Some(name) => {
            assert_eq!(
                (task.protocol, Some(task.name.as_str())),
                (2, name.as_str())
            );
            assert_eq!(format!("{:?}", task.headers), format!("{:?}", raw.headers));
        }
        None => assert_eq!(task.protocol, 1),
    }
}

/// The task as the worker sends one (a retry, a forwarded message) decodes to the same task.
fn sent_again_reads_the_same(task: &TaskMessage, serializer: Serializer) {
    let new = NewTask {
        id: task.id.clone(),
        name: task.name.clone(),
        args: task.args.clone(),
        kwargs: task.kwargs.clone(),
        embed: task.embed.clone(),
        eta: task.eta.clone(),
        expires: task.expires.clone(),
        retries: task.retries,
        group: task.group.clone(),
        group_index: task.group_index,
        root_id: task.root_id.clone(),
        parent_id: task.parent_id.clone(),
        timelimit: task.timelimit,
        ignore_result: task.ignore_result,
        shadow: task.shadow.clone(),
        origin: task.origin.clone().unwrap_or_default(),
        reply_to: task.properties.reply_to.clone().unwrap_or_default(),
        priority: task.properties.priority,
        exchange: task.delivery_info.exchange.clone(),
        routing_key: task.delivery_info.routing_key.clone(),
        ..NewTask::default()
    };
    let out = new.encode(serializer);
    let mut raw = RawMessage {
        body: out.body,
        content_type: out.content_type,
        content_encoding: out.content_encoding,
        headers: out.headers,
        properties: out.properties,
        delivery_info: DeliveryInfo {
            exchange: out.exchange,
            routing_key: out.routing_key,
            redelivered: false,
        },
        too_large: None,
    };
    let both = AcceptContent::from_names(&["json", "pickle"]).expect("known serializers");
    let again = match decode_task(&mut raw, &both, |_| true) {
        Ok(t) => t,
        Err(e) => panic!("a task we sent ({serializer:?}) does not decode: {e}"),
    };
    let iso = |d: &Option<rcelery::value::DateTime>| d.as_ref().map(|d| d.isoformat());
    let fields = |t: &TaskMessage, root_id: Option<String>| {
        format!(
            "{:?}",
            (
                (&t.id, &t.name, &t.args, &t.kwargs, &t.embed),
                (
                    iso(&t.eta),
                    iso(&t.expires),
                    t.retries,
                    &t.group,
                    t.group_index
                ),
                (
                    root_id,
                    &t.parent_id,
                    t.timelimit,
                    t.ignore_result,
                    &t.shadow,
                    &t.origin
                ),
            )
        )
    };
    let root_id = task.root_id.clone().or_else(|| Some(task.id.clone()));
    assert_eq!(
        fields(&again, again.root_id.clone()),
        fields(task, root_id),
        "sent again as {serializer:?}"
    );
}

/// Signatures written back (`to_value`) read the same.
fn signatures_read_back(task: &TaskMessage) {
    let e = &task.embed;
    let lists = [&e.callbacks, &e.errbacks, &e.chain];
    let mut found: Vec<Signature> = lists
        .iter()
        .filter_map(|v| v.as_ref())
        .flat_map(Signature::all_in)
        .collect();
    found.extend(e.chord.as_ref().and_then(Signature::from_value));
    for sig in found {
        let again = Signature::from_value(&sig.to_value());
        assert_eq!(
            format!("{again:?}"),
            format!("{:?}", Some(&sig)),
            "signature written back reads otherwise"
        );
    }
}
