//! Python `str`s holding lone surrogates.
//!
//! A Python `str` is a sequence of code points, and any code point may appear in it, the
//! surrogates U+D800..=U+DFFF included (`json.loads('"\\ud800"')`, `'a\udc00b'`, the output
//! of `os.fsdecode` on undecodable bytes). A Rust [`String`] cannot hold a surrogate, so such
//! a `str` is a [`Value::SurrogateStr`] holding a [`SurrogateStr`]: the code points as UTF-8
//! written with Python's `surrogatepass` error handler, each surrogate as its own three bytes
//! (U+D800 is `ED A0 80`). That is the form pickle carries (`BINUNICODE` and its siblings), and
//! it is exact: two surrogates that happen to form a pair stay two code points
//! (`'\ud83d\ude00'` is not `'\U0001F600'` in Python, and is not here).
//!
//! Every `str` without a lone surrogate is a [`Value::Str`]; the constructors here keep it so,
//! which is what lets `==` on [`Value`] compare strings by their code points.

use std::fmt;

use super::Value;

/// A Python `str` holding at least one lone surrogate code point (U+D800..=U+DFFF).
///
/// Held as UTF-8 with Python's `surrogatepass` handler: each surrogate as the three bytes
/// `ED A0..=BF 80..=BF`, everything else as ordinary UTF-8. Equal code point sequences have
/// equal bytes, so the derived `==` and `Hash` are Python's `str` equality and hashing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SurrogateStr(Box<[u8]>);

/// One run of a [`SurrogateStr`], as [`SurrogateStr::pieces`] yields them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrPiece<'a> {
    /// Text without surrogates (never empty).
    Text(&'a str),
    /// One lone surrogate code point, U+D800..=U+DFFF.
    Surrogate(u16),
}

/// True for the code points a Rust `char` cannot hold and a Python `str` can.
pub(crate) fn is_surrogate(cp: u32) -> bool {
    (0xD800..=0xDFFF).contains(&cp)
}

/// The three `surrogatepass` UTF-8 bytes of a surrogate code point.
fn surrogate_bytes(cp: u32) -> [u8; 3] {
    [
        0xED,
        0x80 | ((cp >> 6) & 0x3F) as u8,
        0x80 | (cp & 0x3F) as u8,
    ]
}

/// The surrogate that `bytes` starts with, if it starts with one.
fn leading_surrogate(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [0xED, b1 @ 0xA0..=0xBF, b2 @ 0x80..=0xBF, ..] => {
            Some(0xD000 | (u16::from(b1 & 0x3F) << 6) | u16::from(b2 & 0x3F))
        }
        _ => None,
    }
}

/// Checks `bytes` as `surrogatepass` UTF-8: `None` when invalid, otherwise whether it holds
/// a surrogate. Each byte is looked at once.
fn check_surrogatepass(bytes: &[u8]) -> Option<bool> {
    let mut rest = bytes;
    let mut any = false;
    loop {
        match std::str::from_utf8(rest) {
            Ok(_) => return Some(any),
            Err(e) => {
                let at = e.valid_up_to();
                leading_surrogate(rest.get(at..)?)?;
                any = true;
                rest = rest.get(at + 3..)?;
            }
        }
    }
}

impl SurrogateStr {
    /// The code points as UTF-8 with Python's `surrogatepass` handler
    /// (`s.encode("utf-8", "surrogatepass")`).
    pub fn as_surrogatepass_utf8(&self) -> &[u8] {
        &self.0
    }

    /// The text runs and lone surrogates, in order.
    pub fn pieces(&self) -> Pieces<'_> {
        Pieces { rest: &self.0 }
    }

    /// The code points, in order.
    pub fn code_points(&self) -> impl Iterator<Item = u32> + '_ {
        self.pieces().flat_map(|piece| {
            let (text, surrogate) = match piece {
                StrPiece::Text(t) => (t, None),
                StrPiece::Surrogate(u) => ("", Some(u32::from(u))),
            };
            text.chars().map(u32::from).chain(surrogate)
        })
    }

    /// Python's `len()`: the number of code points.
    pub fn char_count(&self) -> usize {
        // One code point starts at every byte that is not a continuation byte.
        self.0.iter().filter(|&&b| b & 0xC0 != 0x80).count()
    }

    /// The text with each lone surrogate replaced by U+FFFD (what a Rust `String` can hold).
    pub fn to_string_lossy(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for piece in self.pieces() {
            match piece {
                StrPiece::Text(t) => out.push_str(t),
                StrPiece::Surrogate(_) => out.push('\u{FFFD}'),
            }
        }
        out
    }
}

