//! Which time limits apply to a request: the message's `timelimit` header `[hard, soft]`,
//! else the task's `time_limit` / `soft_time_limit`, else the worker's (`--time-limit`,
//! `--soft-time-limit`, `task_time_limit`, `task_soft_time_limit`). Each falls back on its
//! own, and 0 means "not set" (Celery's `header or task or pool default`).

use crate::protocol::TaskMessage;
use crate::task::{Seconds, TaskOptions};
use crate::value::Value;

/// Hard and soft limits, each `None` when not set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeLimits {
    /// Hard limit: the task is ended and fails with `TimeLimitExceeded(hard)`.
    pub hard: Option<Seconds>,
    /// Soft limit: the task is told (and ended if it does not listen).
    pub soft: Option<Seconds>,
}

impl TimeLimits {
    /// True if neither limit is set.
    pub fn is_none(&self) -> bool {
        self.hard.is_none() && self.soft.is_none()
    }
}

/// The limits for `message` of a task with `options` on a worker with `defaults`.
pub fn resolve(message: &TaskMessage, options: &TaskOptions, defaults: &TimeLimits) -> TimeLimits {
    let (hard, soft) = from_header(message);
    let pick =
        |candidates: [Option<Seconds>; 3]| candidates.into_iter().flatten().find(|s| s.is_set());
    TimeLimits {
        hard: pick([hard, options.time_limit, defaults.hard]),
        soft: pick([soft, options.soft_time_limit, defaults.soft]),
    }
}

/// `[hard, soft]` from the message, kept as the `int`/`float` the producer wrote (the raw
/// header; v1 body fields are among the headers too), else the decoded floats.
fn from_header(message: &TaskMessage) -> (Option<Seconds>, Option<Seconds>) {
    if let Some(items) = message.headers.get("timelimit").and_then(Value::as_seq) {
        let at = |i: usize| items.get(i).and_then(Seconds::from_value);
        return (at(0), at(1));
    }
    let t = message.timelimit;
    (t.hard.map(Seconds::Float), t.soft.map(Seconds::Float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TimeLimits as HeaderLimits;
    use crate::value::Dict;

    fn message(timelimit: Option<Value>) -> TaskMessage {
        let mut headers = Dict::new();
        let mut decoded = HeaderLimits::default();
        if let Some(v) = timelimit {
            if let Some(items) = v.as_seq() {
                let num = |i: usize| {
                    items
                        .get(i)
                        .and_then(Seconds::from_value)
                        .map(Seconds::as_f64)
                };
                decoded = HeaderLimits {
                    hard: num(0),
                    soft: num(1),
                };
            }
            headers.insert("timelimit", v);
        }
        TaskMessage {
            timelimit: decoded,
            headers,
            content_type: "application/json".into(),
            ..TaskMessage::new("id", "tasks.sleep")
        }
    }

    fn options(hard: Option<Seconds>, soft: Option<Seconds>) -> TaskOptions {
        TaskOptions {
            time_limit: hard,
            soft_time_limit: soft,
            ..TaskOptions::default()
        }
    }

    const GLOBAL: TimeLimits = TimeLimits {
        hard: Some(Seconds::Float(100.0)),
        soft: Some(Seconds::Float(50.0)),
    };

    #[test]
    fn header_beats_task_beats_global() {
        let header = Value::List(vec![Value::Int(10), Value::Float(5.5)]);
        let task = options(Some(Seconds::Int(20)), Some(Seconds::Int(15)));
        let got = resolve(&message(Some(header)), &task, &GLOBAL);
        assert_eq!(
            got,
            TimeLimits {
                hard: Some(Seconds::Int(10)),
                soft: Some(Seconds::Float(5.5))
            }
        );
        let got = resolve(&message(None), &task, &GLOBAL);
        assert_eq!(
            got,
            TimeLimits {
                hard: Some(Seconds::Int(20)),
                soft: Some(Seconds::Int(15))
            }
        );
        let got = resolve(&message(None), &TaskOptions::default(), &GLOBAL);
        assert_eq!(got, GLOBAL);
        assert!(resolve(
            &message(None),
            &TaskOptions::default(),
            &TimeLimits::default()
        )
        .is_none());
    }

    #[test]
    fn each_limit_falls_back_on_its_own_and_zero_is_unset() {
        let header = Value::List(vec![Value::None, Value::Int(3)]);
        let task = options(Some(Seconds::Int(20)), None);
        let got = resolve(&message(Some(header)), &task, &TimeLimits::default());
        assert_eq!(
            got,
            TimeLimits {
                hard: Some(Seconds::Int(20)),
                soft: Some(Seconds::Int(3))
            }
        );
        let header = Value::List(vec![Value::Int(0), Value::Int(0)]);
        let got = resolve(&message(Some(header)), &TaskOptions::default(), &GLOBAL);
        assert_eq!(got, GLOBAL);
    }
}
