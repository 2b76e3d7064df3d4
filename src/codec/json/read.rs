//! The JSON reader: Python's `json.loads` grammar (strict: no control characters inside
//! strings), plus `NaN`, `Infinity`, `-Infinity` and ints of any size.
//!
//! `\uXXXX` escapes as Python reads them: a high surrogate escape directly followed by a low
//! one is one character beyond the BMP; any other surrogate escape is a lone surrogate, kept
//! in a [`Value::SurrogateStr`].

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::mem::size_of;

use num_bigint::BigInt;

use super::{tags, ExactStr, JsonError, MAX_DEPTH};
use crate::codec::limits::Budget;
use crate::value::{Dict, StrBuilder, Value};

/// Python 3.11 refuses to convert ints of more digits than this (`sys.int_info`).
const MAX_INT_DIGITS: usize = 4300;

/// Objects with more keys than this find duplicates through a hash index.
const LINEAR_KEYS: usize = 64;

/// What one key of an object's hash index costs, hash table slack included.
const INDEX_ENTRY_BYTES: usize = 40;

/// Array items gathered per chunk: a long array grows a chunk at a time and is copied once,
/// at its end, into a vector of exactly its length (a doubling vector would hold up to twice
/// its length, and three times while it grows).
const ARRAY_CHUNK: usize = 4096;

/// Decodes a whole document (UTF-8 bytes).
pub(super) fn decode(input: &[u8]) -> Result<Value, JsonError> {
    let mut r = Reader::new(input)?;
    let value = r.value()?;
    r.finish()?;
    Ok(value)
}

