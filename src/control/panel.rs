//! The commands Celery's `celery inspect` and `celery control` accept, with their positional
//! arguments (Celery's `Panel.meta`: `args` and `variadic`), to turn a command line into a
//! command's arguments.

use crate::value::{Dict, Value};

/// Whether a command asks (`inspect`) or tells (`control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `celery inspect`.
    Inspect,
    /// `celery control`.
    Control,
}

/// How one positional argument is read.
#[derive(Debug, Clone, Copy)]
enum Type {
    Str,
    Int,
    Float,
    Bool,
}

struct Meta {
    name: &'static str,
    kind: Kind,
    args: &'static [(&'static str, Type)],
    variadic: Option<&'static str>,
}

const fn m(
    name: &'static str,
    kind: Kind,
    args: &'static [(&'static str, Type)],
    variadic: Option<&'static str>,
) -> Meta {
    Meta {
        name,
        kind,
        args,
        variadic,
    }
}

use Kind::{Control, Inspect};

const PANEL: &[Meta] = &[
    m("active", Inspect, &[], None),
    m("active_queues", Inspect, &[], None),
    m("clock", Inspect, &[], None),
    m("conf", Inspect, &[("with_defaults", Type::Bool)], None),
    m("hello", Inspect, &[], None),
    m("ping", Inspect, &[], None),
    m("query_task", Inspect, &[], Some("ids")),
    m("registered", Inspect, &[], Some("taskinfoitems")),
    m("report", Inspect, &[], None),
    m("reserved", Inspect, &[], None),
    m("scheduled", Inspect, &[], None),
    m("stats", Inspect, &[], None),
    m(
        "add_consumer",
        Control,
        &[
            ("queue", Type::Str),
            ("exchange", Type::Str),
            ("exchange_type", Type::Str),
            ("routing_key", Type::Str),
        ],
        None,
    ),
    m(
        "autoscale",
        Control,
        &[("max", Type::Int), ("min", Type::Int)],
        None,
    ),
    m("cancel_consumer", Control, &[("queue", Type::Str)], None),
    m("disable_events", Control, &[], None),
    m("election", Control, &[], None),
    m("enable_events", Control, &[], None),
    m("heartbeat", Control, &[], None),
    m("pool_grow", Control, &[("n", Type::Int)], None),
    m("pool_shrink", Control, &[("n", Type::Int)], None),
    m(
        "rate_limit",
        Control,
        &[("task_name", Type::Str), ("rate_limit", Type::Str)],
        None,
    ),
    m("revoke", Control, &[], Some("task_id")),
    m("revoke_by_stamped_headers", Control, &[], Some("headers")),
    m("shutdown", Control, &[], None),
    m(
        "terminate",
        Control,
        &[("signal", Type::Str)],
        Some("task_id"),
    ),
    m(
        "time_limit",
        Control,
        &[
            ("task_name", Type::Str),
            ("soft", Type::Float),
            ("hard", Type::Float),
        ],
        None,
    ),
];

/// The command names of `kind`, as Celery lists them.
pub fn names(kind: Kind) -> Vec<&'static str> {
    PANEL
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.name)
        .collect()
}

/// Celery's `_compile_arguments`: the positional `args` given to `command` on the command
/// line, as the command's arguments. `Err` with Celery's usage message.
pub fn compile(kind: Kind, command: &str, args: &[String]) -> Result<Dict, String> {
    let Some(meta) = PANEL.iter().find(|c| c.kind == kind && c.name == command) else {
        let word = match kind {
            Inspect => "inspect",
            Control => "control",
        };
        return Err(format!(
            "Command {command} not recognized. Available {word} commands: {}",
            names(kind).join(", ")
        ));
    };
    let mut out = Dict::new();
    let mut rest = args;
    for (i, arg) in args.iter().enumerate() {
        let Some((name, ty)) = meta.args.get(i) else {
            if meta.variadic.is_some() {
                break;
            }
            let signature: Vec<String> = meta.args.iter().map(|(n, _)| format!("<{n}>")).collect();
            return Err(format!(
                "Command '{command}' takes arguments: {}",
                signature.join(" ")
            ));
        };
        out.insert(*name, convert(*ty, arg)?);
        rest = &args[i + 1..];
    }
    if let Some(v) = meta.variadic {
        out.insert(
            v,
            Value::List(rest.iter().map(|s| Value::str(s.as_str())).collect()),
        );
    }
    Ok(out)
}

fn convert(ty: Type, arg: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{arg:?} is not {what}");
    Ok(match ty {
        Type::Str => Value::str(arg),
        Type::Int => Value::Int(arg.parse().map_err(|_| bad("an integer"))?),
        Type::Float => Value::Float(arg.parse().map_err(|_| bad("a number"))?),
        Type::Bool => match arg.to_ascii_lowercase().as_str() {
            "y" | "yes" | "t" | "true" | "on" | "1" => Value::Bool(true),
            "n" | "no" | "f" | "false" | "off" | "0" => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_as_celery_compiles_them() {
        let args = compile(Control, "revoke", &["a".into(), "b".into()]).expect("ok");
        assert_eq!(
            args.get("task_id"),
            Some(&Value::List(vec![Value::str("a"), Value::str("b")]))
        );
        let args = compile(Control, "terminate", &["KILL".into(), "a".into()]).expect("ok");
        assert_eq!(args.get("signal"), Some(&Value::str("KILL")));
        assert_eq!(
            args.get("task_id"),
            Some(&Value::List(vec![Value::str("a")]))
        );
        let args = compile(Inspect, "ping", &[]).expect("ok");
        assert!(args.is_empty());
        assert!(compile(Inspect, "nope", &[]).is_err());
        assert!(compile(Inspect, "ping", &["x".into()]).is_err());
    }
}
