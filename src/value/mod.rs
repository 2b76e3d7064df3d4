//! The dynamic value model: what a Python producer can put in a task's arguments and what a
//! task can return, keeping Python's types apart (list vs tuple, int of any size vs float,
//! bytes vs str, naive vs aware datetimes, ...).
//!
//! Both codecs ([`crate::codec::json`] and [`crate::codec::pickle`]) decode into and encode from
//! this one model, so a task never sees which serializer the producer chose.

mod arith;
mod convert;
mod repr;
mod surrogate;
mod time;

pub use arith::{py_sum, py_type_name, PyTypeError};
pub use convert::{Bytes, FromValue, IntoValue, ValueError};
pub use repr::{py_repr, saferepr, saferepr_value};
pub use surrogate::{Pieces, StrPiece, SurrogateStr};
pub use time::{Date, DateTime, IsoParseError, Time, TimeDelta, TzInfo};

pub(crate) use surrogate::StrBuilder;

use num_bigint::BigInt;

/// One Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits. Always used when the value fits (see [`Value::int`]).
    Int(i64),
    /// An `int` that does not fit in 64 bits.
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `str` (every `str` without a lone surrogate).
    Str(String),
    /// A `str` holding at least one lone surrogate (U+D800..=U+DFFF), which a `String`
    /// cannot hold: rare, and kept out of [`Value::Str`] so ordinary strings stay plain
    /// `String`s. Decoders and the constructors ([`Value::from_code_points`],
    /// [`Value::from_surrogatepass_utf8`]) use it only for such strings, so a `str` equal to
    /// a [`Value::Str`] is never one of these.
    SurrogateStr(SurrogateStr),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `bytearray` (pickle keeps it apart from `bytes`; JSON cannot).
    ByteArray(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict` (also `collections.OrderedDict`), in insertion order.
    Dict(Dict),
    /// A `set`, in the order it was read.
    Set(Vec<Value>),
    /// A `frozenset`, in the order it was read.
    FrozenSet(Vec<Value>),
    /// `datetime.datetime`, naive or aware. Boxed, as is [`Value::Time`]: they are rare in
    /// payloads, and keeping them out of line makes every `Value` 32 bytes instead of 48.
    DateTime(Box<DateTime>),
    /// `datetime.date`.
    Date(Date),
    /// `datetime.time`.
    Time(Box<Time>),
    /// `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// `decimal.Decimal`, kept as its exact Python `str()` text (e.g. `"1.50"`, `"NaN"`).
    Decimal(String),
    /// `uuid.UUID`.
    Uuid(uuid::Uuid),
}

/// A Python `dict`: insertion-ordered pairs. Lookups are linear, which beats hashing for the
/// handful of keys a task message carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dict(pub Vec<(Value, Value)>);

impl Dict {
    /// An empty dict.
    pub fn new() -> Self {
        Dict(Vec::new())
    }

    /// An empty dict with room for `n` pairs.
    pub fn with_capacity(n: usize) -> Self {
        Dict(Vec::with_capacity(n))
    }

    /// The value under the string key `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }

    /// A mutable reference to the value under the string key `key`, if any.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0
            .iter_mut()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing an existing entry in place (like Python's `d[k] = v`).
    pub fn insert(&mut self, key: impl Into<Value>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.0.push((key, value));
        }
    }

    /// Removes and returns the value under the string key `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self
            .0
            .iter()
            .position(|(k, _)| matches!(k, Value::Str(s) if s == key))?;
        Some(self.0.remove(pos).1)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the dict has no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = &(Value, Value)> {
        self.0.iter()
    }
}

impl FromIterator<(Value, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (Value, Value)>>(iter: I) -> Self {
        let mut d = Dict::new();
        for (k, v) in iter {
            d.insert(k, v);
        }
        d
    }
}

impl Value {
    /// A Python int from a big integer, stored as [`Value::Int`] when it fits in 64 bits.
    pub fn int(n: BigInt) -> Value {
        match i64::try_from(&n) {
            Ok(small) => Value::Int(small),
            Err(_) => Value::BigInt(n),
        }
    }

    /// A `str` value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// The string inside a [`Value::Str`] (`None` for a [`Value::SurrogateStr`], which no
    /// `&str` can show exactly).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The dict inside a [`Value::Dict`].
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The items of a list or a tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The value as an `i64`, for ints (and bools, as Python treats them) that fit.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// True for `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// Python truthiness (`bool(x)`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::SurrogateStr(_) => true,
            Value::Bytes(b) | Value::ByteArray(b) => !b.is_empty(),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
            Value::TimeDelta(t) => !t.is_zero(),
            Value::Decimal(d) => !is_decimal_zero(d),
            _ => true,
        }
    }
}

fn is_decimal_zero(text: &str) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    mantissa.chars().all(|c| matches!(c, '0' | '.' | '-' | '+'))
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}