/// A cursor over a UTF-8 JSON document.
pub(super) struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// What the values read may still allocate (see [`crate::codec::limits`]).
    budget: Budget,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input` (which must be UTF-8), whitespace skipped.
    pub(super) fn new(input: &'a [u8]) -> Result<Self, JsonError> {
        let text = std::str::from_utf8(input).map_err(|e| JsonError {
            offset: e.valid_up_to(),
            message: "invalid UTF-8".to_owned(),
        })?;
        let mut r = Reader {
            text,
            b: input,
            pos: 0,
            depth: 0,
            budget: Budget::for_input(input.len()),
        };
        r.skip_ws();
        Ok(r)
    }

    /// Fails unless only whitespace is left.
    pub(super) fn finish(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        if self.pos != self.b.len() {
            return Err(self.error("Extra data"));
        }
        Ok(())
    }

    pub(super) fn error(&self, message: &str) -> JsonError {
        JsonError {
            offset: self.pos,
            message: message.to_owned(),
        }
    }

    /// Spends `bytes` of the allowance, or fails: the document expands beyond its bound.
    fn charge(&mut self, bytes: usize) -> Result<(), JsonError> {
        self.budget
            .spend(bytes)
            .map_err(|_| self.error("document expands beyond the allowed size"))
    }

    /// Makes room for `extra` more items in `v`, charging its growth first.
    fn reserve<T>(&mut self, v: &mut Vec<T>, extra: usize) -> Result<(), JsonError> {
        self.budget
            .grow(v, extra)
            .map_err(|_| self.error("document expands beyond the allowed size"))
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Consumes `byte` if it is next.
    pub(super) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Enters an object or array whose opening bracket was just consumed.
    pub(super) fn descend(&mut self) -> Result<(), JsonError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves an object or array whose closing bracket was just consumed.
    pub(super) fn ascend(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat_literal(&mut self, lit: &[u8]) -> bool {
        if self.b.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    pub(super) fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string_value()
            }
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat_literal(b"null") => Ok(Value::None),
            _ if self.eat_literal(b"true") => Ok(Value::Bool(true)),
            _ if self.eat_literal(b"false") => Ok(Value::Bool(false)),
            _ if self.eat_literal(b"NaN") => Ok(Value::Float(f64::NAN)),
            _ if self.eat_literal(b"Infinity") => Ok(Value::Float(f64::INFINITY)),
            _ => Err(self.error("Expecting value")),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Value, JsonError>) -> Result<Value, JsonError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.depth += 1;
        self.pos += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::List(Vec::new()));
        }
        let mut items: Vec<Value> = Vec::new();
        let mut full: Vec<Vec<Value>> = Vec::new();
        loop {
            self.skip_ws();
            if items.len() == ARRAY_CHUNK {
                let fresh = Vec::new();
                full.push(std::mem::replace(&mut items, fresh));
                self.charge(ARRAY_CHUNK * size_of::<Value>())?;
                items.reserve_exact(ARRAY_CHUNK);
            } else {
                self.reserve(&mut items, 1)?;
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return self.join(full, items).map(Value::List);
                }
                _ => return Err(self.error("Expecting ',' delimiter")),
            }
        }
    }

    /// The items of a long array, gathered in chunks, in one vector of their exact length.
    fn join(&mut self, full: Vec<Vec<Value>>, last: Vec<Value>) -> Result<Vec<Value>, JsonError> {
        if full.is_empty() {
            return Ok(last);
        }
        let len = full.len() * ARRAY_CHUNK + last.len();
        self.charge(len * size_of::<Value>())?;
        let mut all = Vec::with_capacity(len);
        for chunk in full {
            all.extend(chunk);
        }
        all.extend(last);
        Ok(all)
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Dict(Dict::new()));
        }
        let mut pairs: Vec<(Value, Value)> = Vec::new();
        let mut index: Option<HashMap<u64, usize>> = None;
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("Expecting property name enclosed in double quotes"));
            }
            self.pos += 1;
            let key = self.string_value()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("Expecting ':' delimiter"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            if index.is_none() && pairs.len() >= LINEAR_KEYS {
                self.charge(pairs.len() * INDEX_ENTRY_BYTES)?;
            } else if index.is_some() {
                self.charge(INDEX_ENTRY_BYTES)?;
            }
            self.reserve(&mut pairs, 1)?;
            insert(&mut pairs, &mut index, key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return tags::object_hook(Dict(pairs)).map_err(|message| JsonError {
                        offset: start,
                        message,
                    });
                }
                _ => return Err(self.error("Expecting ',' delimiter")),
            }
        }
    }

    /// Steps over the next value, checking its syntax, without building anything.
    pub(super) fn skip_value(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.skip_string()
            }
            Some(open @ (b'{' | b'[')) => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.error("nesting too deep"));
                }
                self.depth += 1;
                self.pos += 1;
                let skipped = self.skip_members(open == b'{');
                self.depth -= 1;
                skipped
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ if self.eat_literal(b"null")
                || self.eat_literal(b"true")
                || self.eat_literal(b"false") =>
            {
                Ok(())
            }
            _ if self.eat_literal(b"NaN") || self.eat_literal(b"Infinity") => Ok(()),
            _ => Err(self.error("Expecting value")),
        }
    }

    /// The members of an object (`keyed`) or array whose bracket was just consumed.
    fn skip_members(&mut self, keyed: bool) -> Result<(), JsonError> {
        let close = if keyed { b'}' } else { b']' };
        self.skip_ws();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.skip_ws();
            if keyed {
                if !self.eat(b'"') {
                    return Err(self.error("Expecting property name enclosed in double quotes"));
                }
                self.skip_string()?;
                self.skip_ws();
                if !self.eat(b':') {
                    return Err(self.error("Expecting ':' delimiter"));
                }
                self.skip_ws();
            }
            self.skip_value()?;
            self.skip_ws();
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(self.error("Expecting ',' delimiter"));
            }
        }
    }

    /// Steps over a string body (`pos` just past the opening quote), escapes checked.
    fn skip_string(&mut self) -> Result<(), JsonError> {
        loop {
            let rest = self.b.get(self.pos..).unwrap_or(&[]);
            let run = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            let Some(run) = run else {
                self.pos = self.b.len();
                return Err(self.error("Unterminated string"));
            };
            self.pos += run;
            match self.b[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        None => return Err(self.error("Unterminated string")),
                        Some(_) => return Err(self.error("Invalid \\escape")),
                    }
                }
                _ => return Err(self.error("Invalid control character")),
            }
        }
    }

    /// Reads a string body as a `str` value (charged to the allowance); `pos` is just past
    /// the opening quote.
    fn string_value(&mut self) -> Result<Value, JsonError> {
        match self.text()? {
            Ok(s) => {
                self.charge(s.len())?;
                Ok(Value::Str(s.into_owned()))
            }
            Err(s) => {
                self.charge(s.as_surrogatepass_utf8().len())?;
                Ok(Value::SurrogateStr(s))
            }
        }
    }

    /// Reads a string body; `pos` is just past the opening quote. The text, borrowed unless
    /// it has escapes, or the `str` with lone surrogates it spells.
    pub(super) fn text(&mut self) -> Result<ExactStr<'a>, JsonError> {
        let mut out: Option<StrBuilder> = None;
        let mut run = self.pos;
        loop {
            let b = self
                .peek()
                .ok_or_else(|| self.error("Unterminated string"))?;
            match b {
                b'"' => {
                    let tail = self.slice(run, self.pos)?;
                    self.pos += 1;
                    return Ok(match out {
                        Some(mut s) => {
                            s.push_str(tail);
                            s.finish().map(Cow::Owned)
                        }
                        None => Ok(Cow::Borrowed(tail)),
                    });
                }
                b'\\' => {
                    let s = out.get_or_insert_with(StrBuilder::new);
                    s.push_str(self.text.get(run..self.pos).unwrap_or(""));
                    self.pos += 1;
                    self.escape(&mut out)?;
                    run = self.pos;
                }
                0..=0x1f => return Err(self.error("Invalid control character")),
                _ => {
                    // Skip the plain run in one go.
                    let rest = self.b.get(self.pos..).unwrap_or(&[]);
                    self.pos += rest
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .unwrap_or(rest.len());
                }
            }
        }
    }

    fn slice(&self, from: usize, to: usize) -> Result<&'a str, JsonError> {
        self.text
            .get(from..to)
            .ok_or_else(|| self.error("invalid string slice"))
    }

    /// Reads one escape; `pos` is just past the backslash.
    fn escape(&mut self, out: &mut Option<StrBuilder>) -> Result<(), JsonError> {
        let s = out.get_or_insert_with(StrBuilder::new);
        let c = self
            .peek()
            .ok_or_else(|| self.error("Unterminated string"))?;
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                let mut cp = hi;
                if (0xD800..0xDC00).contains(&hi)
                    && self.b.get(self.pos..self.pos + 2) == Some(b"\\u")
                {
                    let save = self.pos;
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if (0xDC00..0xE000).contains(&lo) {
                        cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        // Not a pair: the high surrogate stands alone; re-read the next escape.
                        self.pos = save;
                    }
                }
                // Four hex digits, or a pair: always a char or a lone surrogate.
                s.push_code_point(cp);
                return Ok(());
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("Invalid \\escape"));
            }
        };
        s.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("Invalid \\uXXXX escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.error("Invalid \\uXXXX escape"))?;
            v = v * 16 + n;
        }
        self.pos += 4;
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if self.eat_literal(b"Infinity") {
                return Ok(Value::Float(f64::NEG_INFINITY));
            }
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => {
                self.pos = start;
                return Err(self.error("Expecting value"));
            }
        }
        let int_len = self.pos - int_start;
        let mut is_float = false;
        if self.peek() == Some(b'.') && self.b.get(self.pos + 1).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
            self.digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            let save = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                self.pos = save;
            } else {
                is_float = true;
            }
        }
        let text = self.slice(start, self.pos)?;
        if is_float {
            return text
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| self.error("bad float"));
        }
        if int_len <= 18 {
            return text
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| self.error("bad int"));
        }
        if int_len > MAX_INT_DIGITS {
            return Err(JsonError {
                offset: start,
                message: format!(
                    "Exceeds the limit ({MAX_INT_DIGITS} digits) for integer string conversion: value has {int_len} digits"
                ),
            });
        }
        text.parse::<BigInt>()
            .map(Value::int)
            .map_err(|_| self.error("bad int"))
    }
}

/// The hash of a key (a `str`: [`Value::Str`] or [`Value::SurrogateStr`]), by its code points.
fn key_hash(key: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    key.str_surrogatepass_utf8().hash(&mut h);
    h.finish()
}

/// `d[key] = value` for a `str` key: a repeated key keeps its first place and takes the last
/// value.
///
/// Past [`LINEAR_KEYS`] keys, a hash index maps each key's hash to its position (a hash
/// shared by two different keys, 2^-64 unlikely, is resolved by a scan).
fn insert(
    pairs: &mut Vec<(Value, Value)>,
    index: &mut Option<HashMap<u64, usize>>,
    key: Value,
    value: Value,
) {
    if index.is_none() && pairs.len() >= LINEAR_KEYS {
        let mut map = HashMap::with_capacity(pairs.len() * 2);
        for (i, (k, _)) in pairs.iter().enumerate() {
            map.entry(key_hash(k)).or_insert(i);
        }
        *index = Some(map);
    }
    let is_key = |k: &Value| *k == key;
    let existing = match index {
        Some(map) => match map.get(&key_hash(&key)) {
            Some(&i) if pairs.get(i).is_some_and(|(k, _)| is_key(k)) => Some(i),
            Some(_) => pairs.iter().position(|(k, _)| is_key(k)),
            None => None,
        },
        None => pairs.iter().position(|(k, _)| is_key(k)),
    };
    match existing {
        Some(i) => {
            if let Some(slot) = pairs.get_mut(i) {
                slot.1 = value;
            }
        }
        None => {
            if let Some(map) = index {
                map.entry(key_hash(&key)).or_insert(pairs.len());
            }
            pairs.push((key, value));
        }
    }
}
