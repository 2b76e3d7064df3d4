//! Turning a [`RawMessage`] into a [`TaskMessage`], with Celery's precedence of failures.
//!
//! Celery's consumer (`on_task_received`) decides in this order, and so do we:
//! 0. (rcelery's own) a message larger than `rcelery_max_message_bytes` is never decoded: it
//!    is *acked* as a decode error would be, with a failure stored when its id is known;
//! 1. v2 (a `task` header) or v1 (decode the body, read `body["task"]`; a v1 body that cannot
//!    be decoded is *acked* as a decode error, one without `task` is *rejected*);
//! 2. the task name must be registered, checked **before** a v2 body is decoded;
//! 3. the v2 body is decoded: disallowed content is *rejected*, undecodable content is *acked*.

use super::message::TaskMessage;
use super::raw::RawMessage;
use super::{v1, v2};
use crate::codec::{AcceptContent, ContentError};
use crate::value::Value;

/// What to do with a message that could not become a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Acknowledge it (removes it; Celery's `on_decode_error`).
    Ack,
    /// Reject it without requeue (removes it; Celery's `on_invalid_task`/`on_unknown_*`).
    Reject,
}

/// Why a message is not a runnable task.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The content type is not in `accept_content`.
    #[error("Received invalid task message: {0}")]
    Disallowed(ContentError),
    /// The body could not be deserialized.
    #[error(
        "Can't decode message body: {error} (type:{content_type:?} encoding:{content_encoding:?})"
    )]
    Undecodable {
        /// The codec's error.
        error: ContentError,
        /// The message's content type.
        content_type: String,
        /// The message's content encoding.
        content_encoding: String,
    },
    /// Neither a v2 message (no `task` header) nor a v1 body (no `task` key).
    #[error("Received and deleted unknown message. Wrong destination?!? ({0})")]
    UnknownFormat(String),
    /// A well-formed message whose fields make no sense (wrong body shape, bad ETA...).
    #[error("Received invalid task message: {0}")]
    Invalid(String),
    /// The task name is not registered with this worker.
    #[error("Received unregistered task of type {name:?}.")]
    UnknownTask {
        /// Task id, if the message had one.
        id: Option<String>,
        /// The unregistered name.
        name: String,
    },
    /// The message is larger than `rcelery_max_message_bytes`: it was not decoded.
    #[error(
        "message of {size} bytes exceeds rcelery_max_message_bytes ({limit} bytes); not decoded"
    )]
    TooLarge {
        /// Task id, if the headers named one.
        id: Option<String>,
        /// Task name, if the headers named one.
        name: Option<String>,
        /// The message's size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl DecodeError {
    /// How Celery disposes of a message that failed this way.
    pub fn disposition(&self) -> Disposition {
        match self {
            DecodeError::Undecodable { .. } | DecodeError::TooLarge { .. } => Disposition::Ack,
            DecodeError::Disallowed(_)
            | DecodeError::UnknownFormat(_)
            | DecodeError::Invalid(_)
            | DecodeError::UnknownTask { .. } => Disposition::Reject,
        }
    }
}

/// Decodes a delivered message into a task, enforcing `accept` and checking the task name
/// with `is_registered` at the point where Celery checks it.
///
/// On success the headers, properties, delivery info and content type move from `raw` into
/// the task (no copy per message) and the body, decoded, is freed; on failure `raw` is left
/// as it was, for forwarding.
pub fn decode_task(
    raw: &mut RawMessage,
    accept: &AcceptContent,
    is_registered: impl Fn(&str) -> bool,
) -> Result<TaskMessage, DecodeError> {
    let task = decode_kept(raw, accept, is_registered)?;
    // The serialized body is no longer needed while the task waits and runs.
    raw.body = Vec::new();
    Ok(task)
}

