//! Decoding of the text arguments of protocol-0 opcodes: Python's `escape_decode` (STRING),
//! `raw-unicode-escape` (UNICODE) and decimal numbers (INT, LONG, FLOAT, PUT, GET).

use num_bigint::BigInt;

use crate::value::{StrBuilder, Value};

/// CPython refuses to turn longer digit strings into an `int` (`sys.get_int_max_str_digits()`).
const MAX_INT_DIGITS: usize = 4300;

/// Decodes the body of a quoted protocol-0 `STRING` like `codecs.escape_decode`.
pub(super) fn escape_decode(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = data.get(i) else {
            return Err("trailing \\ in string");
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match data.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let hi = data.get(i).and_then(|&d| hex_digit(d));
                let lo = data.get(i + 1).and_then(|&d| hex_digit(d));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err("invalid \\x escape"),
                }
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Decodes `raw-unicode-escape` text: bytes are Latin-1 code points except `\uXXXX` and
/// `\UXXXXXXXX` escapes (a backslash before anything else stays a backslash). An escape of a
/// surrogate is a lone surrogate, never joined with a neighbour (`\ud83d\ude00` is two code
/// points), as in CPython.
pub(super) fn raw_unicode_escape_decode(data: &[u8]) -> Result<StrBuilder, &'static str> {
    let mut out = StrBuilder::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        i += 1;
        if c != b'\\' || i >= data.len() {
            out.push(char::from(c));
            continue;
        }
        let e = data[i];
        i += 1;
        let count = match e {
            b'u' => 4,
            b'U' => 8,
            _ => {
                out.push('\\');
                out.push(char::from(e));
                continue;
            }
        };
        let digits = data.get(i..i + count).ok_or("truncated \\u escape")?;
        i += count;
        let mut code: u32 = 0;
        for &d in digits {
            code = code * 16 + hex_digit(d).ok_or("invalid \\u escape")?;
        }
        if !out.push_code_point(code) {
            return Err("\\Uxxxxxxxx out of range");
        }
    }
    Ok(out)
}

fn hex_digit(d: u8) -> Option<u32> {
    char::from(d).to_digit(16)
}

/// Parses a decimal integer as `int()` does for the text opcodes (sign, digits, surrounding
/// whitespace), as an `Int` or a `BigInt`.
pub(super) fn parse_int(text: &[u8]) -> Result<Value, &'static str> {
    let s = std::str::from_utf8(text)
        .map_err(|_| "integer is not ASCII")?
        .trim();
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid literal for int()");
    }
    if digits.len() > MAX_INT_DIGITS {
        return Err("integer literal exceeds 4300 digits");
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    s.parse::<BigInt>()
        .map(Value::int)
        .map_err(|_| "invalid literal for int()")
}

/// Parses a non-negative decimal memo index (PUT / GET).
pub(super) fn parse_index(text: &[u8]) -> Result<u64, &'static str> {
    let s = std::str::from_utf8(text)
        .map_err(|_| "memo index is not ASCII")?
        .trim();
    s.parse::<u64>().map_err(|_| "invalid memo index")
}

/// Parses a float as `float()` does for protocol-0 `FLOAT` (`repr` text, `inf`, `nan`).
pub(super) fn parse_float(text: &[u8]) -> Result<f64, &'static str> {
    let s = std::str::from_utf8(text)
        .map_err(|_| "float is not ASCII")?
        .trim();
    if s.contains('_') {
        return Err("invalid literal for float()");
    }
    s.parse::<f64>().map_err(|_| "invalid literal for float()")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_decode(br"a\n\x41\101\\\'").unwrap(), b"a\nAA\\'");
        assert_eq!(escape_decode(br"\q").unwrap(), b"\\q");
        assert!(escape_decode(br"\x4").is_err());
    }

    fn raw(data: &[u8]) -> Result<Value, &'static str> {
        raw_unicode_escape_decode(data).map(StrBuilder::into_value)
    }

    #[test]
    fn raw_unicode() {
        assert_eq!(raw(b"\\u90ae\xe9\\\\u0041"), Ok(Value::str("邮é\\\\u0041")));
        assert_eq!(raw(b"\\U0001F600"), Ok(Value::str("😀")));
        assert!(raw(b"\\u12").is_err());
        assert!(raw(b"\\U00110000").is_err());
    }

    #[test]
    fn raw_unicode_keeps_lone_surrogates() {
        // CPython 3.11: b'\\ud800'.decode('raw-unicode-escape') == '\ud800', and
        // b'a\\ud83d\\ude00\\U0000dfff'... is 'a', '\ud83d', '\ude00', '\udfff' (never joined).
        let cps = |v: Value| match v {
            Value::SurrogateStr(s) => s.code_points().collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(raw(b"\\ud800").map(cps), Ok(vec![0xD800]));
        assert_eq!(
            raw(b"a\\ud83d\\ude00\\U0000dfff").map(cps),
            Ok(vec![0x61, 0xD83D, 0xDE00, 0xDFFF])
        );
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int(b"-12").unwrap(), Value::Int(-12));
        assert!(matches!(
            parse_int(b"1267650600228229401496703205376").unwrap(),
            Value::BigInt(_)
        ));
        assert!(parse_int(b"0x1").is_err());
    }
}
