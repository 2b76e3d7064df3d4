//! The decoded task message, the same whatever protocol version and serializer carried it.

use super::raw::{DeliveryInfo, Properties};
use crate::value::{DateTime, Dict, Value};

/// `[hard, soft]` time limits in seconds, as in the `timelimit` header.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeLimits {
    /// Hard limit: the task is ended.
    pub hard: Option<f64>,
    /// Soft limit: the task is told.
    pub soft: Option<f64>,
}

/// The body's third element: what to run after this task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embed {
    /// `link` signatures, applied with the result on success.
    pub callbacks: Option<Value>,
    /// `link_error` signatures, applied on failure.
    pub errbacks: Option<Value>,
    /// The rest of a chain, reversed (the next task is last).
    pub chain: Option<Value>,
    /// The chord body, for chord header tasks.
    pub chord: Option<Value>,
}

/// A task to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// Task id.
    pub id: String,
    /// Registered task name, e.g. `tasks.add`.
    pub name: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// Callbacks, errbacks, chain and chord.
    pub embed: Embed,
    /// When to run, if not now.
    pub eta: Option<DateTime>,
    /// After when not to run.
    pub expires: Option<DateTime>,
    /// How many times this task was retried.
    pub retries: i64,
    /// Group id, for group and chord members.
    pub group: Option<String>,
    /// Position in the group.
    pub group_index: Option<i64>,
    /// Id of the first task of the workflow.
    pub root_id: Option<String>,
    /// Id of the task that sent this one.
    pub parent_id: Option<String>,
    /// Time limits.
    pub timelimit: TimeLimits,
    /// The `ignore_result` header: `Some` overrides the task's own setting both ways (Celery
    /// 5.6+: `apply_async(ignore_result=...)`), `None` (null or missing, as `send_task` and
    /// protocol 1 send it) leaves it to the task.
    pub ignore_result: Option<bool>,
    /// Name shown in logs instead of `name`, if set.
    pub shadow: Option<String>,
    /// `repr` of the args, as the producer wrote it.
    pub argsrepr: Option<String>,
    /// `repr` of the kwargs, as the producer wrote it.
    pub kwargsrepr: Option<String>,
    /// The producer's node name.
    pub origin: Option<String>,
    /// All headers as received (including custom ones).
    pub headers: Dict,
    /// Message properties.
    pub properties: Properties,
    /// Delivery information.
    pub delivery_info: DeliveryInfo,
    /// Content type the body arrived in.
    pub content_type: String,
    /// Protocol version: 1 or 2.
    pub protocol: u8,
}

/// The names Celery's task request (`celery.app.task.Context`) has for itself, plus the
/// protocol headers it reads (`lang`, `task`, `argsrepr`, `kwargsrepr`, `compression`): a
/// message header of another name is a custom header (see [`TaskMessage::custom_headers`]).
const REQUEST_FIELDS: &[&str] = &[
    "args",
    "argsrepr",
    "callbacks",
    "called_directly",
    "chain",
    "children",
    "chord",
    "compression",
    "correlation_id",
    "delivery_info",
    "errbacks",
    "eta",
    "expires",
    "group",
    "group_index",
    "headers",
    "hostname",
    "id",
    "ignore_result",
    "is_eager",
    "kwargs",
    "kwargsrepr",
    "lang",
    "logfile",
    "loglevel",
    "origin",
    "parent_id",
    "properties",
    "replaced_task_nesting",
    "reply_to",
    "retries",
    "root_id",
    "shadow",
    "soft_time_limit",
    "stamped_headers",
    "stamps",
    "task",
    "taskset",
    "time_limit",
    "timelimit",
    "utc",
];

impl TaskMessage {
    /// A protocol-v2 message for the task `name` with id `id`, no arguments and nothing else
    /// set: for calling a task directly (tests, a task run in-process); set what it needs.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> TaskMessage {
        TaskMessage {
            id: id.into(),
            name: name.into(),
            args: Vec::new(),
            kwargs: Dict::new(),
            embed: Embed::default(),
            eta: None,
            expires: None,
            retries: 0,
            group: None,
            group_index: None,
            root_id: None,
            parent_id: None,
            timelimit: TimeLimits::default(),
            ignore_result: None,
            shadow: None,
            argsrepr: None,
            kwargsrepr: None,
            origin: None,
            headers: Dict::new(),
            properties: Properties::default(),
            delivery_info: DeliveryInfo::default(),
            content_type: String::new(),
            protocol: 2,
        }
    }

    /// The name for logs: the `shadow` name when set, else the task name.
    pub fn display_name(&self) -> &str {
        self.shadow.as_deref().unwrap_or(&self.name)
    }

    /// The headers the producer added beyond Celery's own, in message order: what a Python
    /// task sees as `self.request.headers` (e.g. `apply_async(headers=...)`, or beat's
    /// `periodic_task_name` and the periodic task's own headers). Empty when there are none,
    /// where Celery has `None`.
    pub fn custom_headers(&self) -> Dict {
        self.headers
            .iter()
            .filter(|(k, _)| !k.as_str().is_some_and(|k| REQUEST_FIELDS.contains(&k)))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: Dict) -> TaskMessage {
        TaskMessage {
            headers,
            content_type: "application/json".to_owned(),
            ..TaskMessage::new("id-1", "schedules.my_corn_minder")
        }
    }

    #[test]
    fn custom_headers_are_those_celerys_request_does_not_name() {
        // The headers of a message celery beat (DatabaseScheduler) sent for a periodic task
        // with headers '{"reminder": "standup"}'.
        let mut headers = Dict::new();
        for key in [
            "lang",
            "task",
            "id",
            "shadow",
            "eta",
            "expires",
            "group",
            "group_index",
            "retries",
            "timelimit",
            "root_id",
            "parent_id",
            "argsrepr",
            "kwargsrepr",
            "origin",
            "ignore_result",
            "replaced_task_nesting",
            "stamped_headers",
            "stamps",
        ] {
            headers.insert(key, Value::None);
        }
        headers.insert("reminder", "standup");
        headers.insert("periodic_task_name", "every2");
        headers.insert("celery_beat_task", true);
        let custom = message(headers).custom_headers();
        let mut want = Dict::new();
        want.insert("reminder", "standup");
        want.insert("periodic_task_name", "every2");
        want.insert("celery_beat_task", true);
        assert_eq!(custom, want);
    }

    #[test]
    fn a_plain_message_has_no_custom_headers() {
        let mut headers = Dict::new();
        headers.insert("task", "tasks.add");
        headers.insert("id", "id-1");
        headers.insert("hostname", "spoofed");
        assert!(message(headers).custom_headers().is_empty());
    }
}