fn decode_kept(
    raw: &mut RawMessage,
    accept: &AcceptContent,
    is_registered: impl Fn(&str) -> bool,
) -> Result<TaskMessage, DecodeError> {
    if let Some(t) = raw.too_large {
        let text = |key: &str| {
            raw.headers
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        return Err(DecodeError::TooLarge {
            id: text("id"),
            name: text("task"),
            size: t.size,
            limit: t.limit,
        });
    }
    if let Some(name) = raw.headers.get("task") {
        let name = name
            .as_str()
            .ok_or_else(|| DecodeError::UnknownFormat("task header is not a string".into()))?;
        if !is_registered(name) {
            return Err(unknown_task(name, raw.headers.get("id")));
        }
        let body = accept
            .decode(&raw.content_type, &raw.body)
            .map_err(|e| match e {
                ContentError::Disallowed { .. } => DecodeError::Disallowed(e),
                other => undecodable(raw, other),
            })?;
        let name = name.to_owned();
        return v2::from_parts(raw, name, body);
    }
    // Protocol v1: everything is in the body, and any decode failure is acked.
    let body = accept
        .decode(&raw.content_type, &raw.body)
        .map_err(|e| undecodable(raw, e))?;
    let name = match body
        .as_dict()
        .and_then(|d| d.get("task"))
        .and_then(Value::as_str)
    {
        Some(name) => name.to_owned(),
        None => return Err(DecodeError::UnknownFormat("body has no task name".into())),
    };
    if !is_registered(&name) {
        let id = body.as_dict().and_then(|d| d.get("id")).cloned();
        return Err(unknown_task(&name, id.as_ref()));
    }
    v1::from_body(raw, name, body)
}

fn undecodable(raw: &RawMessage, error: ContentError) -> DecodeError {
    DecodeError::Undecodable {
        error,
        content_type: raw.content_type.clone(),
        content_encoding: raw.content_encoding.clone(),
    }
}

fn unknown_task(name: &str, id: Option<&Value>) -> DecodeError {
    DecodeError::UnknownTask {
        id: id.and_then(Value::as_str).map(str::to_owned),
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TooLarge;

    fn accept() -> AcceptContent {
        AcceptContent::from_names(&["json", "pickle"]).unwrap()
    }

    #[test]
    fn a_message_too_large_is_refused_unread_and_acked() {
        let mut raw = RawMessage {
            too_large: Some(TooLarge {
                size: 100,
                limit: 10,
            }),
            ..RawMessage::default()
        };
        raw.headers.insert("id", "t-1");
        raw.headers.insert("task", "tasks.add");
        let e = decode_task(&mut raw, &accept(), |_| true).unwrap_err();
        match &e {
            DecodeError::TooLarge {
                id,
                name,
                size,
                limit,
            } => {
                assert_eq!(
                    (id.as_deref(), name.as_deref(), *size, *limit),
                    (Some("t-1"), Some("tasks.add"), 100, 10)
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.disposition(), Disposition::Ack);
        assert_eq!(
            e.to_string(),
            "message of 100 bytes exceeds rcelery_max_message_bytes (10 bytes); not decoded"
        );
        // Nothing readable: still refused.
        let mut raw = RawMessage {
            too_large: Some(TooLarge {
                size: 100,
                limit: 10,
            }),
            ..RawMessage::default()
        };
        assert!(matches!(
            decode_task(&mut raw, &accept(), |_| true),
            Err(DecodeError::TooLarge {
                id: None,
                name: None,
                ..
            })
        ));
    }

    #[test]
    fn the_serialized_body_is_freed_once_decoded_and_kept_on_failure() {
        let mut raw = RawMessage {
            body: br#"[[2, 3], {}, {}]"#.to_vec(),
            content_type: "application/json".into(),
            ..RawMessage::default()
        };
        raw.headers.insert("id", "t-2");
        raw.headers.insert("task", "tasks.add");
        let kept = raw.clone();
        let task = decode_task(&mut raw, &accept(), |_| true).unwrap();
        assert_eq!(task.args, vec![Value::Int(2), Value::Int(3)]);
        assert_eq!(raw.body.capacity(), 0);
        let mut raw = kept;
        raw.body = b"[1".to_vec();
        assert!(decode_task(&mut raw, &accept(), |_| true).is_err());
        assert_eq!(raw.body, b"[1", "left as it was, for forwarding");
    }
}
