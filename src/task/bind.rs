//! Python's argument binding: positional args fill parameters in order, kwargs by name,
//! extras go to `*args`/`**kwargs` if the function has them, and every mismatch is the same
//! `TypeError` message Python would raise.

use super::TaskError;
use crate::value::{Dict, Value};

/// A task function's parameter list, as the `#[task]` macro sees it.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The function name used in error messages (`add() missing ...`).
    pub func: &'static str,
    /// Named parameters, in order.
    pub params: &'static [&'static str],
    /// How many trailing named parameters have defaults (for "takes from N to M" messages).
    pub optional: usize,
    /// True if the function takes `*args`.
    pub varargs: bool,
    /// True if the function takes `**kwargs`.
    pub varkw: bool,
}

/// Arguments bound to a [`Signature`].
#[derive(Debug, Default)]
pub struct Bound {
    /// One slot per named parameter; `None` where nothing was passed.
    pub slots: Vec<Option<Value>>,
    /// Extra positional arguments (`*args`).
    pub varargs: Vec<Value>,
    /// Extra keyword arguments (`**kwargs`).
    pub varkw: Dict,
}

impl Bound {
    /// Takes the value bound to parameter `i`.
    pub fn take(&mut self, i: usize) -> Option<Value> {
        self.slots.get_mut(i).and_then(Option::take)
    }
}

/// Binds `args` and `kwargs` to `sig` as Python would.
pub fn bind(sig: &Signature, args: Vec<Value>, kwargs: Dict) -> Result<Bound, TaskError> {
    let n = sig.params.len();
    if args.len() > n && !sig.varargs {
        return Err(TaskError::type_error(too_many_positional(
            sig,
            args.len(),
            &kwargs,
        )));
    }
    let mut bound = Bound {
        slots: vec![None; n],
        ..Bound::default()
    };
    for (i, v) in args.into_iter().enumerate() {
        if i < n {
            bound.slots[i] = Some(v);
        } else {
            bound.varargs.push(v);
        }
    }
    for (k, v) in kwargs.0 {
        let key = match k {
            Value::Str(key) => key,
            // A str with a lone surrogate names no parameter: it can only go to `**kwargs`.
            Value::SurrogateStr(key) if sig.varkw => {
                bound.varkw.insert(Value::SurrogateStr(key), v);
                continue;
            }
            Value::SurrogateStr(key) => {
                return Err(TaskError::type_error(format!(
                    "{}() got an unexpected keyword argument '{}'",
                    sig.func,
                    key.to_string_lossy()
                )))
            }
            _ => {
                return Err(TaskError::type_error(format!(
                    "{}() keywords must be strings",
                    sig.func
                )))
            }
        };
        match sig.params.iter().position(|p| *p == key) {
            Some(i) if bound.slots[i].is_some() => {
                return Err(TaskError::type_error(format!(
                    "{}() got multiple values for argument '{key}'",
                    sig.func
                )))
            }
            Some(i) => bound.slots[i] = Some(v),
            None if sig.varkw => bound.varkw.insert(Value::Str(key), v),
            None => {
                return Err(TaskError::type_error(format!(
                    "{}() got an unexpected keyword argument '{key}'",
                    sig.func
                )))
            }
        }
    }
    Ok(bound)
}

fn too_many_positional(sig: &Signature, given: usize, kwargs: &Dict) -> String {
    let n = sig.params.len();
    let required = n - sig.optional.min(n);
    let takes = if sig.optional > 0 {
        format!("from {required} to {n} positional arguments")
    } else if n == 1 {
        "1 positional argument".to_owned()
    } else {
        format!("{n} positional arguments")
    };
    let kw_given = kwargs
        .iter()
        .filter(|(k, _)| matches!(k, Value::Str(s) if sig.params.contains(&s.as_str())))
        .count();
    let was = if given == 1 { "was" } else { "were" };
    if kw_given > 0 {
        let s = if kw_given == 1 { "" } else { "s" };
        format!(
            "{}() takes {takes} but {given} positional argument{} (and {kw_given} keyword-only argument{s}) {was} given",
            sig.func,
            if given == 1 { "" } else { "s" }
        )
    } else {
        format!("{}() takes {takes} but {given} {was} given", sig.func)
    }
}

/// The `TypeError` for parameters nothing was passed to, e.g.
/// `add() missing 2 required positional arguments: 'x' and 'y'`.
pub fn missing_error(func: &str, names: &[&str]) -> TaskError {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    let list = match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    };
    let plural = if names.len() == 1 {
        "argument"
    } else {
        "arguments"
    };
    TaskError::type_error(format!(
        "{func}() missing {} required positional {plural}: {list}",
        names.len()
    ))
}

/// The `TypeError` for an argument of the wrong type.
pub fn type_mismatch(func: &str, param: &str, e: crate::value::ValueError) -> TaskError {
    TaskError::type_error(format!("{func}() argument '{param}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD: Signature = Signature {
        func: "add",
        params: &["x", "y"],
        optional: 0,
        varargs: false,
        varkw: false,
    };

    fn kw(pairs: &[(&str, i64)]) -> Dict {
        pairs
            .iter()
            .map(|(k, v)| (Value::str(*k), Value::Int(*v)))
            .collect()
    }

    #[test]
    fn binds_positional_and_keyword() {
        let mut b = bind(&ADD, vec![Value::Int(1)], kw(&[("y", 2)])).unwrap();
        assert_eq!(b.take(0), Some(Value::Int(1)));
        assert_eq!(b.take(1), Some(Value::Int(2)));
    }

    #[test]
    fn python_messages() {
        let e = bind(
            &ADD,
            vec![Value::Int(1), Value::Int(2), Value::Int(3)],
            Dict::new(),
        )
        .unwrap_err();
        assert_eq!(
            e.message(),
            "add() takes 2 positional arguments but 3 were given"
        );
        let e = bind(&ADD, vec![Value::Int(1)], kw(&[("x", 2)])).unwrap_err();
        assert_eq!(e.message(), "add() got multiple values for argument 'x'");
        let e = bind(&ADD, vec![], kw(&[("z", 2)])).unwrap_err();
        assert_eq!(e.message(), "add() got an unexpected keyword argument 'z'");
        assert_eq!(
            missing_error("add", &["y"]).message(),
            "add() missing 1 required positional argument: 'y'"
        );
        assert_eq!(
            missing_error("f", &["a", "b", "c"]).message(),
            "f() missing 3 required positional arguments: 'a', 'b', and 'c'"
        );
    }

    #[test]
    fn extras_go_to_star_args() {
        let sig = Signature {
            func: "echo",
            params: &[],
            optional: 0,
            varargs: true,
            varkw: true,
        };
        let b = bind(&sig, vec![Value::Int(1)], kw(&[("a", 2)])).unwrap();
        assert_eq!(b.varargs, vec![Value::Int(1)]);
        assert_eq!(b.varkw.get("a"), Some(&Value::Int(2)));
    }
}
