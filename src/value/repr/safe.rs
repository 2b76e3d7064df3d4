//! Celery's `celery.utils.saferepr.saferepr`: a streaming repr that stops after `maxlen`
//! characters and shows at most three levels of nesting. Used for `argsrepr`, `kwargsrepr`
//! and the result shown in logs.
//!
//! It is not `repr()`: strings are wrapped in `'...'` with only `'` escaped, bytes print as
//! their UTF-8 text (or hex when not UTF-8), numbers print with `str()`. Once the budget is
//! spent, closing brackets that come next are still written (nothing was left out of those
//! containers); the first other token is dropped, `, ...` is written, then the closing
//! brackets of every container still open, except that of a container the dropped token
//! opened, exactly as Celery 5.7's token stream does (5.5 wrote `, ...` at once and closed
//! every container).
//!
//! A `str` holding lone surrogates is written as it is, so the saferepr of such a value holds
//! them too: [`saferepr_value`] returns that exact Python `str`; [`saferepr`] returns a Rust
//! `String`, with each lone surrogate spelled `\udXXX` (as Python's `backslashreplace`, which
//! `sys.stderr` uses, shows it). The text is built as `surrogatepass` UTF-8 bytes, where a code
//! point starts at every byte that is not a continuation byte.

use std::fmt::Write as _;

use super::float::float_repr;
use super::python::write_repr;
use crate::value::{Dict, StrPiece, Value};

/// Containers deeper than this print as `[...]`, `{...}`, `(...)`.
const MAX_LEVELS: usize = 3;

