//! Python arithmetic on values (`+`, `*`, `sum()`) with Python's numeric rules and Python's
//! exact `TypeError` messages.
//!
//! - `int` is exact at any size (an `i64` fast path with checked ops, then `BigInt`); `bool`
//!   acts as an `int`; mixing `int` and `float` gives a `float`.
//! - `Decimal` follows the default context (28 digits, `ROUND_HALF_EVEN`); `Decimal` with
//!   `float` is a `TypeError`, as in Python.
//! - `str`, `bytes`, `bytearray`, `list`, `tuple` concatenate and repeat;
//!   `timedelta` adds to `timedelta`, `date` and `datetime`, and repeats by an `int`.
//!
//! Deviation: a repetition longer than 2**30 items raises `MemoryError` rather than trying.

mod decimal;

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

use self::decimal::{Dec, DecError};
use super::{Date, DateTime, TimeDelta, Value};

/// The longest sequence `*` builds before giving up with `MemoryError`.
const MAX_REPEAT_LEN: u64 = 1 << 30;

/// The Python type name of a value, as `type(x).__name__` says it.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "NoneType",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) | Value::SurrogateStr(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::ByteArray(_) => "bytearray",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Dict(_) => "dict",
        Value::Set(_) => "set",
        Value::FrozenSet(_) => "frozenset",
        Value::DateTime(_) => "datetime",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::TimeDelta(_) => "timedelta",
        Value::Decimal(_) => "Decimal",
        Value::Uuid(_) => "UUID",
    }
}

/// The C-level type name Python puts in operator error messages (`tp_name`): as
/// [`py_type_name`], but module-qualified for the `datetime` and `decimal` types.
fn tp_name(v: &Value) -> &'static str {
    match v {
        Value::DateTime(_) => "datetime.datetime",
        Value::Date(_) => "datetime.date",
        Value::Time(_) => "datetime.time",
        Value::TimeDelta(_) => "datetime.timedelta",
        Value::Decimal(_) => "decimal.Decimal",
        other => py_type_name(other),
    }
}

/// A Python exception raised by an operator: mostly `TypeError`, also `OverflowError`,
/// `MemoryError`, `decimal.InvalidOperation` and `decimal.Overflow`.
///
/// Deliberately not a `std::error::Error`: task code's `?` turns any `Error` into a plain
/// `Exception`, while this one keeps its Python class (see `TaskError`'s conversions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyTypeError {
    /// The Python exception class, e.g. `"TypeError"`.
    pub exception: &'static str,
    /// Python's message, e.g. `unsupported operand type(s) for +: 'int' and 'str'`.
    pub message: String,
}

impl std::fmt::Display for PyTypeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exception, self.message)
    }
}

impl PyTypeError {
    fn type_error(message: String) -> Self {
        PyTypeError {
            exception: "TypeError",
            message,
        }
    }

    fn unsupported(op: char, a: &Value, b: &Value) -> Self {
        Self::type_error(format!(
            "unsupported operand type(s) for {op}: '{}' and '{}'",
            tp_name(a),
            tp_name(b)
        ))
    }

    fn overflow(message: &str) -> Self {
        PyTypeError {
            exception: "OverflowError",
            message: message.to_owned(),
        }
    }

    fn from_dec(e: DecError) -> Self {
        match e {
            DecError::InvalidOperation => PyTypeError {
                exception: "decimal.InvalidOperation",
                message: "[<class 'decimal.InvalidOperation'>]".to_owned(),
            },
            DecError::Overflow => PyTypeError {
                exception: "decimal.Overflow",
                message: "[<class 'decimal.Overflow'>]".to_owned(),
            },
        }
    }
}

/// An `int` operand (bools included), as a borrowed small or big integer.
enum IntRef<'a> {
    Small(i64),
    Big(&'a BigInt),
}

