//! Helpers called by code the `#[task]` macro generates. Not a stable API.

use super::bind::{type_mismatch, Bound};
use super::TaskError;
use crate::value::{FromValue, Value};

/// Converts the value bound to named parameter `i`; `Ok(None)` when it was not passed and
/// has neither a default nor an absent value (the caller reports it as missing).
pub fn extract<T: FromValue, D: FnOnce() -> T>(
    bound: &mut Bound,
    i: usize,
    name: &str,
    func: &str,
    default: Option<D>,
) -> Result<Option<T>, TaskError> {
    match bound.take(i) {
        Some(v) => T::from_value(v)
            .map(Some)
            .map_err(|e| type_mismatch(func, name, e)),
        None => Ok(default.map(|d| d()).or_else(T::absent)),
    }
}

/// Converts the extra positional arguments (`*args`, a tuple in Python).
pub fn rest_args<T: FromValue>(bound: &mut Bound, func: &str) -> Result<T, TaskError> {
    let rest = std::mem::take(&mut bound.varargs);
    T::from_value(Value::Tuple(rest)).map_err(|e| type_mismatch(func, "*args", e))
}

/// Converts the extra keyword arguments (`**kwargs`).
pub fn rest_kwargs<T: FromValue>(bound: &mut Bound, func: &str) -> Result<T, TaskError> {
    let rest = std::mem::take(&mut bound.varkw);
    T::from_value(Value::Dict(rest)).map_err(|e| type_mismatch(func, "**kwargs", e))
}
