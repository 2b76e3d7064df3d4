//! The JSON writer: `kombu.utils.json.dumps(value)`, i.e. Python's `json.dumps` with kombu's
//! encoder and the default arguments (`ensure_ascii=True`, `allow_nan=True`, separators
//! `", "` and `": "`, keys in dict order).
//!
//! Python's own output for what it accepts:
//! - floats as `float.__repr__`, with `NaN`, `Infinity`, `-Infinity`; ints of any size;
//! - every non-ASCII character as `\uXXXX` (surrogate pairs beyond the BMP), `\"`, `\\`,
//!   `\n`, `\r`, `\t`, `\b`, `\f`, other control characters and DEL as `\u00XX`; `/` as is;
//!   a lone surrogate as its own `\udXXX`, lowercase like the rest;
//! - tuples as lists; dict keys that are `int`, `float`, `bool` or `None` as the strings
//!   `"1"`, `"1.5"`, `"true"`, `"null"`;
//! - kombu's tags: `bytes` (valid UTF-8) / `base64`, `datetime`, `date`, `time` (their
//!   `isoformat()`), `decimal` (`str()`), `uuid` (`{"hex": ...}`).
//!
//! Fallbacks where Python raises `TypeError` (a worker must still answer something):
//! - `set` / `frozenset` → a list of the items;
//! - `bytearray` → the same tag as `bytes`;
//! - `timedelta` → its `total_seconds()` as a float;
//! - a dict key of another type (tuple, datetime, ...) → the string of its Python `repr()`.

use std::io::Write as _;

use base64::Engine as _;

use super::MAX_DEPTH;
use crate::value::{StrPiece, SurrogateStr, Value};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the JSON text of `v`.
pub(super) fn write_value(v: &Value, out: &mut Vec<u8>, depth: usize) {
    match v {
        Value::None => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Float(f) => write_float(*f, out),
        Value::Str(s) => write_str(s, out),
        Value::SurrogateStr(s) => write_surrogate_str(s, out),
        Value::Bytes(b) | Value::ByteArray(b) => write_bytes(b, out),
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            if depth >= MAX_DEPTH {
                out.extend_from_slice(b"null");
                return;
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_value(item, out, depth + 1);
            }
            out.push(b']');
        }
        Value::Dict(d) => {
            if depth >= MAX_DEPTH {
                out.extend_from_slice(b"null");
                return;
            }
            out.push(b'{');
            for (i, (k, val)) in d.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_key(k, out);
                out.extend_from_slice(b": ");
                write_value(val, out, depth + 1);
            }
            out.push(b'}');
        }
        Value::DateTime(dt) => write_tag_text(b"datetime", &dt.isoformat(), out),
        Value::Date(d) => write_tag_text(b"date", &d.isoformat(), out),
        Value::Time(t) => write_tag_text(b"time", &t.isoformat(), out),
        Value::Decimal(text) => write_tag_text(b"decimal", text, out),
        Value::Uuid(u) => {
            out.extend_from_slice(b"{\"__type__\": \"uuid\", \"__value__\": {\"hex\": \"");
            let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
            out.extend_from_slice(u.simple().encode_lower(&mut buf).as_bytes());
            out.extend_from_slice(b"\"}}");
        }
        Value::TimeDelta(td) => write_float(td.total_seconds(), out),
    }
}

fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        Value::push_float_repr(f, out);
    }
}

/// Python's conversion of a dict key to a JSON string.
fn write_key(k: &Value, out: &mut Vec<u8>) {
    match k {
        Value::Str(s) => write_str(s, out),
        Value::SurrogateStr(s) => write_surrogate_str(s, out),
        Value::Bool(_) | Value::None | Value::Int(_) | Value::BigInt(_) | Value::Float(_) => {
            out.push(b'"');
            write_value(k, out, MAX_DEPTH);
            out.push(b'"');
        }
        other => write_str(&crate::value::py_repr(other), out),
    }
}

/// `{"__type__": "<kind>", "__value__": "<text>"}`.
fn write_tag_text(kind: &[u8], text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"__type__\": \"");
    out.extend_from_slice(kind);
    out.extend_from_slice(b"\", \"__value__\": ");
    write_str(text, out);
    out.push(b'}');
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(b) {
        Ok(text) => write_tag_text(b"bytes", text, out),
        Err(_) => {
            out.extend_from_slice(b"{\"__type__\": \"base64\", \"__value__\": \"");
            let start = out.len();
            let len = base64::encoded_len(b.len(), true).unwrap_or(0);
            out.resize(start + len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.extend_from_slice(b"\"}");
        }
    }
}

fn push_u_escape(unit: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// A JSON string with `ensure_ascii=True` escaping.
pub(super) fn write_str(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_str_body(s, out);
    out.push(b'"');
}

/// A JSON string holding lone surrogates: each is written `\udXXX`, as Python writes it (and
/// reads it back).
fn write_surrogate_str(s: &SurrogateStr, out: &mut Vec<u8>) {
    out.reserve(s.as_surrogatepass_utf8().len() + 2);
    out.push(b'"');
    for piece in s.pieces() {
        match piece {
            StrPiece::Text(t) => write_str_body(t, out),
            StrPiece::Surrogate(u) => push_u_escape(u32::from(u), out),
        }
    }
    out.push(b'"');
}

/// The escaped text between a JSON string's quotes.
fn write_str_body(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        if b < 0x80 {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => push_u_escape(u32::from(b), out),
            }
            i += 1;
        } else {
            let c = s
                .get(i..)
                .and_then(|t| t.chars().next())
                .unwrap_or('\u{FFFD}');
            let cp = c as u32;
            if cp >= 0x10000 {
                let v = cp - 0x10000;
                push_u_escape(0xD800 | (v >> 10), out);
                push_u_escape(0xDC00 | (v & 0x3ff), out);
            } else {
                push_u_escape(cp, out);
            }
            i += c.len_utf8().max(1);
        }
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
}
