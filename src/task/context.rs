//! What a running task can know about its request (Celery's `self.request`).

use std::sync::Arc;

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
}

impl Context {
    /// Wraps a request.
    pub fn new(request: Arc<Request>) -> Self {
        Context { request }
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
