//! Python's `repr()` of values. (Temporary minimal version; being replaced.)
use super::Value;

/// Python's `repr(value)`.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True".into() } else { "False".into() },
        Value::Int(i) => i.to_string(),
        Value::BigInt(b) => b.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => format!("'{s}'"),
        Value::Tuple(items) if items.len() == 1 => format!("({},)", py_repr(&items[0])),
        Value::Tuple(items) => format!("({})", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::List(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

/// `repr` cut to `maxlen` characters.
pub fn saferepr(v: &Value, maxlen: usize) -> String {
    let mut s = py_repr(v);
    if s.chars().count() > maxlen {
        s = s.chars().take(maxlen).collect::<String>() + "...";
    }
    s
}
