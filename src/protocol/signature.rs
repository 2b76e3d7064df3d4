//! Celery signatures as they travel inside messages (`link`, `link_error`, `chain`, `chord`):
//! `{"task", "args", "kwargs", "options", "subtask_type", "immutable", ...}`.

use crate::value::{Dict, Value};

/// A task signature (`celery.Signature` as a dict). Keys rcelery does not interpret (e.g.
/// `chord_size`) are kept and written back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Task name.
    pub task: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// Calling options (`task_id`, `queue`, `reply_to`, ...).
    pub options: Dict,
    /// `None` for a task; `chain`, `group`, `chord` for canvas primitives.
    pub subtask_type: Option<String>,
    /// `.si()`: the parent's result is not prepended to the args.
    pub immutable: bool,
    /// Other keys, in order.
    pub extra: Dict,
}

impl Signature {
    /// A mutable signature of `task` with no arguments.
    pub fn new(task: impl Into<String>) -> Signature {
        Signature {
            task: task.into(),
            args: Vec::new(),
            kwargs: Dict::new(),
            options: Dict::new(),
            subtask_type: None,
            immutable: false,
            extra: Dict::new(),
        }
    }

    /// Reads a signature dict; `None` if `value` is not one.
    pub fn from_value(value: &Value) -> Option<Signature> {
        let d = value.as_dict()?;
        let task = d.get("task")?.as_str()?.to_owned();
        let mut sig = Signature::new(task);
        for (k, v) in d.iter() {
            match k.as_str().unwrap_or("") {
                "task" => {}
                "args" => sig.args = v.as_seq().map(<[Value]>::to_vec).unwrap_or_default(),
                "kwargs" => sig.kwargs = v.as_dict().cloned().unwrap_or_default(),
                "options" => sig.options = v.as_dict().cloned().unwrap_or_default(),
                "subtask_type" => sig.subtask_type = v.as_str().map(str::to_owned),
                "immutable" => sig.immutable = v.truthy(),
                _ => sig.extra.insert(k.clone(), v.clone()),
            }
        }
        Some(sig)
    }

    /// Reads a list of signatures (the form `callbacks`, `errbacks` and `chain` take); a
    /// single signature dict counts as a list of one. Items that are not signatures are
    /// returned as errors so the caller can log them.
    pub fn list_from_value(value: &Value) -> Vec<Result<Signature, Value>> {
        match value {
            Value::List(items) | Value::Tuple(items) => items
                .iter()
                .map(|v| Signature::from_value(v).ok_or_else(|| v.clone()))
                .collect(),
            Value::None => Vec::new(),
            single => vec![Signature::from_value(single).ok_or_else(|| single.clone())],
        }
    }

    /// The signatures in `value` (see [`Signature::list_from_value`]), skipping items that
    /// are not signatures.
    pub fn all_in(value: &Value) -> Vec<Signature> {
        Signature::list_from_value(value)
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    /// The dict form, keys in Celery's order.
    pub fn to_value(&self) -> Value {
        let mut d = Dict::with_capacity(6 + self.extra.len());
        d.insert("task", self.task.as_str());
        d.insert("args", Value::List(self.args.clone()));
        d.insert("kwargs", Value::Dict(self.kwargs.clone()));
        d.insert("options", Value::Dict(self.options.clone()));
        d.insert(
            "subtask_type",
            self.subtask_type.clone().map_or(Value::None, Value::Str),
        );
        d.insert("immutable", self.immutable);
        for (k, v) in self.extra.iter() {
            d.insert(k.clone(), v.clone());
        }
        Value::Dict(d)
    }

    /// A string option (e.g. `task_id`, `queue`), if set and not empty.
    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Celery's `_merge` for calling a signature with partial arguments: `args` are prepended
    /// and `kwargs` merged unless the signature is immutable.
    pub fn merged_arguments(&self, args: Vec<Value>, kwargs: Dict) -> (Vec<Value>, Dict) {
        if self.immutable {
            return (self.args.clone(), self.kwargs.clone());
        }
        let mut all = args;
        all.extend(self.args.iter().cloned());
        let mut kw = self.kwargs.clone();
        for (k, v) in kwargs.0 {
            kw.insert(k, v);
        }
        (all, kw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_merges() {
        let mut s = Signature::new("tasks.mul");
        s.args = vec![Value::Int(10)];
        let back = Signature::from_value(&s.to_value()).expect("a signature");
        assert_eq!(back, s);
        let (args, _) = s.merged_arguments(vec![Value::Int(5)], Dict::new());
        assert_eq!(args, vec![Value::Int(5), Value::Int(10)]);
        s.immutable = true;
        let (args, _) = s.merged_arguments(vec![Value::Int(5)], Dict::new());
        assert_eq!(args, vec![Value::Int(10)]);
    }
}