impl fmt::Debug for SurrogateStr {
    /// Like a `str`'s `Debug`, lone surrogates written `\u{d800}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for piece in self.pieces() {
            match piece {
                StrPiece::Text(t) => write!(f, "{}", t.escape_debug())?,
                StrPiece::Surrogate(u) => write!(f, "\\u{{{u:x}}}")?,
            }
        }
        f.write_str("\"")
    }
}

/// The iterator of [`SurrogateStr::pieces`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Pieces<'a> {
    type Item = StrPiece<'a>;

    fn next(&mut self) -> Option<StrPiece<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        if let Some(u) = leading_surrogate(self.rest) {
            self.rest = self.rest.get(3..).unwrap_or(&[]);
            return Some(StrPiece::Surrogate(u));
        }
        // In UTF-8 an ED byte is followed by 80..=9F; ED A0..=BF starts a surrogate.
        let end = self
            .rest
            .windows(2)
            .position(|w| w[0] == 0xED && w[1] >= 0xA0)
            .unwrap_or(self.rest.len());
        let (text, rest) = self.rest.split_at(end);
        self.rest = rest;
        // The constructors only build valid surrogatepass UTF-8, so this never replaces.
        Some(StrPiece::Text(
            std::str::from_utf8(text).unwrap_or("\u{FFFD}"),
        ))
    }
}

impl Value {
    /// A `str` from UTF-8 written with Python's `surrogatepass` handler (what pickle's
    /// `BINUNICODE` carries): a [`Value::Str`], or a [`Value::SurrogateStr`] when it holds a
    /// lone surrogate. `None` when the bytes are not valid even so.
    pub fn from_surrogatepass_utf8(bytes: &[u8]) -> Option<Value> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Some(Value::Str(s.to_owned())),
            Err(_) => {
                check_surrogatepass(bytes)?;
                Some(Value::SurrogateStr(SurrogateStr(bytes.into())))
            }
        }
    }

    /// [`Value::from_surrogatepass_utf8`] for bytes already owned (no copy for a plain `str`).
    pub(crate) fn from_surrogatepass_vec(bytes: Vec<u8>) -> Option<Value> {
        match String::from_utf8(bytes) {
            Ok(s) => Some(Value::Str(s)),
            Err(e) => {
                let bytes = e.into_bytes();
                check_surrogatepass(&bytes)?;
                Some(Value::SurrogateStr(SurrogateStr(bytes.into_boxed_slice())))
            }
        }
    }

    /// The code points of a `str` ([`Value::Str`] or [`Value::SurrogateStr`]) as
    /// `surrogatepass` UTF-8; `None` for any other value. Two `str`s are equal exactly when
    /// these bytes are.
    pub fn str_surrogatepass_utf8(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::SurrogateStr(s) => Some(s.as_surrogatepass_utf8()),
            _ => None,
        }
    }

    /// A `str` of these code points (Python's `''.join(map(chr, code_points))`): a
    /// [`Value::Str`], or a [`Value::SurrogateStr`] when one is a lone surrogate. `None` when
    /// one is above U+10FFFF.
    pub fn from_code_points(code_points: impl IntoIterator<Item = u32>) -> Option<Value> {
        let mut b = StrBuilder::new();
        for cp in code_points {
            if !b.push_code_point(cp) {
                return None;
            }
        }
        Some(b.into_value())
    }
}

/// Builds a Python `str` piece by piece: a `String` until a lone surrogate is pushed, then
/// `surrogatepass` UTF-8 bytes.
#[derive(Debug)]
pub(crate) enum StrBuilder {
    /// No surrogate so far.
    Text(String),
    /// At least one surrogate pushed.
    Mixed(Vec<u8>),
}

impl StrBuilder {
    /// An empty string.
    pub(crate) fn new() -> Self {
        StrBuilder::Text(String::new())
    }

