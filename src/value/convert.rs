//! Typed extraction from and into [`Value`]: how task parameters are bound and how task
//! return values are turned back into Python values.

use std::collections::{BTreeMap, HashMap};

use num_bigint::BigInt;

use super::{py_type_name, Date, DateTime, Dict, TimeDelta, Value};

/// A value did not have the Python type a parameter asked for. Surfaces as a `TypeError`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct ValueError {
    /// What the parameter wanted, in Python terms.
    pub expected: &'static str,
    /// The Python type name of what arrived.
    pub got: &'static str,
}

impl ValueError {
    fn new(expected: &'static str, got: &Value) -> Self {
        ValueError {
            expected,
            got: py_type_name(got),
        }
    }
}

/// Types a task parameter can be declared as.
pub trait FromValue: Sized {
    /// Converts the argument, or says which Python type was expected.
    fn from_value(value: Value) -> Result<Self, ValueError>;

    /// The value used when the argument is absent, if absence is allowed (as for `Option`).
    fn absent() -> Option<Self> {
        None
    }
}

/// Types a task can return.
pub trait IntoValue {
    /// Converts into a Python value.
    fn into_value(self) -> Value;
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        Ok(value)
    }
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::None => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        self.map_or(Value::None, IntoValue::into_value)
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(ValueError::new("bool", &other)),
        }
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}

macro_rules! int_conversions {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self, ValueError> {
                match &value {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| ValueError::new(concat!("int fitting ", stringify!($t)), &value)),
                    Value::Bool(b) => Ok(*b as $t),
                    _ => Err(ValueError::new("int", &value)),
                }
            }
        }

        impl IntoValue for $t {
            fn into_value(self) -> Value {
                match i64::try_from(self) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::int(BigInt::from(self)),
                }
            }
        }
    )*};
}

int_conversions!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, i128, u128);

impl FromValue for BigInt {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Int(i) => Ok(BigInt::from(i)),
            Value::BigInt(b) => Ok(b),
            Value::Bool(b) => Ok(BigInt::from(b as i64)),
            other => Err(ValueError::new("int", &other)),
        }
    }
}

impl IntoValue for BigInt {
    fn into_value(self) -> Value {
        Value::int(self)
    }
}

impl FromValue for f64 {
    /// Like a Python function doing float arithmetic, ints are accepted too.
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            Value::Bool(b) => Ok(b as i64 as f64),
            Value::BigInt(ref b) => {
                num_traits::ToPrimitive::to_f64(b).ok_or_else(|| ValueError::new("float", &value))
            }
            other => Err(ValueError::new("float", &other)),
        }
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}

impl FromValue for f32 {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl IntoValue for f32 {
    fn into_value(self) -> Value {
        Value::Float(self as f64)
    }
}

impl FromValue for String {
    /// A `str`. A `String` cannot hold a lone surrogate: each one becomes U+FFFD (a task
    /// that must keep them takes a [`Value`], which holds them exactly).
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Str(s) => Ok(s),
            Value::SurrogateStr(s) => Ok(s.to_string_lossy()),
            other => Err(ValueError::new("str", &other)),
        }
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::Str(self)
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::Str(self.to_owned())
    }
}

impl IntoValue for () {
    fn into_value(self) -> Value {
        Value::None
    }
}

/// Raw bytes: accepts `bytes` and `bytearray`, returns `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl FromValue for Bytes {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Bytes(b) | Value::ByteArray(b) => Ok(Bytes(b)),
            other => Err(ValueError::new("bytes", &other)),
        }
    }
}

impl IntoValue for Bytes {
    fn into_value(self) -> Value {
        Value::Bytes(self.0)
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    /// Any Python sequence or set (list, tuple, set, frozenset).
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                v.into_iter().map(T::from_value).collect()
            }
            other => Err(ValueError::new("list", &other)),
        }
    }
}

impl<T: IntoValue> IntoValue for Vec<T> {
    /// A Rust `Vec` becomes a Python `list`.
    fn into_value(self) -> Value {
        Value::List(self.into_iter().map(IntoValue::into_value).collect())
    }
}