fn as_int(v: &Value) -> Option<IntRef<'_>> {
    match v {
        Value::Bool(b) => Some(IntRef::Small(i64::from(*b))),
        Value::Int(i) => Some(IntRef::Small(*i)),
        Value::BigInt(b) => Some(IntRef::Big(b)),
        _ => None,
    }
}

impl IntRef<'_> {
    fn to_big(&self) -> BigInt {
        match self {
            IntRef::Small(i) => BigInt::from(*i),
            IntRef::Big(b) => (*b).clone(),
        }
    }

    /// `float(n)`, or Python's `OverflowError`.
    fn to_f64(&self) -> Result<f64, PyTypeError> {
        match self {
            IntRef::Small(i) => Ok(*i as f64),
            IntRef::Big(b) => b
                .to_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| PyTypeError::overflow("int too large to convert to float")),
        }
    }
}

/// `a` as a float operand when one side is a float and the other an int or float.
fn float_pair(a: &Value, b: &Value) -> Option<Result<(f64, f64), PyTypeError>> {
    let num = |v: &Value| match v {
        Value::Float(f) => Some(Ok(*f)),
        other => as_int(other).map(|i| i.to_f64()),
    };
    if !matches!(a, Value::Float(_)) && !matches!(b, Value::Float(_)) {
        return None;
    }
    match (num(a)?, num(b)?) {
        (Ok(x), Ok(y)) => Some(Ok((x, y))),
        (Err(e), _) | (_, Err(e)) => Some(Err(e)),
    }
}

/// `a` and `b` as decimals when one is a `Decimal` and the other a `Decimal` or an int.
fn decimal_pair(a: &Value, b: &Value) -> Option<(Dec, Dec)> {
    let dec = |v: &Value| match v {
        Value::Decimal(text) => Dec::parse(text),
        other => as_int(other).map(|i| Dec::from_int(&i.to_big())),
    };
    if !matches!(a, Value::Decimal(_)) && !matches!(b, Value::Decimal(_)) {
        return None;
    }
    Some((dec(a)?, dec(b)?))
}

fn td_value(td: Option<TimeDelta>) -> Result<Value, PyTypeError> {
    td.map(Value::TimeDelta)
        .ok_or_else(|| PyTypeError::overflow("days=1000000000; must have magnitude <= 999999999"))
}

fn shift_datetime(dt: &DateTime, td: &TimeDelta) -> Result<Value, PyTypeError> {
    let overflow = || PyTypeError::overflow("date value out of range");
    let naive = dt.to_naive_chrono().ok_or_else(overflow)?;
    let micros = i64::try_from(td.total_micros()).map_err(|_| overflow())?;
    let shifted = naive
        .checked_add_signed(chrono::Duration::microseconds(micros))
        .filter(|n| (1..=9999).contains(&chrono::Datelike::year(n)))
        .ok_or_else(overflow)?;
    Ok(Value::DateTime(Box::new(DateTime::from_naive_chrono(
        &shifted,
        dt.time.tz.clone(),
    ))))
}

fn shift_date(d: &Date, td: &TimeDelta) -> Result<Value, PyTypeError> {
    let overflow = || PyTypeError::overflow("date value out of range");
    let shifted = d
        .to_chrono()
        .and_then(|n| n.checked_add_signed(chrono::Duration::days(td.days)))
        .filter(|n| (1..=9999).contains(&chrono::Datelike::year(n)))
        .ok_or_else(overflow)?;
    Ok(Value::Date(Date::from_chrono(shifted)))
}

/// How many times to repeat a sequence: Python clamps negatives to 0.
fn repeat_count(n: &IntRef<'_>, len: usize) -> Result<usize, PyTypeError> {
    let count = match n {
        IntRef::Small(i) => *i,
        IntRef::Big(b) if b.is_negative() => 0,
        IntRef::Big(_) => {
            return Err(PyTypeError::overflow(
                "cannot fit 'int' into an index-sized integer",
            ))
        }
    };
    let count = count.max(0) as u64;
    if (len as u64).saturating_mul(count) > MAX_REPEAT_LEN {
        return Err(PyTypeError {
            exception: "MemoryError",
            message: String::new(),
        });
    }
    Ok(count as usize)
}

