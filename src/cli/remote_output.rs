//! Celery's CLI rendering of remote-control replies (`celery/bin/base.py` `pretty`,
//! `say_chat`): `->  <node>: OK` then the body indented, and `N nodes online.`.

use indexmap::IndexMap;

use crate::codec::json;
use crate::value::{py_repr, Dict, Value};

/// The lines for one node's reply, as Celery's `_say_remote_command_reply` prints them.
pub(super) fn node_reply(node: &str, reply: &Value, show_body: bool) -> String {
    let (status, body) = pretty(reply);
    let mut out = format!("->  {node}: {status}");
    if show_body && !body.is_empty() {
        out.push('\n');
        out.push_str(&indent(&body, 4));
    }
    out
}

/// `N node(s) online.` preceded by an empty line.
pub(super) fn online(n: usize) -> String {
    let word = if n == 1 { "node" } else { "nodes" };
    format!("\n{n} {word} online.")
}

/// Every reply as one JSON object (`-j`).
pub(super) fn as_json(replies: &IndexMap<String, Value>) -> String {
    let mut d = Dict::new();
    for (node, reply) in replies {
        d.insert(node.as_str(), reply.clone());
    }
    String::from_utf8_lossy(&json::encode(&Value::Dict(d))).into_owned()
}

fn pretty(v: &Value) -> (&'static str, String) {
    match v {
        Value::List(items) | Value::Tuple(items) => ("OK", pretty_list(items)),
        Value::Dict(d) => {
            if let Some(ok) = d.get("ok") {
                ("OK", indent(&pretty(ok).1, 4))
            } else if let Some(err) = d.get("error") {
                ("ERROR", indent(&pretty(err).1, 4))
            } else {
                ("OK", pretty_json(v, 0))
            }
        }
        Value::Str(s) => ("OK", s.clone()),
        other => ("OK", py_repr(other)),
    }
}

fn pretty_list(items: &[Value]) -> String {
    if items.is_empty() {
        return "- empty -".to_owned();
    }
    items
        .iter()
        .map(|i| match i {
            Value::Str(s) => format!("* {s}"),
            other => format!("* {}", py_repr(other)),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Python's `json.dumps(v, sort_keys=True, indent=4)`.
fn pretty_json(v: &Value, level: usize) -> String {
    let pad = |l: usize| " ".repeat(4 * l);
    match v {
        Value::Dict(d) if !d.is_empty() => {
            let mut entries: Vec<(String, &Value)> = d
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        other => py_repr(other),
                    };
                    (key, v)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    let key = String::from_utf8_lossy(&json::encode(&Value::str(k.as_str())))
                        .into_owned();
                    format!("{}{key}: {}", pad(level + 1), pretty_json(v, level + 1))
                })
                .collect();
            format!("{{\n{}\n{}}}", inner.join(",\n"), pad(level))
        }
        Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
            let inner: Vec<String> = items
                .iter()
                .map(|i| format!("{}{}", pad(level + 1), pretty_json(i, level + 1)))
                .collect();
            format!("[\n{}\n{}]", inner.join(",\n"), pad(level))
        }
        other => String::from_utf8_lossy(&json::encode(other)).into_owned(),
    }
}

/// Celery's `text.indent`: every line prefixed with `n` spaces.
fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_reads_as_celery_s() {
        let mut pong = Dict::new();
        pong.insert("ok", "pong");
        assert_eq!(
            node_reply("w1@h", &Value::Dict(pong), true),
            "->  w1@h: OK\n        pong"
        );
        assert_eq!(online(1), "\n1 node online.");
        assert_eq!(online(2), "\n2 nodes online.");
    }

    #[test]
    fn dicts_are_sorted_indented_json() {
        let mut d = Dict::new();
        d.insert("b", 1);
        d.insert("a", Value::List(vec![Value::str("x")]));
        assert_eq!(
            pretty_json(&Value::Dict(d), 0),
            "{\n    \"a\": [\n        \"x\"\n    ],\n    \"b\": 1\n}"
        );
        assert_eq!(pretty(&Value::List(vec![])).1, "- empty -");
    }
}
