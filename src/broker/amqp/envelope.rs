//! AMQP messages ↔ the transport-neutral [`RawMessage`] / [`OutgoingMessage`]: properties by
//! their AMQP names, the `application_headers` table ↔ the [`Dict`] value model (as py-amqp
//! reads and writes it), the body raw (no base64 on AMQP).

use lapin::message::Delivery as LapinDelivery;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

use crate::protocol::{DeliveryInfo, OutgoingMessage, Properties, RawMessage};
use crate::value::{Dict, Value};

/// A delivered AMQP message as the worker sees it; `delivery_info` as kombu's `Message`
/// carries it (exchange and routing key it was published with, `redelivered`).
pub fn raw_message(delivery: &LapinDelivery) -> RawMessage {
    let p = &delivery.properties;
    let text = |s: &Option<ShortString>| s.as_ref().map(|s| s.as_str().to_owned());
    RawMessage {
        body: delivery.data.clone(),
        too_large: None,
        content_type: text(p.content_type()).unwrap_or_default(),
        content_encoding: text(p.content_encoding()).unwrap_or_default(),
        headers: p.headers().as_ref().map(table_to_dict).unwrap_or_default(),
        properties: Properties {
            correlation_id: text(p.correlation_id()),
            reply_to: text(p.reply_to()),
            delivery_mode: *p.delivery_mode(),
            priority: *p.priority(),
            expiration: text(p.expiration()),
        },
        delivery_info: DeliveryInfo {
            exchange: delivery.exchange.as_str().to_owned(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            redelivered: delivery.redelivered,
        },
    }
}

/// The properties kombu's `Producer.publish` sends with a task message (py-amqp's names):
/// content type and encoding, the headers as `application_headers`, `delivery_mode`
/// (2 unless said otherwise), `priority`, `correlation_id`, `reply_to`, `expiration`.
pub fn properties(message: &OutgoingMessage) -> BasicProperties {
    let p = &message.properties;
    let mut props = BasicProperties::default()
        .with_content_type(message.content_type.as_str().into())
        .with_content_encoding(message.content_encoding.as_str().into())
        .with_headers(dict_to_table(&message.headers))
        .with_delivery_mode(p.delivery_mode.unwrap_or(2))
        .with_priority(p.priority.unwrap_or(0));
    if let Some(id) = &p.correlation_id {
        props = props.with_correlation_id(id.as_str().into());
    }
    if let Some(reply_to) = &p.reply_to {
        props = props.with_reply_to(reply_to.as_str().into());
    }
    if let Some(expiration) = &p.expiration {
        props = props.with_expiration(expiration.as_str().into());
    }
    props
}

/// A header table as the dict py-amqp reads it (keys in the table's order).
pub fn table_to_dict(table: &FieldTable) -> Dict {
    let mut d = Dict::with_capacity(table.inner().len());
    for (k, v) in table.inner() {
        d.insert(k.as_str(), amqp_to_value(v));
    }
    d
}

/// A dict as the header table py-amqp writes; keys that are not strings are left out
/// (py-amqp refuses them), values with no AMQP form are written as their `repr`.
pub fn dict_to_table(dict: &Dict) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in &dict.0 {
        if let Value::Str(key) = k {
            t.insert(key.as_str().into(), value_to_amqp(v));
        }
    }
    t
}

/// One AMQP field value as py-amqp decodes it: text that is UTF-8 becomes `str`, other
/// bytes stay `bytes`; numbers, booleans, tables, arrays as themselves; void as `None`.
pub fn amqp_to_value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::Int(i64::from(*i)),
        AMQPValue::ShortShortUInt(i) => Value::Int(i64::from(*i)),
        AMQPValue::ShortInt(i) => Value::Int(i64::from(*i)),
        AMQPValue::ShortUInt(i) => Value::Int(i64::from(*i)),
        AMQPValue::LongInt(i) => Value::Int(i64::from(*i)),
        AMQPValue::LongUInt(i) => Value::Int(i64::from(*i)),
        AMQPValue::LongLongInt(i) => Value::Int(*i),
        AMQPValue::Float(f) => Value::Float(f64::from(*f)),
        AMQPValue::Double(f) => Value::Float(*f),
        AMQPValue::DecimalValue(d) => {
            Value::Float(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::Str(s.as_str().to_owned()),
        AMQPValue::LongString(s) => text_or_bytes(s.as_bytes()),
        AMQPValue::ByteArray(b) => Value::Bytes(b.as_slice().to_vec()),
        AMQPValue::FieldArray(a) => Value::List(a.as_slice().iter().map(amqp_to_value).collect()),
        AMQPValue::Timestamp(t) => Value::Int(i64::try_from(*t).unwrap_or(i64::MAX)),
        AMQPValue::FieldTable(t) => Value::Dict(table_to_dict(t)),
        AMQPValue::Void => Value::None,
    }
}

fn text_or_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::Str(s.to_owned()),
        Err(_) => Value::Bytes(bytes.to_vec()),
    }
}