/// One token of the stream.
enum Token<'a> {
    /// A bracket or separator, with its direction (Celery's `_literal.direction`).
    Literal(&'static str, Dir),
    /// A container past the nesting limit (`[...]`): a literal, never truncated.
    Elided(String),
    /// A dict key: rendered with a nested `saferepr`.
    Key(&'a Value),
    /// A `str` or `bytes`, rendered by the quoting rules.
    Quoted(&'a Value),
    /// Any other text (numbers, reprs, elided containers).
    Text(String),
}

/// Which way a literal moves the nesting level.
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    /// Opens a container.
    Open,
    /// A separator.
    Sep,
    /// Closes a container.
    Close,
}

/// What a container's frame iterates over.
enum Items<'a> {
    Seq(&'a [Value]),
    Dict(&'a Dict),
}

/// An open container: its items, the next position, and its closing literal.
struct Frame<'a> {
    items: Items<'a>,
    /// Index into the container's virtual token list (see [`Frame::next`]).
    pos: usize,
    open: &'static str,
    close: &'static str,
}

/// What a frame produces next.
enum Step<'a> {
    Lit(&'static str),
    Key(&'a Value),
    Value(&'a Value),
    End(&'static str),
}

impl<'a> Frame<'a> {
    fn next(&mut self) -> Step<'a> {
        let pos = self.pos;
        self.pos += 1;
        if pos == 0 {
            return Step::Lit(self.open);
        }
        let k = pos - 1;
        match self.items {
            Items::Seq(items) => {
                // value, sep, value, sep, ..., value
                let n = items.len();
                let total = if n == 0 { 0 } else { 2 * n - 1 };
                if k >= total {
                    Step::End(self.close)
                } else if k.is_multiple_of(2) {
                    items.get(k / 2).map_or(Step::End(self.close), Step::Value)
                } else {
                    Step::Lit(", ")
                }
            }
            Items::Dict(d) => {
                // key, ": ", value, ", ", key, ...
                let n = d.len();
                let total = if n == 0 { 0 } else { 4 * n - 1 };
                if k >= total {
                    return Step::End(self.close);
                }
                let Some((key, val)) = d.0.get(k / 4) else {
                    return Step::End(self.close);
                };
                match k % 4 {
                    0 => Step::Key(key),
                    1 => Step::Lit(": "),
                    2 => Step::Value(val),
                    _ => Step::Lit(", "),
                }
            }
        }
    }
}

/// The token stream over one root value.
struct Stream<'a> {
    root: Option<&'a Value>,
    stack: Vec<Frame<'a>>,
}

impl<'a> Stream<'a> {
    fn next(&mut self) -> Option<Token<'a>> {
        let value = match self.stack.last_mut() {
            None => self.root.take()?,
            Some(frame) => match frame.next() {
                Step::Lit(s) => return Some(Token::Literal(s, Dir::Sep)),
                Step::Key(k) => return Some(Token::Key(k)),
                Step::End(s) => {
                    self.stack.pop();
                    return Some(Token::Literal(s, Dir::Close));
                }
                Step::Value(v) => v,
            },
        };
        Some(self.classify(value))
    }

    /// What Celery's `reprstream` yields for a value met at the current level.
    fn classify(&mut self, value: &'a Value) -> Token<'a> {
        let level = self.stack.len();
        let (items, open, close) = match value {
            Value::Str(_) | Value::SurrogateStr(_) | Value::Bytes(_) => {
                return Token::Quoted(value)
            }
            Value::Bool(b) => return Token::Text(if *b { "True" } else { "False" }.to_owned()),
            Value::Int(i) => return Token::Text(i.to_string()),
            Value::BigInt(i) => return Token::Text(i.to_string()),
            Value::Float(f) => return Token::Text(float_repr(*f).as_str().to_owned()),
            Value::Set(v) if v.is_empty() => return Token::Text("set()".to_owned()),
            Value::FrozenSet(v) if v.is_empty() => return Token::Text("frozenset()".to_owned()),
            Value::Set(v) => (Items::Seq(v), "{", "}"),
            Value::FrozenSet(v) => (Items::Seq(v), "frozenset({", "})"),
            Value::Tuple(v) => (Items::Seq(v), "(", if v.len() == 1 { ",)" } else { ")" }),
            Value::List(v) => (Items::Seq(v), "[", "]"),
            Value::Dict(d) => (Items::Dict(d), "{", "}"),
            other => {
                let mut s = String::new();
                write_repr(other, &mut s, 0);
                return Token::Text(s);
            }
        };
        if level >= MAX_LEVELS {
            return Token::Elided(format!("{open}...{close}"));
        }
        let mut frame = Frame {
            items,
            pos: 0,
            open,
            close,
        };
        let start = frame.next();
        self.stack.push(frame);
        match start {
            Step::Lit(s) => Token::Literal(s, Dir::Open),
            _ => Token::Literal(open, Dir::Open),
        }
    }
}

/// Celery's `saferepr(value, maxlen)`: at most about `maxlen` characters (0 means no limit,
/// like Python's `maxlen=None`), three levels of nesting. Lone surrogates in the text (from
/// `str`s holding them) are spelled `\udXXX`; [`saferepr_value`] keeps them.
pub fn saferepr(value: &Value, maxlen: usize) -> String {
    match saferepr_value(value, maxlen) {
        Value::Str(text) => text,
        Value::SurrogateStr(s) => {
            let mut out = String::with_capacity(s.as_surrogatepass_utf8().len() + 8);
            for piece in s.pieces() {
                match piece {
                    StrPiece::Text(t) => out.push_str(t),
                    StrPiece::Surrogate(u) => {
                        let _ = write!(out, "\\u{u:04x}");
                    }
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// Celery's `saferepr(value, maxlen)` as the exact Python `str` it returns: a
/// [`Value::Str`], or a [`Value::SurrogateStr`] when the text holds a lone surrogate (as
/// `argsrepr` does for arguments holding one).
pub fn saferepr_value(value: &Value, maxlen: usize) -> Value {
    Value::from_surrogatepass_vec(render_root(value, maxlen))
        .unwrap_or_else(|| Value::Str(String::new()))
}

/// The text of `saferepr(value, maxlen)` as `surrogatepass` UTF-8.
fn render_root(value: &Value, maxlen: usize) -> Vec<u8> {
    let budget = if maxlen == 0 {
        None
    } else {
        Some(maxlen as i64)
    };
    let mut out = Vec::new();
    render(value, budget, &mut out);
    out
}

/// Python's `len()` of `surrogatepass` UTF-8 text: its number of code points.
fn char_count(text: &[u8]) -> usize {
    text.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

fn render(value: &Value, mut budget: Option<i64>, out: &mut Vec<u8>) {
    let mut stream = Stream {
        root: Some(value),
        stack: Vec::new(),
    };
    while let Some(token) = stream.next() {
        if budget.is_some_and(|b| b <= 0) {
            if let Token::Literal(s, Dir::Close) = token {
                // The value cut short was the last of its container: close it, uncounted.
                out.extend_from_slice(s.as_bytes());
                continue;
            }
            // The token that found the budget spent is dropped, as Celery does; the closing
            // bracket of a container it opened is not written either.
            out.extend_from_slice(b", ...");
            let skip = usize::from(matches!(token, Token::Literal(_, Dir::Open)));
            for frame in stream.stack.iter().rev().skip(skip) {
                out.extend_from_slice(frame.close.as_bytes());
            }
            return;
        }
        let before = out.len();
        match token {
            Token::Literal(s, _) => out.extend_from_slice(s.as_bytes()),
            Token::Elided(s) => out.extend_from_slice(s.as_bytes()),
            Token::Key(k) => render(k, budget, out),
            Token::Quoted(v) => format_chars(v, budget, out),
            Token::Text(s) => out.extend_from_slice(&truncate(s.as_bytes(), budget)),
        }
        if let Some(b) = budget.as_mut() {
            *b -= char_count(&out[before..]) as i64;
        }
    }
}

/// Celery's `truncate(s, maxlen)` on `surrogatepass` UTF-8 text: when `len(s) >= maxlen`,
/// cut to `maxlen` characters, drop the last partial word (text after the last space) and
/// add `...`.
fn truncate(s: &[u8], maxlen: Option<i64>) -> std::borrow::Cow<'_, [u8]> {
    let Some(max) = maxlen.filter(|m| *m > 0) else {
        return s.into();
    };
    let max = max as usize;
    // Find where character number `max` starts, counting no further.
    let mut seen = 0;
    let mut cut = None;
    for (i, &b) in s.iter().enumerate() {
        if b & 0xC0 != 0x80 {
            if seen == max {
                cut = Some(i);
                break;
            }
            seen += 1;
        }
    }
    let cut = match cut {
        Some(i) => i,
        None if seen >= max => s.len(),
        None => return s.into(),
    };
    let head = &s[..cut];
    let head = match head.iter().rposition(|&b| b == b' ') {
        Some(i) => &head[..i],
        None => head,
    };
    let mut t = Vec::with_capacity(head.len() + 3);
    t.extend_from_slice(head);
    t.extend_from_slice(b"...");
    t.into()
}

fn format_chars(v: &Value, budget: Option<i64>, out: &mut Vec<u8>) {
    if let Some(text) = v.str_surrogatepass_utf8() {
        out.push(b'\'');
        for &b in truncate(text, budget).iter() {
            if b == b'\'' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'\'');
        return;
    }
    match v {
        Value::Bytes(b) => {
            let limit = budget.filter(|m| *m > 0).map(|m| m as usize);
            let (chunk, cut) = match limit {
                Some(m) if b.len() > m => (&b[..m], true),
                _ => (&b[..], false),
            };
            out.extend_from_slice(b"b'");
            if std::str::from_utf8(chunk).is_ok() {
                out.extend_from_slice(chunk);
            } else {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for byte in chunk {
                    out.push(HEX[usize::from(byte >> 4)]);
                    out.push(HEX[usize::from(byte & 0xf)]);
                }
            }
            if cut {
                out.extend_from_slice(b"...");
            }
            out.push(b'\'');
        }
        other => {
            let mut s = String::new();
            write_repr(other, &mut s, 0);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{saferepr, saferepr_value};
    use crate::value::Value;

    fn sur(cps: &[u32]) -> Value {
        Value::from_code_points(cps.iter().copied()).unwrap_or(Value::None)
    }

    #[test]
    fn lone_surrogates_are_written_as_they_are() {
        // Celery 5.7.0 (as 5.5.3): saferepr(('\ud800',)) == "('\ud800',)" (the surrogate itself), and
        // saferepr('\ud800' * 5 + ' x y', 3) == "'\ud800\ud800\ud800...'".
        let args = Value::Tuple(vec![sur(&[0xD800])]);
        let want: Vec<u32> = "('"
            .chars()
            .map(u32::from)
            .chain([0xD800])
            .chain("',)".chars().map(u32::from))
            .collect();
        assert_eq!(saferepr_value(&args, 1024), sur(&want));
        assert_eq!(saferepr(&args, 1024), "('\\ud800',)");
        let mut long = vec![0xD800; 5];
        long.extend(" x y".chars().map(u32::from));
        let mut want = vec![0x27, 0xD800, 0xD800, 0xD800];
        want.extend("...'".chars().map(u32::from));
        assert_eq!(saferepr_value(&sur(&long), 3), sur(&want));
        assert_eq!(saferepr_value(&Value::str("ok"), 0), Value::str("'ok'"));
    }

    #[test]
    fn python_only_types_match_celery() {
        // Printed by Celery 5.5.3: saferepr((b'\xff\x01', bytearray(b'a'), None, True, 1.5,
        // Decimal('1.5'), set(), frozenset({1}), (1,), ()), 1024)
        let v = Value::Tuple(vec![
            Value::Bytes(vec![0xff, 0x01]),
            Value::ByteArray(b"a".to_vec()),
            Value::None,
            Value::Bool(true),
            Value::Float(1.5),
            Value::Decimal("1.5".into()),
            Value::Set(vec![]),
            Value::FrozenSet(vec![Value::Int(1)]),
            Value::Tuple(vec![Value::Int(1)]),
            Value::Tuple(vec![]),
        ]);
        assert_eq!(
            saferepr(&v, 1024),
            "(b'ff01', bytearray(b'a'), None, True, 1.5, Decimal('1.5'), set(), frozenset({1}), (1,), ())"
        );
    }
}
