//! Reading a tree of results the way Celery's `GroupResult.join_native(propagate=True)` does:
//! used where a chord's header is joined from stored results (`celery.chord_unlock`, and a
//! Redis chord whose header holds a group result).

use std::collections::HashMap;

use super::{BackendError, ResultBackend};
use crate::value::Value;

/// A result as Celery's `result_from_tuple` reads an `as_tuple()`: one task's, or a group's.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultNode {
    /// `AsyncResult`: `((id, parent), None)`.
    Task(String),
    /// `GroupResult`: `((id, parent), [children...])`.
    Group(Vec<ResultNode>),
}

impl ResultNode {
    /// Reads `((id, parent), None)` or `((id, parent), [children])`; the first element may
    /// also be a bare id. `None` for anything else.
    pub fn from_tuple(value: &Value) -> Option<ResultNode> {
        let [head, nodes] = value.as_seq()? else {
            return None;
        };
        let id = match head {
            Value::Str(id) => id.clone(),
            other => other.as_seq()?.first()?.as_str()?.to_owned(),
        };
        match nodes {
            Value::None => Some(ResultNode::Task(id)),
            other => other
                .as_seq()?
                .iter()
                .map(ResultNode::from_tuple)
                .collect::<Option<_>>()
                .map(ResultNode::Group),
        }
    }

    /// Reads a list of `as_tuple()`s (a header's results).
    pub fn list_from_tuples(value: &Value) -> Option<Vec<ResultNode>> {
        value.as_seq()?.iter().map(ResultNode::from_tuple).collect()
    }

    fn task_ids<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            ResultNode::Task(id) => out.push(id),
            ResultNode::Group(children) => children.iter().for_each(|c| c.task_ids(out)),
        }
    }
}

/// What joining found.
#[derive(Debug, Clone, PartialEq)]
pub enum Joined {
    /// Some result is not ready yet (Celery's `GroupResult.ready()` is false).
    NotReady,
    /// Every result succeeded: their values in order, a group's as a nested list.
    Ready(Vec<Value>),
    /// A result failed or was revoked: the `repr()` of its exception, e.g. `ValueError('boom')`.
    Failed(String),
}

/// Reads every task's meta in one round trip and joins them. As `join_native` does, a
/// failure inside a nested group is reported before one among the top-level tasks.
pub async fn join(
    backend: &dyn ResultBackend,
    results: &[ResultNode],
) -> Result<Joined, BackendError> {
    let mut ids = Vec::new();
    results.iter().for_each(|r| r.task_ids(&mut ids));
    let owned: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    let metas = backend.get_many_meta(&owned).await?;
    let by_id: HashMap<&str, &Value> = ids
        .iter()
        .zip(&metas)
        .filter_map(|(id, m)| Some((*id, m.as_ref()?)))
        .collect();
    Ok(evaluate(results, &by_id))
}

const READY: [&str; 3] = ["SUCCESS", "FAILURE", "REVOKED"];