/// One value as py-amqp's `_write_item` writes it: `str`/`bytes` as a long string, `bool`,
/// `float` as a double, `int` as a 32-bit int when it fits (±2147483647) else 64-bit,
/// `dict` as a table, `list`/`tuple` as an array, `None` as void.
pub fn value_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::None => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) if small != i32::MIN => AMQPValue::LongInt(small),
            _ => AMQPValue::LongLongInt(*i),
        },
        Value::Float(f) => AMQPValue::Double(*f),
        Value::Str(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Bytes(b) | Value::ByteArray(b) => AMQPValue::LongString(LongString::from(b.clone())),
        Value::List(items) | Value::Tuple(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Dict(d) => AMQPValue::FieldTable(dict_to_table(d)),
        Value::DateTime(d) => match d.to_utc_assuming_utc() {
            Some(t) => AMQPValue::Timestamp(u64::try_from(t.timestamp()).unwrap_or(0)),
            None => AMQPValue::Void,
        },
        other => AMQPValue::LongString(LongString::from(crate::value::py_repr(other).into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NewTask;

    fn sample_headers() -> Dict {
        let mut h = Dict::new();
        h.insert("lang", "py");
        h.insert("task", "tasks.add");
        h.insert("eta", Value::None);
        h.insert("retries", Value::Int(3));
        h.insert("big", Value::Int(1 << 40));
        h.insert("ignore_result", Value::Bool(false));
        h.insert(
            "timelimit",
            Value::List(vec![Value::Float(10.5), Value::None]),
        );
        let mut stamps = Dict::new();
        stamps.insert("s", "v");
        h.insert("stamps", Value::Dict(stamps));
        h
    }

    #[test]
    fn headers_survive_the_table_both_ways() {
        let h = sample_headers();
        let back = table_to_dict(&dict_to_table(&h));
        for (k, v) in &h.0 {
            let Value::Str(k) = k else { unreachable!() };
            assert_eq!(back.get(k), Some(v), "{k}");
        }
        assert_eq!(back.len(), h.len());
    }

    #[test]
    fn ints_are_written_as_py_amqp_writes_them() {
        assert_eq!(value_to_amqp(&Value::Int(7)), AMQPValue::LongInt(7));
        assert_eq!(
            value_to_amqp(&Value::Int(2_147_483_648)),
            AMQPValue::LongLongInt(2_147_483_648)
        );
        assert_eq!(
            value_to_amqp(&Value::Int(-2_147_483_648)),
            AMQPValue::LongLongInt(-2_147_483_648)
        );
        assert_eq!(
            value_to_amqp(&Value::Tuple(vec![Value::None])),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void]))
        );
    }

    #[test]
    fn text_that_is_not_utf8_stays_bytes() {
        let raw = AMQPValue::LongString(LongString::from(vec![0xff, 0x00]));
        assert_eq!(amqp_to_value(&raw), Value::Bytes(vec![0xff, 0x00]));
        let text = AMQPValue::LongString(LongString::from(b"ok".to_vec()));
        assert_eq!(amqp_to_value(&text), Value::Str("ok".into()));
    }

    #[test]
    fn a_task_message_gets_kombus_properties() {
        let task = NewTask {
            id: "id-1".into(),
            name: "tasks.add".into(),
            reply_to: "oid".into(),
            priority: Some(7),
            routing_key: "default".into(),
            ..NewTask::default()
        };
        let m = task.encode(crate::codec::Serializer::Json);
        let p = properties(&m);
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.priority(), &Some(7));
        assert_eq!(
            p.correlation_id().as_ref().map(|s| s.as_str()),
            Some("id-1")
        );
        assert_eq!(p.reply_to().as_ref().map(|s| s.as_str()), Some("oid"));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        let headers = table_to_dict(p.headers().as_ref().expect("headers"));
        assert_eq!(headers.get("task"), Some(&Value::Str("tasks.add".into())));
        assert_eq!(headers.get("id"), Some(&Value::Str("id-1".into())));
    }

    #[test]
    fn a_delivery_becomes_a_raw_message() {
        let mut d = LapinDelivery::mock(5, "".into(), "default".into(), true, b"[1]".to_vec());
        d.properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_priority(3)
            .with_correlation_id("id-2".into())
            .with_headers(dict_to_table(&sample_headers()));
        let raw = raw_message(&d);
        assert_eq!(raw.body, b"[1]");
        assert_eq!(raw.content_type, "application/json");
        assert_eq!(raw.properties.priority, Some(3));
        assert_eq!(raw.properties.correlation_id.as_deref(), Some("id-2"));
        assert_eq!(raw.delivery_info.routing_key, "default");
        assert_eq!(raw.delivery_info.exchange, "");
        assert!(raw.delivery_info.redelivered);
        assert_eq!(
            raw.headers.get("task"),
            Some(&Value::Str("tasks.add".into()))
        );
    }
}
