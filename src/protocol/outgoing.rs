//! Building protocol-v2 task messages to publish, exactly as Celery 5.5's `as_task_v2` and
//! kombu's `Producer.publish` build them (header key order included), so a Python worker
//! accepts them unchanged.

use super::message::{Embed, TimeLimits};
use super::raw::Properties;
use crate::codec::Serializer;
use crate::value::{saferepr_value, DateTime, Dict, Value};

/// `argsrepr_maxsize` / `kwargsrepr_maxsize`.
const REPR_MAXSIZE: usize = 1024;

/// Everything a task message says, before serialization.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// Task id.
    pub id: String,
    /// Task name.
    pub name: String,
    /// Positional arguments (written as a tuple with pickle, a list with JSON).
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// Callbacks, errbacks, chain, chord.
    pub embed: Embed,
    /// Run not before.
    pub eta: Option<DateTime>,
    /// Do not run after.
    pub expires: Option<DateTime>,
    /// Seconds from now until `expires` (kombu's `expiration` property), if it expires.
    pub expires_in: Option<f64>,
    /// Retry count.
    pub retries: i64,
    /// Group id.
    pub group: Option<String>,
    /// Position in the group.
    pub group_index: Option<i64>,
    /// Workflow root id (defaults to `id`).
    pub root_id: Option<String>,
    /// Sender task id.
    pub parent_id: Option<String>,
    /// `[hard, soft]` limits.
    pub timelimit: TimeLimits,
    /// The `ignore_result` header: `Some(true)` asks the worker not to store the result,
    /// `Some(false)` to store it whatever the task says, `None` (null) leaves it to the task.
    pub ignore_result: Option<bool>,
    /// Name shown instead of `name`.
    pub shadow: Option<String>,
    /// Sender node name (`gen<pid>@<host>`).
    pub origin: String,
    /// `replaced_task_nesting`.
    pub replaced_task_nesting: i64,
    /// Extra headers, after Celery's own.
    pub extra_headers: Dict,
    /// `reply_to` property.
    pub reply_to: String,
    /// Message priority.
    pub priority: Option<u8>,
    /// Exchange (`""` for a direct queue publish).
    pub exchange: String,
    /// Routing key (the queue name for a direct queue publish).
    pub routing_key: String,
}

/// A serialized message ready for a broker.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Serialized body.
    pub body: Vec<u8>,
    /// MIME type.
    pub content_type: String,
    /// Content encoding.
    pub content_encoding: String,
    /// Headers.
    pub headers: Dict,
    /// Properties (`correlation_id`, `reply_to`, `delivery_mode`, `priority`, `expiration`).
    pub properties: Properties,
    /// Exchange to publish to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
}

impl NewTask {
    /// The v2 headers, in `as_task_v2`'s key order, then the extra headers.
    pub fn headers(&self) -> Dict {
        let opt = |s: &Option<String>| s.clone().map_or(Value::None, Value::Str);
        let iso = |d: &Option<DateTime>| {
            d.as_ref()
                .map_or(Value::None, |d| Value::Str(d.isoformat()))
        };
        let limit = |l: Option<f64>| l.map_or(Value::None, number);
        let mut h = Dict::with_capacity(20 + self.extra_headers.len());
        h.insert("lang", "py");
        h.insert("task", self.name.as_str());
        h.insert("id", self.id.as_str());
        h.insert("shadow", opt(&self.shadow));
        h.insert("eta", iso(&self.eta));
        h.insert("expires", iso(&self.expires));
        h.insert("group", opt(&self.group));
        h.insert(
            "group_index",
            self.group_index.map_or(Value::None, Value::Int),
        );
        h.insert("retries", self.retries);
        h.insert(
            "timelimit",
            Value::List(vec![limit(self.timelimit.hard), limit(self.timelimit.soft)]),
        );
        h.insert(
            "root_id",
            Value::Str(self.root_id.clone().unwrap_or_else(|| self.id.clone())),
        );
        h.insert("parent_id", opt(&self.parent_id));
        h.insert(
            "argsrepr",
            saferepr_value(&Value::Tuple(self.args.clone()), REPR_MAXSIZE),
        );
        h.insert(
            "kwargsrepr",
            saferepr_value(&Value::Dict(self.kwargs.clone()), REPR_MAXSIZE),
        );
        h.insert("origin", self.origin.as_str());
        h.insert(
            "ignore_result",
            self.ignore_result.map_or(Value::None, Value::Bool),
        );
        h.insert("replaced_task_nesting", self.replaced_task_nesting);
        h.insert("stamped_headers", Value::None);
        h.insert("stamps", Value::Dict(Dict::new()));
        for (k, v) in self.extra_headers.iter() {
            h.insert(k.clone(), v.clone());
        }
        h
    }

    /// The body `(args, kwargs, embed)`.
    pub fn body(&self) -> Value {
        let opt = |v: &Option<Value>| v.clone().unwrap_or(Value::None);
        let mut embed = Dict::with_capacity(4);
        embed.insert("callbacks", opt(&self.embed.callbacks));
        embed.insert("errbacks", opt(&self.embed.errbacks));
        embed.insert("chain", opt(&self.embed.chain));
        embed.insert("chord", opt(&self.embed.chord));
        Value::Tuple(vec![
            Value::Tuple(self.args.clone()),
            Value::Dict(self.kwargs.clone()),
            Value::Dict(embed),
        ])
    }

    /// Serializes the message.
    pub fn encode(&self, serializer: Serializer) -> OutgoingMessage {
        OutgoingMessage {
            body: serializer.encode(&self.body()),
            content_type: serializer.content_type().to_owned(),
            content_encoding: serializer.content_encoding().to_owned(),
            headers: self.headers(),
            properties: Properties {
                correlation_id: Some(self.id.clone()),
                reply_to: Some(self.reply_to.clone()),
                delivery_mode: Some(2),
                priority: self.priority,
                expiration: self
                    .expires_in
                    .map(|s| (s.max(0.0) * 1000.0).trunc().to_string()),
            },
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
        }
    }
}

/// A limit as Python would have written it: whole numbers as ints.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Value::Int(x as i64)
    } else {
        Value::Float(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json;

    #[test]
    fn headers_follow_celerys_order() {
        let t = NewTask {
            id: "i".into(),
            name: "tasks.add".into(),
            args: vec![Value::Int(2), Value::Int(3)],
            origin: "gen1@h".into(),
            ignore_result: Some(false),
            ..NewTask::default()
        };
        let text = String::from_utf8(json::encode(&Value::Dict(t.headers()))).expect("utf-8");
        assert_eq!(
            text,
            r#"{"lang": "py", "task": "tasks.add", "id": "i", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "i", "parent_id": null, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen1@h", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}"#
        );
        let body = String::from_utf8(json::encode(&t.body())).expect("utf-8");
        assert_eq!(
            body,
            r#"[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#
        );
    }
}
