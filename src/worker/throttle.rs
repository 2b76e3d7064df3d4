//! Per-task-type rate limiting (Celery's `consumer.task_buckets`): a request of a
//! rate-limited task waits for a token before it may run, in arrival order, without holding
//! a concurrency slot and without holding up other requests. Like Celery 5.5, the waiting
//! message stays unacknowledged and keeps its prefetch slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;

use super::rate_limit::{parse_rate, RateLimitError, TokenBucket};
use crate::task::Registry;

/// A task's rate limit could not be read.
#[derive(Debug, thiserror::Error)]
#[error("task {task}: {source}")]
pub struct ThrottleError {
    /// The task name.
    pub task: String,
    /// What is wrong with its rate limit.
    pub source: RateLimitError,
}

/// The token buckets of the rate-limited task types.
#[derive(Debug, Default)]
pub struct Throttle {
    /// Changed at runtime by the `rate_limit` remote control command.
    buckets: std::sync::RwLock<HashMap<String, Arc<Mutex<TokenBucket>>>>,
}

impl Throttle {
    /// One bucket per registered task with a rate limit: its own `rate_limit`, else
    /// `default` (`task_default_rate_limit`). `disabled` (`worker_disable_rate_limits`) turns
    /// every limit off.
    pub fn new(
        registry: &Registry,
        default: Option<&str>,
        disabled: bool,
    ) -> Result<Throttle, ThrottleError> {
        let mut buckets = HashMap::new();
        if disabled {
            return Ok(Throttle::default());
        }
        let now = Instant::now();
        for name in registry.names() {
            let Some(def) = registry.get(name) else {
                continue;
            };
            let Some(text) = def.options.rate_limit.as_deref().or(default) else {
                continue;
            };
            let rate = parse_rate(text).map_err(|source| ThrottleError {
                task: name.to_owned(),
                source,
            })?;
            if let Some(rate) = rate {
                buckets.insert(
                    name.to_owned(),
                    Arc::new(Mutex::new(TokenBucket::new(rate, now))),
                );
            }
        }
        Ok(Throttle {
            buckets: std::sync::RwLock::new(buckets),
        })
    }

    fn bucket(&self, task: &str) -> Option<Arc<Mutex<TokenBucket>>> {
        let buckets = self
            .buckets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.is_empty() {
            return None;
        }
        buckets.get(task).cloned()
    }

    /// True if `task` is rate limited.
    pub fn limits(&self, task: &str) -> bool {
        self.bucket(task).is_some()
    }

    /// Sets `task`'s rate (tasks per second; `None` lifts the limit), as the `rate_limit`
    /// remote control command does: a new bucket, full, for the requests that come next.
    pub fn set_rate(&self, task: &str, rate: Option<f64>) {
        let mut buckets = self
            .buckets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match rate {
            Some(rate) => {
                buckets.insert(
                    task.to_owned(),
                    Arc::new(Mutex::new(TokenBucket::new(rate, Instant::now()))),
                );
            }
            None => {
                buckets.remove(task);
            }
        }
    }

    #[cfg(test)]
    fn limited(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .buckets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Waits until a request of `task` may run (at once for tasks without a limit). Waiters
    /// of one task are served first come, first served (the lock is fair), as Celery keeps
    /// a bucket's requests in order.
    pub async fn acquire(&self, task: &str) {
        let Some(bucket) = self.bucket(task) else {
            return;
        };
        let mut bucket = bucket.lock().await;
        loop {
            let now = Instant::now();
            if bucket.try_take(now) {
                return;
            }
            let wait = bucket.expected_wait(now);
            tracing::debug!(task_name = %task, "rate limited: waiting {:.3}s for a token", wait.as_secs_f64());
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::task::{Handler, TaskDef, TaskOptions};

    fn registry(limits: &[(&str, Option<&str>)]) -> Registry {
        let mut r = Registry::default();
        for (name, limit) in limits {
            r.insert(TaskDef {
                name: (*name).to_owned(),
                handler: Handler::Inline(Arc::new(|_, _, _| Ok(crate::Value::None))),
                options: TaskOptions {
                    rate_limit: limit.map(str::to_owned),
                    ..TaskOptions::default()
                },
                requires: Vec::new(),
            });
        }
        r
    }

    #[test]
    fn own_limit_then_default_then_disabled() {
        let r = registry(&[("a", Some("10/s")), ("b", None), ("c", Some("0"))]);
        let t = Throttle::new(&r, None, false).unwrap();
        assert_eq!(t.limited(), ["a"]);
        let t = Throttle::new(&r, Some("1/m"), false).unwrap();
        assert_eq!(t.limited(), ["a", "b"]);
        assert!(Throttle::new(&r, Some("1/m"), true)
            .unwrap()
            .limited()
            .is_empty());
        t.set_rate("c", Some(2.0));
        t.set_rate("a", None);
        assert_eq!(t.limited(), ["b", "c"]);
        let bad = registry(&[("x", Some("ten/s"))]);
        assert_eq!(Throttle::new(&bad, None, false).unwrap_err().task, "x");
    }

    #[tokio::test]
    async fn waiters_are_spaced_by_the_rate() {
        let t = Throttle::new(&registry(&[("a", Some("20/s"))]), None, false).unwrap();
        let start = Instant::now();
        for _ in 0..4 {
            t.acquire("a").await;
        }
        // One token at once, then one every 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(140),
            "{:?}",
            start.elapsed()
        );
        let start = Instant::now();
        t.acquire("unlimited").await;
        assert!(start.elapsed() < Duration::from_millis(20));
    }
}
