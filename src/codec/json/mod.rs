//! kombu's JSON serializer, written by hand.
//!
//! Why not `serde_json`: Python's `json` (which kombu calls) reads and writes `NaN`,
//! `Infinity` and `-Infinity`, has ints of any size, escapes every non-ASCII character as
//! `\uXXXX` (`ensure_ascii=True`), separates with `", "` and `": "`, and prints floats with
//! `float.__repr__`. Results are stored and compared by Python clients, so the output must
//! match `kombu.utils.json.dumps` byte for byte; that is easiest with our own reader and writer
//! working straight on [`Value`].
//!
//! - [`decode`] is `kombu.utils.json.loads`: the bytes must be UTF-8, then JSON as Python's
//!   `json.loads` reads it; every object whose keys are exactly `__type__` and `__value__` is
//!   turned into the tagged value by kombu's `object_hook` (see `tags.rs`).
//! - [`PullReader`] walks a document of a known shape without building a [`Value`] tree
//!   (kombu's Redis envelope, once per message).
//! - [`encode`] / [`encode_into`] are `kombu.utils.json.dumps` (see `write.rs`).
//!
//! Memory: decoding checks, as it reads, the allowance of [`crate::codec::limits`]
//! (32 bytes per input byte + 1 MiB) and the nesting limit; long arrays are gathered in
//! chunks and joined once into a vector of their exact length (see
//! `docs/security-pickle.md`, "Memory").
//!
//! A lone UTF-16 surrogate escape (`"\ud800"`) decodes, as in Python, to a `str` holding that
//! surrogate ([`Value::SurrogateStr`]), and is written back as `\ud800`; a high escape directly
//! followed by a low one is one character beyond the BMP.
//!
//! Deviations from Python, all on inputs Python itself rejects or cannot produce:
//! - Nesting deeper than [`MAX_DEPTH`] is an error on decode (Python raises `RecursionError`
//!   near 1000); on encode, deeper values are written as `null`.
//! - Values Python's encoder refuses with `TypeError` are written rather than refused: see
//!   `write.rs` for the fallback of each (`set` → list, `timedelta` → seconds, ...).

mod pull;
mod read;
mod tags;
mod write;

use crate::value::Value;

pub use pull::{ExactStr, PullReader};

/// The deepest nesting of arrays and objects read or written.
pub const MAX_DEPTH: usize = 512;

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
pub fn decode(input: &[u8]) -> Result<Value, JsonError> {
    read::decode(input)
}

/// Appends `value` to `out` exactly as kombu's `json.dumps` would write it.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    write::write_value(value, out, 0);
}

/// Encodes `value` exactly as kombu's `json.dumps` would.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

#[cfg(test)]
mod tests;
