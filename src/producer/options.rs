//! Calling options, as `apply_async` takes them.

use crate::protocol::Signature;
use crate::value::{DateTime, Dict, Value};

/// Celery's `apply_async` options. Unset options take Celery's defaults.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// `task_id` (a new uuid4 when unset).
    pub task_id: Option<String>,
    /// `queue`: publish to this queue through the anonymous exchange.
    pub queue: Option<String>,
    /// `exchange`.
    pub exchange: Option<String>,
    /// `routing_key`.
    pub routing_key: Option<String>,
    /// `priority` (0-9; on Redis 0 is served first).
    pub priority: Option<u8>,
    /// `countdown` in seconds (0 means now: no ETA, as in Celery).
    pub countdown: Option<f64>,
    /// `eta`.
    pub eta: Option<DateTime>,
    /// `expires` as seconds from now.
    pub expires_in: Option<f64>,
    /// `expires` as a point in time.
    pub expires_at: Option<DateTime>,
    /// Extra message headers.
    pub headers: Dict,
    /// `time_limit` (hard).
    pub time_limit: Option<f64>,
    /// `soft_time_limit`.
    pub soft_time_limit: Option<f64>,
    /// `link`: applied with the result on success.
    pub link: Vec<Signature>,
    /// `link_error`: applied on failure.
    pub link_error: Vec<Signature>,
    /// `ignore_result`.
    pub ignore_result: bool,
    /// `parent_id`.
    pub parent_id: Option<String>,
    /// `root_id`.
    pub root_id: Option<String>,
    /// `group_id`.
    pub group_id: Option<String>,
    /// `group_index`.
    pub group_index: Option<i64>,
    /// The rest of a chain (reversed list of signatures).
    pub chain: Option<Value>,
    /// The chord body signature.
    pub chord: Option<Value>,
    /// `shadow` name.
    pub shadow: Option<String>,
    /// Retry count (set by retries).
    pub retries: i64,
    /// `reply_to` (the producer's own when unset).
    pub reply_to: Option<String>,
    /// `origin` (the producer's node name when unset).
    pub origin: Option<String>,
    /// `replaced_task_nesting`.
    pub replaced_task_nesting: i64,
}

impl SendOptions {
    /// Reads a signature's `options` dict.
    pub fn from_signature_options(d: &Dict) -> SendOptions {
        let s = |k: &str| {
            d.get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let f = |k: &str| match d.get(k) {
            Some(Value::Int(i)) => Some(*i as f64),
            Some(Value::Float(x)) => Some(*x),
            _ => None,
        };
        let sigs = |k: &str| d.get(k).map(Signature::all_in).unwrap_or_default();
        let (expires_in, expires_at) = match d.get("expires") {
            Some(Value::Int(i)) => (Some(*i as f64), None),
            Some(Value::Float(x)) => (Some(*x), None),
            Some(Value::Str(t)) => (None, DateTime::parse_iso(t).ok()),
            Some(Value::DateTime(t)) => (None, Some(DateTime::clone(t))),
            _ => (None, None),
        };
        SendOptions {
            task_id: s("task_id"),
            queue: s("queue"),
            exchange: s("exchange"),
            routing_key: s("routing_key"),
            priority: d
                .get("priority")
                .and_then(Value::as_i64)
                .map(|p| p.clamp(0, 255) as u8),
            countdown: f("countdown"),
            eta: match d.get("eta") {
                Some(Value::Str(t)) => DateTime::parse_iso(t).ok(),
                Some(Value::DateTime(t)) => Some(DateTime::clone(t)),
                _ => None,
            },
            expires_in,
            expires_at,
            headers: d
                .get("headers")
                .and_then(Value::as_dict)
                .cloned()
                .unwrap_or_default(),
            time_limit: f("time_limit"),
            soft_time_limit: f("soft_time_limit"),
            link: sigs("link"),
            link_error: sigs("link_error"),
            ignore_result: d.get("ignore_result").is_some_and(Value::truthy),
            parent_id: s("parent_id"),
            root_id: s("root_id"),
            group_id: s("group_id"),
            group_index: d.get("group_index").and_then(Value::as_i64),
            chain: d.get("chain").filter(|v| !v.is_none()).cloned(),
            chord: d.get("chord").filter(|v| !v.is_none()).cloned(),
            shadow: s("shadow"),
            retries: d.get("retries").and_then(Value::as_i64).unwrap_or(0),
            reply_to: s("reply_to"),
            origin: s("origin"),
            replaced_task_nesting: d
                .get("replaced_task_nesting")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        }
    }

    /// These options with every option set in `other` taking its place (Celery's
    /// `Signature._merge`: `{**sig.options, **options}`; `None` options in `other` do not
    /// override), except `group_id`, which Celery keeps immutable: a signature frozen into a
    /// group keeps its own (since Celery 5.6 a group nested in a chord header has an id of its
    /// own while its tasks carry the chord's).
    pub fn overridden_by(mut self, other: SendOptions) -> SendOptions {
        if self.group_id.is_none() {
            self.group_id = other.group_id.clone();
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            task_id,
            queue,
            exchange,
            routing_key,
            priority,
            countdown,
            eta,
            expires_in,
            expires_at,
            time_limit,
            soft_time_limit,
            parent_id,
            root_id,
            group_index,
            chain,
            chord,
            shadow,
            reply_to,
            origin
        );
        if !other.headers.is_empty() {
            self.headers = other.headers;
        }
        if !other.link.is_empty() {
            self.link = other.link;
        }
        if !other.link_error.is_empty() {
            self.link_error = other.link_error;
        }
        self.ignore_result |= other.ignore_result;
        if other.retries != 0 {
            self.retries = other.retries;
        }
        if other.replaced_task_nesting != 0 {
            self.replaced_task_nesting = other.replaced_task_nesting;
        }
        self
    }
}