fn is_sequence(v: &Value) -> bool {
    matches!(
        v,
        Value::Str(_)
            | Value::SurrogateStr(_)
            | Value::Bytes(_)
            | Value::ByteArray(_)
            | Value::List(_)
            | Value::Tuple(_)
    )
}

fn repeat(seq: &Value, n: &IntRef<'_>) -> Result<Value, PyTypeError> {
    Ok(match seq {
        Value::Str(s) => Value::Str(s.repeat(repeat_count(n, s.len())?)),
        Value::SurrogateStr(s) => {
            let b = s.as_surrogatepass_utf8();
            surrogatepass_str(b.repeat(repeat_count(n, b.len())?))
        }
        Value::Bytes(b) => Value::Bytes(b.repeat(repeat_count(n, b.len())?)),
        Value::ByteArray(b) => Value::ByteArray(b.repeat(repeat_count(n, b.len())?)),
        Value::List(v) => Value::List(repeat_values(v, repeat_count(n, v.len())?)),
        Value::Tuple(v) => Value::Tuple(repeat_values(v, repeat_count(n, v.len())?)),
        _ => return Err(PyTypeError::type_error("not a sequence".to_owned())),
    })
}

/// A `str` from `surrogatepass` UTF-8 built from valid pieces (concatenated or repeated).
fn surrogatepass_str(bytes: Vec<u8>) -> Value {
    Value::from_surrogatepass_vec(bytes).unwrap_or_else(|| Value::Str(String::new()))
}

fn repeat_values(items: &[Value], count: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(items.len() * count);
    for _ in 0..count {
        out.extend_from_slice(items);
    }
    out
}

fn concat<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

