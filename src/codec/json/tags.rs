//! kombu's `object_hook`: an object whose keys are exactly `__type__` and `__value__` becomes
//! the value kombu 5.5.4 registers for that type, and an unknown type is an error, as kombu
//! raises `ValueError("Unsupported type", ...)`.
//!
//! | `__type__` | `__value__` | decodes to (Python) |
//! |---|---|---|
//! | `bytes` | str | `value.encode("utf-8")` |
//! | `base64` | str | `base64.b64decode(value)` (non-strict: stray characters skipped) |
//! | `datetime` | str | `datetime.fromisoformat(value)` |
//! | `date` | str | `datetime.fromisoformat(value).date()` |
//! | `time` | str | `time.fromisoformat(value)` |
//! | `decimal` | str, int or float | `Decimal(value)` |
//! | `uuid` | object | `UUID(**value)` (`hex`, `int`, `bytes`, `bytes_le`, `version`, `is_safe`) |

use num_bigint::BigInt;
use num_traits::ToPrimitive;

use crate::value::{Date, DateTime, Dict, Time, Value};

/// Applies kombu's hook to a freshly read object. The error is the message of what Python
/// would raise.
pub(super) fn object_hook(d: Dict) -> Result<Value, String> {
    if d.len() != 2 {
        return Ok(Value::Dict(d));
    }
    let (Some(kind), Some(_)) = (d.get("__type__"), d.get("__value__")) else {
        return Ok(Value::Dict(d));
    };
    let kind = match kind {
        Value::Str(s) => s.clone(),
        other => return Err(format!("Unsupported type {}", crate::value::py_repr(other))),
    };
    let mut d = d;
    let value = d.remove("__value__").unwrap_or(Value::None);
    decode_tag(&kind, value)
}

fn expect_str(kind: &str, v: Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s),
        // What `str.encode("utf-8")` or `fromisoformat` say of a lone surrogate.
        Value::SurrogateStr(s) => Err(format!(
            "{kind} tag: {} holds a surrogate, not allowed",
            crate::value::py_repr(&Value::SurrogateStr(s))
        )),
        other => Err(format!(
            "{kind} tag needs a str, got {}",
            crate::value::py_type_name(&other)
        )),
    }
}

fn decode_tag(kind: &str, value: Value) -> Result<Value, String> {
    match kind {
        "bytes" => Ok(Value::Bytes(expect_str(kind, value)?.into_bytes())),
        "base64" => b64decode(expect_str(kind, value)?.as_bytes()).map(Value::Bytes),
        "datetime" => DateTime::parse_iso(&expect_str(kind, value)?)
            .map(|dt| Value::DateTime(Box::new(dt)))
            .map_err(|e| e.to_string()),
        "date" => Date::parse_iso(&expect_str(kind, value)?)
            .map(Value::Date)
            .map_err(|e| e.to_string()),
        "time" => Time::parse_iso(&expect_str(kind, value)?)
            .map(|t| Value::Time(Box::new(t)))
            .map_err(|e| e.to_string()),
        "decimal" => decimal(value),
        "uuid" => uuid_from_kwargs(value).map(Value::Uuid),
        other => Err(format!("Unsupported type {other:?}")),
    }
}

fn decimal(value: Value) -> Result<Value, String> {
    match value {
        Value::Str(s) => Value::parse_decimal(&s)
            .ok_or_else(|| "[<class 'decimal.ConversionSyntax'>]".to_owned()),
        Value::Int(i) => Ok(Value::decimal_from_int(&BigInt::from(i))),
        Value::Bool(b) => Ok(Value::decimal_from_int(&BigInt::from(i64::from(b)))),
        Value::BigInt(b) => Ok(Value::decimal_from_int(&b)),
        Value::Float(f) => Ok(Value::decimal_from_f64(f)),
        d @ Value::Decimal(_) => Ok(d),
        other => Err(format!(
            "conversion from {} to Decimal is not supported",
            crate::value::py_type_name(&other)
        )),
    }
}

