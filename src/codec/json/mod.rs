//! kombu-compatible JSON. (Being written: see issue 2.)
use crate::value::Value;

/// Why a JSON payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {message}")]
pub struct JsonError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

/// Decodes a JSON document, turning kombu's `{"__type__", "__value__"}` tags into typed values.
pub fn decode(_input: &[u8]) -> Result<Value, JsonError> {
    Err(JsonError { offset: 0, message: "not implemented".into() })
}

/// Appends `value` to `out` exactly as kombu's `json.dumps` would write it.
pub fn encode_into(_value: &Value, _out: &mut Vec<u8>) {}

/// Encodes `value` exactly as kombu's `json.dumps` would.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}