impl FromValue for Dict {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Dict(d) => Ok(d),
            other => Err(ValueError::new("dict", &other)),
        }
    }
}

impl IntoValue for Dict {
    fn into_value(self) -> Value {
        Value::Dict(self)
    }
}

fn string_keyed<T: FromValue>(value: Value) -> Result<Vec<(String, T)>, ValueError> {
    match value {
        Value::Dict(d) => {
            d.0.into_iter()
                .map(|(k, v)| Ok((String::from_value(k)?, T::from_value(v)?)))
                .collect()
        }
        other => Err(ValueError::new("dict", &other)),
    }
}

impl<T: FromValue> FromValue for HashMap<String, T> {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        string_keyed(value).map(|pairs| pairs.into_iter().collect())
    }
}

impl<T: FromValue> FromValue for BTreeMap<String, T> {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        string_keyed(value).map(|pairs| pairs.into_iter().collect())
    }
}

impl<T: IntoValue> IntoValue for BTreeMap<String, T> {
    fn into_value(self) -> Value {
        Value::Dict(Dict(
            self.into_iter()
                .map(|(k, v)| (Value::Str(k), v.into_value()))
                .collect(),
        ))
    }
}

impl<T: IntoValue> IntoValue for HashMap<String, T> {
    fn into_value(self) -> Value {
        Value::Dict(Dict(
            self.into_iter()
                .map(|(k, v)| (Value::Str(k), v.into_value()))
                .collect(),
        ))
    }
}

macro_rules! simple_variant {
    ($t:ty, $variant:ident, $name:literal) => {
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self, ValueError> {
                match value {
                    Value::$variant(x) => Ok(x),
                    other => Err(ValueError::new($name, &other)),
                }
            }
        }

        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
        }
    };
}

impl FromValue for DateTime {
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::DateTime(x) => Ok(*x),
            other => Err(ValueError::new("datetime", &other)),
        }
    }
}

impl IntoValue for DateTime {
    fn into_value(self) -> Value {
        Value::DateTime(Box::new(self))
    }
}

simple_variant!(Date, Date, "date");
simple_variant!(TimeDelta, TimeDelta, "timedelta");
simple_variant!(uuid::Uuid, Uuid, "UUID");

macro_rules! tuple_conversions {
    ($(($($name:ident),+)),*) => {$(
        impl<$($name: IntoValue),+> IntoValue for ($($name,)+) {
            /// A Rust tuple becomes a Python `tuple`.
            #[allow(non_snake_case)]
            fn into_value(self) -> Value {
                let ($($name,)+) = self;
                Value::Tuple(vec![$($name.into_value()),+])
            }
        }
    )*};
}

tuple_conversions!((A), (A, B), (A, B, C), (A, B, C, D));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_convert_within_range_and_fail_outside() {
        assert_eq!(i32::from_value(Value::Int(7)), Ok(7));
        assert!(u8::from_value(Value::Int(300)).is_err());
        assert_eq!(
            i64::from_value(Value::str("x")),
            Err(ValueError {
                expected: "int",
                got: "str"
            })
        );
    }

    #[test]
    fn option_accepts_none_and_absence() {
        assert_eq!(Option::<i64>::from_value(Value::None), Ok(None));
        assert_eq!(Option::<i64>::absent(), Some(None));
        assert_eq!(i64::absent(), None);
    }

    #[test]
    fn vec_returns_a_list_and_tuples_return_tuples() {
        assert_eq!(
            vec![1i64, 2].into_value(),
            Value::List(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(
            (1i64, "a").into_value(),
            Value::Tuple(vec![Value::Int(1), Value::str("a")])
        );
    }

    #[test]
    fn a_string_parameter_gets_lone_surrogates_as_replacement_characters() {
        let v = Value::from_code_points([0x61, 0xDC00, 0x62]).unwrap_or(Value::None);
        assert_eq!(String::from_value(v.clone()), Ok("a\u{FFFD}b".to_owned()));
        assert_eq!(Value::from_value(v.clone()), Ok(v));
    }

    #[test]
    fn huge_u128_becomes_a_big_int() {
        assert!(matches!(u128::MAX.into_value(), Value::BigInt(_)));
    }
}
