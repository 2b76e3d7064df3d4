//! Reading command arguments as Celery's handlers receive them (keyword arguments).

use super::CommandError;
use crate::value::{Dict, Value};

/// A string argument, `None` when absent or None.
pub(super) fn opt_str(args: &Dict, key: &str) -> Result<Option<String>, CommandError> {
    match args.get(key) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(Value::Int(i)) => Ok(Some(i.to_string())),
        Some(Value::Float(f)) => Ok(Some(f.to_string())),
        Some(_) => Err(type_error(key, "a string")),
    }
}

/// A string argument that must be there.
pub(super) fn req_str(args: &Dict, key: &str, command: &str) -> Result<String, CommandError> {
    opt_str(args, key)?.ok_or_else(|| {
        CommandError(format!(
            "TypeError(\"{command}() missing 1 required positional argument: '{key}'\")"
        ))
    })
}

/// A number argument (an int, a float or a numeric string).
pub(super) fn opt_f64(args: &Dict, key: &str) -> Result<Option<f64>, CommandError> {
    match args.get(key) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i as f64)),
        Some(Value::Float(f)) => Ok(Some(*f)),
        Some(Value::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| type_error(key, "a number")),
        Some(_) => Err(type_error(key, "a number")),
    }
}

/// A flag (Celery's `strtobool` for strings).
pub(super) fn flag(args: &Dict, key: &str) -> bool {
    match args.get(key) {
        Some(Value::Str(s)) => matches!(
            s.to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "y" | "on"
        ),
        Some(v) => v.truthy(),
        None => false,
    }
}

/// A string or a list of strings (Celery's `maybe_list`).
pub(super) fn str_list(args: &Dict, key: &str) -> Result<Vec<String>, CommandError> {
    match args.get(key) {
        None | Some(Value::None) => Ok(Vec::new()),
        Some(Value::Str(s)) => Ok(vec![s.clone()]),
        Some(Value::List(v) | Value::Tuple(v) | Value::Set(v)) => v
            .iter()
            .map(|x| match x {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(type_error(key, "a list of strings")),
            })
            .collect(),
        Some(_) => Err(type_error(key, "a string or a list of strings")),
    }
}

fn type_error(key: &str, wanted: &str) -> CommandError {
    CommandError(format!("TypeError('{key} must be {wanted}')"))
}

/// A whole-number argument (an int, a whole float or a numeric string, as Python's `int()`
/// takes them), `default` when absent or None.
pub(super) fn int_or(args: &Dict, key: &str, default: i64) -> Result<i64, CommandError> {
    match args.get(key) {
        None | Some(Value::None) => Ok(default),
        Some(Value::Int(i)) => Ok(*i),
        Some(Value::Bool(b)) => Ok(i64::from(*b)),
        Some(Value::Float(f)) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(*f as i64),
        Some(Value::Str(s)) => s.trim().parse().map_err(|_| type_error(key, "an integer")),
        Some(_) => Err(type_error(key, "an integer")),
    }
}