impl Value {
    /// Python's `self + other`.
    pub fn py_add(&self, other: &Value) -> Result<Value, PyTypeError> {
        if let (Some(x), Some(y)) = (as_int(self), as_int(other)) {
            if let (IntRef::Small(x), IntRef::Small(y)) = (&x, &y) {
                if let Some(sum) = x.checked_add(*y) {
                    return Ok(Value::Int(sum));
                }
            }
            return Ok(Value::int(x.to_big() + y.to_big()));
        }
        if let Some(pair) = float_pair(self, other) {
            let (x, y) = pair?;
            return Ok(Value::Float(x + y));
        }
        if let Some((x, y)) = decimal_pair(self, other) {
            let sum = x.add(&y).map_err(PyTypeError::from_dec)?;
            return Ok(Value::Decimal(sum.to_py_string()));
        }
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Ok(Value::Str([a.as_str(), b.as_str()].concat())),
            (Value::Str(_) | Value::SurrogateStr(_), Value::Str(_) | Value::SurrogateStr(_)) => {
                let (a, b) = (
                    self.str_surrogatepass_utf8().unwrap_or_default(),
                    other.str_surrogatepass_utf8().unwrap_or_default(),
                );
                Ok(surrogatepass_str(concat(a, b)))
            }
            (Value::Str(_) | Value::SurrogateStr(_), b) => Err(PyTypeError::type_error(format!(
                "can only concatenate str (not \"{}\") to str",
                tp_name(b)
            ))),
            (Value::List(a), Value::List(b)) => Ok(Value::List(concat(a, b))),
            (Value::List(_), b) => Err(PyTypeError::type_error(format!(
                "can only concatenate list (not \"{}\") to list",
                tp_name(b)
            ))),
            (Value::Tuple(a), Value::Tuple(b)) => Ok(Value::Tuple(concat(a, b))),
            (Value::Tuple(_), b) => Err(PyTypeError::type_error(format!(
                "can only concatenate tuple (not \"{}\") to tuple",
                tp_name(b)
            ))),
            (Value::Bytes(a), Value::Bytes(b) | Value::ByteArray(b)) => {
                Ok(Value::Bytes(concat(a, b)))
            }
            (Value::ByteArray(a), Value::Bytes(b) | Value::ByteArray(b)) => {
                Ok(Value::ByteArray(concat(a, b)))
            }
            (Value::Bytes(_) | Value::ByteArray(_), b) => Err(PyTypeError::type_error(format!(
                "can't concat {} to {}",
                tp_name(b),
                tp_name(self)
            ))),
            (Value::TimeDelta(a), Value::TimeDelta(b)) => td_value(TimeDelta::from_total_micros(
                a.total_micros() + b.total_micros(),
            )),
            (Value::DateTime(dt), Value::TimeDelta(td))
            | (Value::TimeDelta(td), Value::DateTime(dt)) => shift_datetime(dt, td),
            (Value::Date(d), Value::TimeDelta(td)) | (Value::TimeDelta(td), Value::Date(d)) => {
                shift_date(d, td)
            }
            _ => Err(PyTypeError::unsupported('+', self, other)),
        }
    }

    /// Python's `self * other`.
    pub fn py_mul(&self, other: &Value) -> Result<Value, PyTypeError> {
        if let (Some(x), Some(y)) = (as_int(self), as_int(other)) {
            if let (IntRef::Small(x), IntRef::Small(y)) = (&x, &y) {
                if let Some(p) = x.checked_mul(*y) {
                    return Ok(Value::Int(p));
                }
            }
            return Ok(Value::int(x.to_big() * y.to_big()));
        }
        if is_sequence(self) || is_sequence(other) {
            let (seq, count) = if is_sequence(self) {
                (self, other)
            } else {
                (other, self)
            };
            return match as_int(count) {
                Some(n) => repeat(seq, &n),
                None => Err(PyTypeError::type_error(format!(
                    "can't multiply sequence by non-int of type '{}'",
                    tp_name(count)
                ))),
            };
        }
        if let Some(pair) = float_pair(self, other) {
            let (x, y) = pair?;
            return Ok(Value::Float(x * y));
        }
        if let Some((x, y)) = decimal_pair(self, other) {
            let product = x.mul(&y).map_err(PyTypeError::from_dec)?;
            return Ok(Value::Decimal(product.to_py_string()));
        }
        match (self, other) {
            (Value::TimeDelta(td), n) | (n, Value::TimeDelta(td)) if as_int(n).is_some() => {
                let n = as_int(n).map(|i| i.to_big()).unwrap_or_default();
                let total = BigInt::from(td.total_micros()) * n;
                td_value(total.to_i128().and_then(TimeDelta::from_total_micros))
            }
            _ => Err(PyTypeError::unsupported('*', self, other)),
        }
    }

    /// A `Decimal` from text, as Python's `Decimal(text)` reads it and `str()` prints it
    /// (`"1e3"` → `Decimal('1E+3')`). `None` where Python raises `InvalidOperation`.
    pub fn parse_decimal(text: &str) -> Option<Value> {
        Dec::parse(text).map(|d| Value::Decimal(d.to_py_string()))
    }

    /// `Decimal(f)`: the exact value of the float (`Decimal(0.1)` has 55 digits).
    pub fn decimal_from_f64(f: f64) -> Value {
        Value::Decimal(Dec::from_f64(f).to_py_string())
    }

    /// `Decimal(n)` for an int.
    pub fn decimal_from_int(n: &BigInt) -> Value {
        Value::Decimal(Dec::from_int(n).to_py_string())
    }
}

/// Python's `sum(items)` (start `0`): so summing strings or lists is a `TypeError`, as there.
pub fn py_sum(items: &[Value]) -> Result<Value, PyTypeError> {
    let mut acc = Value::Int(0);
    for item in items {
        acc = acc.py_add(item)?;
    }
    if let Value::BigInt(b) = &acc {
        if b.is_zero() {
            return Ok(Value::Int(0));
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests;
