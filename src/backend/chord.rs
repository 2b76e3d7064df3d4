//! Chord bookkeeping as Celery's Redis backend does it (`on_chord_part_return`), with the same
//! keys, so a chord whose header runs partly on Python workers and partly on rcelery fires its
//! body exactly once: each finished header part is added to the sorted set
//! `celery-taskset-meta-<gid>.j`, and the part that brings its size to `.s` (+ `.t`) fires.
//! As in Celery 5.7, a part is counted once however often it runs (`.d`), and the part that
//! completes the chord claims its dispatch (`.c`) so that the body is sent once.

use super::State;
use crate::value::Value;

/// One finished chord header task.
#[derive(Debug, Clone)]
pub struct ChordPart {
    /// The chord's group id (the header task's `group` header).
    pub group_id: String,
    /// The header task's id.
    pub task_id: String,
    /// Its `group_index` (the sorted-set score; `+inf` when missing).
    pub group_index: Option<i64>,
    /// Its final state.
    pub state: State,
    /// Its result: the value, or the exception meta for failures.
    pub result: Value,
}

/// Where the chord stands after a part was recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum ChordProgress {
    /// No chord size recorded (`.s` missing): nothing to do, as in Celery.
    NoSize,
    /// More parts to come.
    Pending,
    /// This part completed the chord: every part as `[1, task_id, state, result]`, in
    /// `group_index` order.
    Ready(Vec<Value>),
    /// This part completed a chord whose header was saved as a `GroupResult` (nested groups):
    /// the body's arguments come from joining that group.
    Complex,
    /// The chord's body was already sent (Celery 5.7's done marker): this is a late copy of a
    /// part, and nothing is to be done.
    Fired,
}

/// Why a chord's body cannot be sent: the text of its `ChordError`, and the exception meta of
/// the failed header part when there is one (Celery 5.6+ sets it as the `ChordError`'s
/// `__cause__`, and a group body's tasks are failed with it).
#[derive(Debug, Clone, PartialEq)]
pub struct ChordFailure {
    /// The `ChordError` message, e.g. `Dependency <tid> raised ValueError('boom')`.
    pub message: String,
    /// The failed part's exception meta (`{"exc_type", "exc_message", "exc_module"}`).
    pub cause: Option<Value>,
}

impl From<String> for ChordFailure {
    fn from(message: String) -> Self {
        ChordFailure {
            message,
            cause: None,
        }
    }
}

/// A completed chord's parts, unpacked as Celery's `_unpack_chord_result`: the results in
/// order, or the error text `Dependency <tid> raised <repr>` for the first failed part (with
/// its exception meta as the cause).
pub fn unpack(parts: &[Value]) -> Result<Vec<Value>, ChordFailure> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let items = part.as_seq().unwrap_or_default();
        let tid = items.get(1).and_then(Value::as_str).unwrap_or("");
        let state = items.get(2).and_then(Value::as_str).unwrap_or("");
        let result = items.get(3).cloned().unwrap_or(Value::None);
        if matches!(state, "FAILURE" | "REVOKED") {
            let (exc_type, args) = super::meta::exception_parts(&result);
            return Err(ChordFailure {
                message: format!("Dependency {tid} raised {exc_type}({args})"),
                cause: Some(result),
            });
        }
        out.push(result);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Dict;

    fn part(tid: &str, state: &str, result: Value) -> Value {
        Value::List(vec![
            Value::Int(1),
            Value::str(tid),
            Value::str(state),
            result,
        ])
    }

    #[test]
    fn unpacks_results_or_the_first_failure() {
        let ok = [
            part("a", "SUCCESS", Value::Int(2)),
            part("b", "SUCCESS", Value::Int(4)),
        ];
        assert_eq!(unpack(&ok), Ok(vec![Value::Int(2), Value::Int(4)]));
        let mut exc = Dict::new();
        exc.insert("exc_type", "ValueError");
        exc.insert("exc_message", Value::List(vec![Value::str("boom")]));
        exc.insert("exc_module", "builtins");
        let bad = [
            part("a", "SUCCESS", Value::Int(2)),
            part("b", "FAILURE", Value::Dict(exc)),
        ];
        let failure = unpack(&bad).expect_err("a part failed");
        assert_eq!(failure.message, "Dependency b raised ValueError('boom')");
        assert_eq!(
            failure.cause,
            Some(bad[1].as_seq().unwrap_or_default()[3].clone())
        );
    }
}