fn status(meta: &Value) -> &str {
    meta.as_dict()
        .and_then(|d| d.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("PENDING")
}

fn result_of(meta: &Value) -> Value {
    meta.as_dict()
        .and_then(|d| d.get("result"))
        .cloned()
        .unwrap_or(Value::None)
}

fn evaluate(results: &[ResultNode], metas: &HashMap<&str, &Value>) -> Joined {
    if !all_ready(results, metas) {
        return Joined::NotReady;
    }
    match first_failure(results, metas) {
        Some(repr) => Joined::Failed(repr),
        None => Joined::Ready(values(results, metas)),
    }
}

fn all_ready(results: &[ResultNode], metas: &HashMap<&str, &Value>) -> bool {
    results.iter().all(|r| match r {
        ResultNode::Task(id) => metas
            .get(id.as_str())
            .is_some_and(|m| READY.contains(&status(m))),
        ResultNode::Group(children) => all_ready(children, metas),
    })
}

fn first_failure(results: &[ResultNode], metas: &HashMap<&str, &Value>) -> Option<String> {
    let nested = results.iter().find_map(|r| match r {
        ResultNode::Group(children) => first_failure(children, metas),
        ResultNode::Task(_) => None,
    });
    nested.or_else(|| {
        results.iter().find_map(|r| match r {
            ResultNode::Task(id) => {
                let meta = metas.get(id.as_str())?;
                matches!(status(meta), "FAILURE" | "REVOKED").then(|| {
                    let (exc_type, args) = super::meta::exception_parts(&result_of(meta));
                    format!("{exc_type}({args})")
                })
            }
            ResultNode::Group(_) => None,
        })
    })
}

fn values(results: &[ResultNode], metas: &HashMap<&str, &Value>) -> Vec<Value> {
    results
        .iter()
        .map(|r| match r {
            ResultNode::Task(id) => metas.get(id.as_str()).map_or(Value::None, |m| result_of(m)),
            ResultNode::Group(children) => Value::List(values(children, metas)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Dict;

    fn tuple(id: &str, children: Option<Vec<Value>>) -> Value {
        let head = Value::List(vec![Value::str(id), Value::None]);
        Value::List(vec![head, children.map_or(Value::None, Value::List)])
    }

    fn meta(status: &str, result: Value) -> Value {
        let mut d = Dict::new();
        d.insert("status", status);
        d.insert("result", result);
        Value::Dict(d)
    }

    fn failure(exc_type: &str, message: &str) -> Value {
        super::super::meta::exception_meta(exc_type, "builtins", vec![Value::str(message)])
    }

    fn run(results: &[ResultNode], metas: &[(&str, Value)]) -> Joined {
        let by_id: HashMap<&str, &Value> = metas.iter().map(|(id, m)| (*id, m)).collect();
        evaluate(results, &by_id)
    }

    #[test]
    fn reads_tasks_and_nested_groups() {
        let header = Value::List(vec![
            tuple("a", None),
            tuple("g", Some(vec![tuple("b", None), tuple("c", None)])),
        ]);
        let nodes = ResultNode::list_from_tuples(&header).expect("tuples");
        let expected = vec![
            ResultNode::Task("a".into()),
            ResultNode::Group(vec![
                ResultNode::Task("b".into()),
                ResultNode::Task("c".into()),
            ]),
        ];
        assert_eq!(nodes, expected);
        assert_eq!(
            ResultNode::from_tuple(&Value::List(vec![Value::str("x"), Value::None])),
            Some(ResultNode::Task("x".into()))
        );
        assert_eq!(ResultNode::from_tuple(&Value::str("x")), None);
    }

    #[test]
    fn joins_values_with_groups_as_lists() {
        let nodes = vec![
            ResultNode::Task("a".into()),
            ResultNode::Group(vec![
                ResultNode::Task("b".into()),
                ResultNode::Task("c".into()),
            ]),
        ];
        let metas = [
            ("a", meta("SUCCESS", Value::Int(2))),
            ("b", meta("SUCCESS", Value::Int(3))),
            ("c", meta("SUCCESS", Value::Int(4))),
        ];
        let joined = run(&nodes, &metas);
        assert_eq!(
            joined,
            Joined::Ready(vec![
                Value::Int(2),
                Value::List(vec![Value::Int(3), Value::Int(4)])
            ])
        );
    }

    #[test]
    fn is_not_ready_while_any_result_is_missing_or_running() {
        let nodes = vec![
            ResultNode::Task("a".into()),
            ResultNode::Group(vec![ResultNode::Task("b".into())]),
        ];
        assert_eq!(
            run(&nodes, &[("a", meta("SUCCESS", Value::Int(1)))]),
            Joined::NotReady
        );
        let started = [
            ("a", meta("FAILURE", failure("ValueError", "x"))),
            ("b", meta("STARTED", Value::None)),
        ];
        assert_eq!(run(&nodes, &started), Joined::NotReady);
    }

    #[test]
    fn reports_a_nested_failure_before_a_top_level_one() {
        let nodes = vec![
            ResultNode::Task("a".into()),
            ResultNode::Group(vec![ResultNode::Task("b".into())]),
        ];
        let metas = [
            ("a", meta("FAILURE", failure("KeyError", "k"))),
            ("b", meta("REVOKED", failure("TaskRevokedError", "expired"))),
        ];
        assert_eq!(
            run(&nodes, &metas),
            Joined::Failed("TaskRevokedError('expired')".into())
        );
        let metas = [
            ("a", meta("FAILURE", failure("KeyError", "k"))),
            ("b", meta("SUCCESS", Value::Int(1))),
        ];
        assert_eq!(run(&nodes, &metas), Joined::Failed("KeyError('k')".into()));
    }
}
