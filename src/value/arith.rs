//! Python arithmetic on values (`+`, `*`) with Python's numeric rules. (Being written.)
use super::Value;

/// The Python type name of a value, as `type(x).__name__` says it.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "NoneType",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
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

/// A Python `TypeError` from an operator. (Temporary minimal arithmetic; being replaced.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PyTypeError(pub String);

impl Value {
    /// Python's `self + other`.
    pub fn py_add(&self, other: &Value) -> Result<Value, PyTypeError> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Ok(a.checked_add(*b).map_or_else(
                || Value::int(num_bigint::BigInt::from(*a) + num_bigint::BigInt::from(*b)),
                Value::Int,
            )),
            (Value::Float(a), Value::Float(b)) => Ok(Value::Float(a + b)),
            (Value::Int(a), Value::Float(b)) => Ok(Value::Float(*a as f64 + b)),
            (Value::Float(a), Value::Int(b)) => Ok(Value::Float(a + *b as f64)),
            (a, b) => Err(PyTypeError(format!(
                "unsupported operand type(s) for +: '{}' and '{}'",
                py_type_name(a),
                py_type_name(b)
            ))),
        }
    }

    /// Python's `self * other`.
    pub fn py_mul(&self, other: &Value) -> Result<Value, PyTypeError> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Ok(a.checked_mul(*b).map_or_else(
                || Value::int(num_bigint::BigInt::from(*a) * num_bigint::BigInt::from(*b)),
                Value::Int,
            )),
            (a, b) => Err(PyTypeError(format!(
                "unsupported operand type(s) for *: '{}' and '{}'",
                py_type_name(a),
                py_type_name(b)
            ))),
        }
    }
}

/// Python's `sum(items)`.
pub fn py_sum(items: &[Value]) -> Result<Value, PyTypeError> {
    items.iter().try_fold(Value::Int(0), |acc, v| acc.py_add(v))
}
