//! What a running task can know about its request (Celery's `self.request`).

use std::sync::Arc;

use super::retry::{Retry, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_DELAY};
use super::TaskOptions;
use crate::protocol::{DeliveryInfo, TaskMessage};
use crate::value::{DateTime, Dict, Value};

/// The request being executed: the decoded message plus the worker's name.
#[derive(Debug)]
pub struct Request {
    /// The message as received.
    pub message: TaskMessage,
    /// The worker's node name (`w1@host`).
    pub hostname: String,
}

impl Request {
    /// Task id.
    pub fn id(&self) -> &str {
        &self.message.id
    }

    /// Task name.
    pub fn task(&self) -> &str {
        &self.message.name
    }

    /// Positional arguments as received.
    pub fn args(&self) -> &[Value] {
        &self.message.args
    }

    /// Keyword arguments as received.
    pub fn kwargs(&self) -> &Dict {
        &self.message.kwargs
    }

    /// How many times this task has been retried.
    pub fn retries(&self) -> i64 {
        self.message.retries
    }

    /// Id of the first task in the workflow.
    pub fn root_id(&self) -> Option<&str> {
        self.message.root_id.as_deref()
    }

    /// Id of the task that sent this one.
    pub fn parent_id(&self) -> Option<&str> {
        self.message.parent_id.as_deref()
    }

    /// Group id, for group members.
    pub fn group(&self) -> Option<&str> {
        self.message.group.as_deref()
    }

    /// The ETA, if the task was scheduled.
    pub fn eta(&self) -> Option<&DateTime> {
        self.message.eta.as_ref()
    }

    /// All message headers, including custom ones (e.g. beat's `periodic_task_name`).
    pub fn headers(&self) -> &Dict {
        &self.message.headers
    }

    /// Exchange, routing key and redelivery flag.
    pub fn delivery_info(&self) -> &DeliveryInfo {
        &self.message.delivery_info
    }

    /// The worker's node name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }
}

/// Handed to a task that asks for it (a parameter of type `Context`); cheap to clone.
#[derive(Debug, Clone)]
pub struct Context {
    request: Arc<Request>,
    max_retries: Option<i64>,
    default_retry_delay: f64,
}

impl Context {
    /// Wraps a request, with Celery's default retry settings.
    pub fn new(request: Arc<Request>) -> Self {
        Context { request, max_retries: Some(DEFAULT_MAX_RETRIES), default_retry_delay: DEFAULT_RETRY_DELAY }
    }

    /// Wraps a request for a task with these options.
    pub fn for_task(request: Arc<Request>, options: &TaskOptions) -> Self {
        Context {
            request,
            max_retries: options.max_retries.unwrap_or(Some(DEFAULT_MAX_RETRIES)),
            default_retry_delay: options.default_retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
        }
    }

    /// Celery's `self.retry(...)`: build it, then return it as the task's error:
    /// `return Err(ctx.retry().countdown(5.0).exc(e).into())`.
    pub fn retry(&self) -> Retry<'_> {
        Retry::new(self)
    }

    /// The task's `max_retries` (`None`: unlimited).
    pub fn max_retries(&self) -> Option<i64> {
        self.max_retries
    }

    /// The task's `default_retry_delay` in seconds.
    pub fn default_retry_delay(&self) -> f64 {
        self.default_retry_delay
    }

    /// The request (Celery's `self.request`).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Shortcut for `request().id()`.
    pub fn id(&self) -> &str {
        self.request.id()
    }
}