    /// An empty string with room for `bytes` bytes.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        StrBuilder::Text(String::with_capacity(bytes))
    }

    /// Bytes so far (of the `String`, or of the `surrogatepass` UTF-8).
    pub(crate) fn len(&self) -> usize {
        match self {
            StrBuilder::Text(s) => s.len(),
            StrBuilder::Mixed(b) => b.len(),
        }
    }

    /// Appends text.
    pub(crate) fn push_str(&mut self, s: &str) {
        match self {
            StrBuilder::Text(t) => t.push_str(s),
            StrBuilder::Mixed(b) => b.extend_from_slice(s.as_bytes()),
        }
    }

    /// Appends one character.
    pub(crate) fn push(&mut self, c: char) {
        match self {
            StrBuilder::Text(t) => t.push(c),
            StrBuilder::Mixed(b) => b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }

    /// Appends one code point, a lone surrogate included (never joined with a neighbour).
    /// Returns false, appending nothing, above U+10FFFF.
    pub(crate) fn push_code_point(&mut self, cp: u32) -> bool {
        if let Some(c) = char::from_u32(cp) {
            self.push(c);
            return true;
        }
        if !is_surrogate(cp) {
            return false;
        }
        if let StrBuilder::Text(t) = self {
            *self = StrBuilder::Mixed(std::mem::take(t).into_bytes());
        }
        if let StrBuilder::Mixed(b) = self {
            b.extend_from_slice(&surrogate_bytes(cp));
        }
        true
    }

    /// The `String`, or the [`SurrogateStr`] when a lone surrogate was pushed.
    pub(crate) fn finish(self) -> Result<String, SurrogateStr> {
        match self {
            StrBuilder::Text(s) => Ok(s),
            StrBuilder::Mixed(b) => Err(SurrogateStr(b.into_boxed_slice())),
        }
    }

    /// The `str` value: [`Value::Str`] or [`Value::SurrogateStr`].
    pub(crate) fn into_value(self) -> Value {
        match self.finish() {
            Ok(s) => Value::Str(s),
            Err(s) => Value::SurrogateStr(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(cps: &[u32]) -> Value {
        Value::from_code_points(cps.iter().copied()).unwrap_or(Value::None)
    }

    #[test]
    fn value_stays_32_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }

    #[test]
    fn only_strings_with_a_lone_surrogate_use_the_variant() {
        assert_eq!(sv(&[0x61, 0x1F600]), Value::str("a\u{1F600}"));
        assert_eq!(sv(&[]), Value::str(""));
        let Value::SurrogateStr(s) = sv(&[0x61, 0xDC00, 0x62]) else {
            panic!("a lone surrogate needs the variant")
        };
        assert_eq!(s.as_surrogatepass_utf8(), b"a\xed\xb0\x80b");
        assert_eq!(s.char_count(), 3);
        assert_eq!(s.code_points().collect::<Vec<_>>(), [0x61, 0xDC00, 0x62]);
        assert_eq!(s.to_string_lossy(), "a\u{FFFD}b");
        assert_eq!(format!("{s:?}"), "\"a\\u{dc00}b\"");
        assert_eq!(Value::from_code_points([0x110000]), None);
    }

    #[test]
    fn a_pair_of_surrogate_code_points_is_not_the_astral_character() {
        // Python: '\ud83d\ude00' != '\U0001F600', len 2, and pickles as ED A0 BD ED B8 80.
        let pair = sv(&[0xD83D, 0xDE00]);
        assert_ne!(pair, Value::str("\u{1F600}"));
        let Value::SurrogateStr(s) = &pair else {
            panic!("two lone surrogates")
        };
        assert_eq!(s.as_surrogatepass_utf8(), b"\xed\xa0\xbd\xed\xb8\x80");
        assert_eq!(
            s.pieces().collect::<Vec<_>>(),
            [StrPiece::Surrogate(0xD83D), StrPiece::Surrogate(0xDE00)]
        );
    }

    #[test]
    fn surrogatepass_bytes_are_checked() {
        assert_eq!(
            Value::from_surrogatepass_utf8(b"\xed\xa0\x80x\xe9\x82\xae"),
            Some(sv(&[0xD800, 0x78, 0x90AE]))
        );
        assert_eq!(
            Value::from_surrogatepass_utf8(b"ok"),
            Some(Value::str("ok"))
        );
        for bad in [
            &b"\xed\xa0"[..],
            b"\xed\xc0\x80",
            b"\xff",
            b"\xf0\x9f\x98",
            b"a\xed\xbf",
            b"\xc0\x80",
        ] {
            assert_eq!(Value::from_surrogatepass_utf8(bad), None, "{bad:?}");
        }
        let all: Vec<u32> = (0xD7FE..=0xE001).collect();
        let Some(Value::SurrogateStr(s)) = Value::from_code_points(all.iter().copied()) else {
            panic!("surrogates")
        };
        assert_eq!(s.code_points().collect::<Vec<_>>(), all);
        assert_eq!(
            Value::from_surrogatepass_utf8(s.as_surrogatepass_utf8()),
            Some(Value::SurrogateStr(s.clone()))
        );
    }
}
