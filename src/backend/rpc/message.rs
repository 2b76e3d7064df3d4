//! The result message of Celery's rpc backend (`RPCBackend.store_result`): the task's result
//! meta (Celery's `_get_result_meta`, with `task_id` last) serialized with
//! `result_serializer`, published to the anonymous exchange with the request's `reply_to` as
//! routing key, its `correlation_id` (the task id when unset), no headers, and delivery mode
//! 1 (2 with `result_persistent`). Nothing is declared: Celery 5.7 publishes with
//! `declare=None`; the client declared its reply queue before it sent the task.

use crate::backend::{MetaEncoder, ResultRecord};
use crate::protocol::{OutgoingMessage, Properties};
use crate::value::{Dict, Value};

/// The message carrying `record` to the client, or `None` when the request named no
/// `reply_to` (Celery's rpc backend then sends nothing). `date_done` is now for ready states.
pub fn reply_message(
    encoder: &MetaEncoder,
    record: &ResultRecord,
    persistent: bool,
) -> Option<OutgoingMessage> {
    let date_done = record.state.is_ready().then(|| encoder.date_done());
    reply_message_at(encoder, record, persistent, date_done)
}

/// [`reply_message`] with a given `date_done` (for reproducing a captured message).
pub fn reply_message_at(
    encoder: &MetaEncoder,
    record: &ResultRecord,
    persistent: bool,
    date_done: Option<String>,
) -> Option<OutgoingMessage> {
    let reply_to = record.reply_to.as_deref().filter(|r| !r.is_empty())?;
    let correlation_id = record
        .correlation_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .unwrap_or(&record.task_id);
    let meta: Value = encoder.meta_at(record, date_done);
    let serializer = encoder.serializer;
    Some(OutgoingMessage {
        body: serializer.encode(&meta),
        content_type: serializer.content_type().to_owned(),
        content_encoding: serializer.content_encoding().to_owned(),
        headers: Dict::new(),
        properties: Properties {
            correlation_id: Some(correlation_id.to_owned()),
            reply_to: None,
            delivery_mode: Some(if persistent { 2 } else { 1 }),
            priority: None,
            expiration: None,
        },
        exchange: String::new(),
        routing_key: reply_to.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::State;
    use crate::codec::Serializer;

    fn encoder() -> MetaEncoder {
        MetaEncoder {
            serializer: Serializer::Json,
            extended: false,
            timezone: chrono_tz::Asia::Shanghai,
        }
    }

    #[test]
    fn no_reply_to_sends_nothing() {
        let record = ResultRecord::failure("t", Value::None, None);
        assert!(reply_message(&encoder(), &record, false).is_none());
        let record = record.replying_to(Some(String::new()), None);
        assert!(reply_message(&encoder(), &record, false).is_none());
    }

    #[test]
    fn the_correlation_id_is_the_requests_else_the_task_id() {
        let mut record = ResultRecord::failure("t", Value::None, None)
            .replying_to(Some("q".into()), Some("c".into()));
        record.state = State::Started;
        let m = reply_message(&encoder(), &record, true).expect("a message");
        assert_eq!(m.properties.correlation_id.as_deref(), Some("c"));
        assert_eq!(m.properties.delivery_mode, Some(2));
        assert_eq!((m.exchange.as_str(), m.routing_key.as_str()), ("", "q"));
        let record = record.replying_to(Some("q".into()), None);
        let m = reply_message(&encoder(), &record, false).expect("a message");
        assert_eq!(m.properties.correlation_id.as_deref(), Some("t"));
        assert_eq!(m.properties.delivery_mode, Some(1));
    }
}
