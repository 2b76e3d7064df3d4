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
