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

impl TaskMessage {
    /// The name for logs: the `shadow` name when set, else the task name.
    pub fn display_name(&self) -> &str {
        self.shadow.as_deref().unwrap_or(&self.name)
    }
}
