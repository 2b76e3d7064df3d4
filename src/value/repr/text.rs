//! Python's `repr()` of `str` and `bytes`: the quote choice and the escapes.

use super::nonprintable::NON_PRINTABLE;
use crate::value::{StrPiece, SurrogateStr};

/// True when Python's `str.isprintable()` is true for this one character.
pub(crate) fn is_printable(c: char) -> bool {
    let cp = c as u32;
    if (0x20..0x7f).contains(&cp) {
        return true;
    }
    NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, value: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(HEX[((value >> (4 * i)) & 0xf) as usize] as char);
    }
}

/// Python picks `'` unless the text holds a `'` and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// Appends Python's `repr(s)` for a `str`.
pub(crate) fn push_str_repr(s: &str, out: &mut String) {
    let quote = quote_for(s.contains('\''), s.contains('"'));
    out.reserve(s.len() + 2);
    out.push(quote);
    push_repr_body(s, quote, out);
    out.push(quote);
}

/// Appends Python's `repr(s)` for a `str` holding lone surrogates: each one is
/// non-printable (category Cs), so it prints as `\udXXX`.
pub(crate) fn push_surrogate_str_repr(s: &SurrogateStr, out: &mut String) {
    let bytes = s.as_surrogatepass_utf8();
    let quote = quote_for(bytes.contains(&b'\''), bytes.contains(&b'"'));
    out.reserve(bytes.len() + 2);
    out.push(quote);
    for piece in s.pieces() {
        match piece {
            StrPiece::Text(t) => push_repr_body(t, quote, out),
            StrPiece::Surrogate(u) => {
                out.push_str("\\u");
                push_hex(out, u32::from(u), 4);
            }
        }
    }
    out.push(quote);
}

/// The text between the quotes of a `str`'s repr.
fn push_repr_body(s: &str, quote: char, out: &mut String) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let plain = c != quote && c != '\\' && is_printable(c);
        if plain {
            continue;
        }
        out.push_str(&s[start..i]);
        start = i + c.len_utf8();
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => {
                let cp = c as u32;
                if cp < 0x100 {
                    out.push_str("\\x");
                    push_hex(out, cp, 2);
                } else if cp < 0x10000 {
                    out.push_str("\\u");
                    push_hex(out, cp, 4);
                } else {
                    out.push_str("\\U");
                    push_hex(out, cp, 8);
                }
            }
        }
    }
    out.push_str(&s[start..]);
}

/// Appends Python's `repr(b)` for `bytes` (`b'...'`).
pub(crate) fn push_bytes_repr(b: &[u8], out: &mut String) {
    let quote = quote_for(b.contains(&b'\''), b.contains(&b'"')) as u8;
    out.reserve(b.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            q if q == quote => {
                out.push('\\');
                out.push(q as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                out.push_str("\\x");
                push_hex(out, byte as u32, 2);
            }
        }
    }
    out.push(quote as char);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn s(x: &str) -> String {
        let mut o = String::new();
        push_str_repr(x, &mut o);
        o
    }

    fn b(x: &[u8]) -> String {
        let mut o = String::new();
        push_bytes_repr(x, &mut o);
        o
    }

    #[test]
    fn str_repr_matches_python() {
        // Expected texts printed by CPython 3.11's repr().
        assert_eq!(s("abc"), "'abc'");
        assert_eq!(s("it's"), "\"it's\"");
        assert_eq!(s("it's \"q\""), "'it\\'s \"q\"'");
        assert_eq!(
            s("a\nb\t\\\x00\x7f\u{a0}é"),
            "'a\\nb\\t\\\\\\x00\\x7f\\xa0é'"
        );
        assert_eq!(
            s("\u{2028}邮件\u{1F600}\u{e0001}"),
            "'\\u2028邮件\u{1F600}\\U000e0001'"
        );
    }

    fn sur(cps: &[u32]) -> String {
        let Some(Value::SurrogateStr(x)) = Value::from_code_points(cps.iter().copied()) else {
            panic!("a lone surrogate")
        };
        let mut o = String::new();
        push_surrogate_str_repr(&x, &mut o);
        o
    }

    #[test]
    fn lone_surrogates_print_escaped() {
        // CPython 3.11: repr('\ud800'), repr('a\udc00b'), repr("\ud800'"), repr('\ud83d\ude00'),
        // repr('\udfff\t\u00e9"\'').
        assert_eq!(sur(&[0xD800]), "'\\ud800'");
        assert_eq!(sur(&[0x61, 0xDC00, 0x62]), "'a\\udc00b'");
        assert_eq!(sur(&[0xD800, 0x27]), "\"\\ud800'\"");
        assert_eq!(sur(&[0xD83D, 0xDE00]), "'\\ud83d\\ude00'");
        assert_eq!(sur(&[0xDFFF, 0x09, 0xE9, 0x22, 0x27]), "'\\udfff\\té\"\\''");
    }

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(b(b"ab\xff'"), "b\"ab\\xff'\"");
        assert_eq!(b(b"\x00\n\"'"), "b'\\x00\\n\"\\''");
    }
}
