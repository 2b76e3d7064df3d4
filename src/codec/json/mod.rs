//! TEMPORARY stand-in for the kombu JSON codec (serde_json based, no type tags, no big ints).
use crate::value::{Dict, Value};

/// Why a JSON payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {message}")]
pub struct JsonError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

/// Decodes a JSON document.
pub fn decode(input: &[u8]) -> Result<Value, JsonError> {
    let v: serde_json::Value = serde_json::from_slice(input).map_err(|e| JsonError { offset: e.column(), message: e.to_string() })?;
    Ok(conv(v))
}

fn conv(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::None,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int).unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(a) => Value::List(a.into_iter().map(conv).collect()),
        serde_json::Value::Object(o) => Value::Dict(Dict(o.into_iter().map(|(k, v)| (Value::Str(k), conv(v))).collect())),
    }
}

/// Appends `value` as Python's json.dumps would (subset).
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::None => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::BigInt(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(format!("{f:?}").as_bytes()),
        Value::Str(s) => {
            out.push(b'"');
            for c in s.chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\n' => out.extend_from_slice(b"\\n"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
                        }
                    }
                    c => out.push(c as u8),
                }
            }
            out.push(b'"');
        }
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 { out.extend_from_slice(b", "); }
                encode_into(v, out);
            }
            out.push(b']');
        }
        Value::Dict(d) => {
            out.push(b'{');
            for (i, (k, v)) in d.iter().enumerate() {
                if i > 0 { out.extend_from_slice(b", "); }
                encode_into(k, out);
                out.extend_from_slice(b": ");
                encode_into(v, out);
            }
            out.push(b'}');
        }
        other => encode_into(&Value::Str(format!("{other:?}")), out),
    }
}

/// Encodes `value`.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}