/// `uuid.UUID(**kwargs)`.
fn uuid_from_kwargs(value: Value) -> Result<uuid::Uuid, String> {
    let Value::Dict(kwargs) = value else {
        return Err("UUID() argument after ** must be a mapping".to_owned());
    };
    let mut n: Option<u128> = None;
    let mut version: Option<i64> = None;
    let mut given = 0;
    for (k, v) in kwargs.iter() {
        let Value::Str(name) = k else {
            return Err("keywords must be strings".to_owned());
        };
        match name.as_str() {
            "hex" => {
                given += 1;
                n = Some(uuid_hex(v)?);
            }
            "int" => {
                given += 1;
                let i = match v {
                    Value::Int(i) => u128::try_from(*i).ok(),
                    Value::BigInt(b) => b.to_u128(),
                    _ => None,
                };
                n = Some(i.ok_or("int is out of range (need a 128-bit value)")?);
            }
            "bytes" | "bytes_le" => {
                given += 1;
                let Value::Bytes(b) = v else {
                    return Err(format!("{name} is not a 16-char string"));
                };
                let mut arr: [u8; 16] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| "bytes is not a 16-char string")?;
                if name == "bytes_le" {
                    arr[0..4].reverse();
                    arr[4..6].reverse();
                    arr[6..8].reverse();
                }
                n = Some(u128::from_be_bytes(arr));
            }
            "version" => match v {
                Value::None => {}
                Value::Int(i) => version = Some(*i),
                _ => return Err("illegal version number".to_owned()),
            },
            "is_safe" => {}
            other => {
                return Err(format!(
                    "UUID.__init__() got an unexpected keyword argument '{other}'"
                ))
            }
        }
    }
    if given != 1 {
        return Err(
            "one of the hex, bytes, bytes_le, fields, or int arguments must be given".to_owned(),
        );
    }
    let mut n = n.ok_or("no UUID value")?;
    if let Some(v) = version {
        if !(1..=5).contains(&v) {
            return Err("illegal version number".to_owned());
        }
        n &= !(0xc000u128 << 48);
        n |= 0x8000u128 << 48;
        n &= !(0xf000u128 << 64);
        n |= (v as u128) << 76;
    }
    Ok(uuid::Uuid::from_u128(n))
}

/// `UUID(hex=...)`: `urn:`, `uuid:`, braces and hyphens are dropped, 32 hex digits remain.
fn uuid_hex(v: &Value) -> Result<u128, String> {
    let Value::Str(s) = v else {
        return Err("hex must be a str".to_owned());
    };
    let s = s.replace("urn:", "").replace("uuid:", "");
    let s = s.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("badly formed hexadecimal UUID string".to_owned());
    }
    u128::from_str_radix(&s, 16).map_err(|e| e.to_string())
}

fn b64_digit(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `base64.b64decode(text)` with Python's non-strict rules: characters outside the alphabet
/// are skipped, decoding stops once a group is completed by `=` padding, and a group left
/// unfinished is an error ("Incorrect padding").
fn b64decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut quad = 0u8; // position in the current group of four
    let mut left = 0u8; // bits carried to the next byte
    let mut pads = 0u8;
    let mut data_chars = 0usize;
    for &c in text {
        if c == b'=' {
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(v) = b64_digit(c) else { continue };
        pads = 0;
        data_chars += 1;
        match quad {
            0 => {
                left = v;
                quad = 1;
            }
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
                quad = 2;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
                quad = 3;
            }
            _ => {
                out.push((left << 6) | v);
                quad = 0;
            }
        }
    }
    match quad {
        0 => Ok(out),
        1 => Err(format!(
            "Invalid base64-encoded string: number of data characters ({data_chars}) cannot be 1 more than a multiple of 4"
        )),
        _ => Err("Incorrect padding".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::b64decode;

    #[test]
    fn base64_is_non_strict_like_python() {
        // Results printed by CPython 3.11's base64.b64decode.
        assert_eq!(b64decode(b"/wA="), Ok(vec![0xff, 0]));
        assert_eq!(b64decode(b"/w\nA=ignored"), Ok(vec![0xff, 0]));
        assert_eq!(b64decode(b"YWJj"), Ok(b"abc".to_vec()));
        assert!(b64decode(b"YWJ").is_err());
        assert!(b64decode(b"Y").is_err());
    }
}
