//! What a running task can know about its request (Celery's `self.request`).

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::retry::{Retry, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_DELAY};
use super::TaskOptions;
use futures::future::Either;

use super::subtasks::TaskEnv;
use super::SoftLimit;
use crate::protocol::{DeliveryInfo, TaskMessage};
use crate::state::StateMap;
use crate::value::{DateTime, Dict, Value};

/// The request being executed: the decoded message plus the worker's name.
#[derive(Debug)]
pub struct Request {
    /// The message as received.
    pub message: TaskMessage,
    /// The worker's node name (`w1@host`).
    pub hostname: String,
    /// The subtasks sent from the task (Celery's `request.children`), as `as_tuple()`s: the
    /// stored result's `children`.
    children: Mutex<Vec<Value>>,
}

impl Request {
    /// The request for `message`, run by the worker `hostname`.
    pub fn new(message: TaskMessage, hostname: String) -> Request {
        Request {
            message,
            hostname,
            children: Mutex::new(Vec::new()),
        }
    }

    /// Records a subtask sent from the task (Celery's `add_trail`).
    pub(crate) fn add_child(&self, child: Value) {
        if let Ok(mut children) = self.children.lock() {
            children.push(child);
        }
    }

    /// Takes the subtasks recorded so far, in the order they were sent.
    pub fn take_children(&self) -> Vec<Value> {
        self.children
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

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

    /// The headers the producer added beyond Celery's own (Celery's `self.request.headers`):
    /// e.g. beat's `periodic_task_name` and a periodic task's own headers.
    pub fn custom_headers(&self) -> Dict {
        self.message.custom_headers()
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
    /// Set by the worker when the request has a soft time limit.
    soft_limit: Option<Arc<SoftLimit>>,
    /// The app's state and the worker's producer, set by the worker.
    env: Option<Arc<TaskEnv>>,
}

impl Context {
    /// Wraps a request, with Celery's default retry settings.
    pub fn new(request: Arc<Request>) -> Self {
        Context {
            request,
            max_retries: Some(DEFAULT_MAX_RETRIES),
            default_retry_delay: DEFAULT_RETRY_DELAY,
            soft_limit: None,
            env: None,
        }
    }

    /// Wraps a request for a task with these options.
    pub fn for_task(request: Arc<Request>, options: &TaskOptions) -> Self {
        Context {
            request,
            max_retries: options.max_retries.unwrap_or(Some(DEFAULT_MAX_RETRIES)),
            default_retry_delay: options.default_retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
            soft_limit: None,
            env: None,
        }
    }

    /// The same context with the app's state and the producer subtasks are sent with (the
    /// worker does this when it runs the task).
    pub fn with_env(mut self, env: Arc<TaskEnv>) -> Self {
        self.env = Some(env);
        self
    }

    /// The same context with `state` and no producer (for calling a task function in a test).
    pub fn with_state(self, state: StateMap) -> Self {
        self.with_env(Arc::new(TaskEnv::new(Arc::new(state), None)))
    }

    /// A clone of the app's state value of type `T` (what a `State<T>` parameter receives).
    pub fn state<T: Clone + 'static>(&self) -> Option<T> {
        self.env.as_ref()?.state.get::<T>().cloned()
    }

    pub(super) fn env(&self) -> Option<&TaskEnv> {
        self.env.as_deref()
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

    /// The same context, told about its soft time limit through `signal` (the worker does
    /// this when it runs the task).
    pub fn with_soft_limit(mut self, signal: Arc<SoftLimit>) -> Self {
        self.soft_limit = Some(signal);
        self
    }

    /// Resolves when the task's soft time limit passes (never, without one): where Celery
    /// raises `SoftTimeLimitExceeded` inside the task. `select!` on it to clean up and return;
    /// `Err(TaskError::soft_time_limit_exceeded())` fails the task as Celery's uncaught
    /// exception does.
    ///
    /// Calling it tells the worker that the task handles its soft limit: the task is then not
    /// ended when the limit passes (only its hard limit still ends it). A task that never
    /// asks is ended at the soft limit as FAILURE `SoftTimeLimitExceeded()`.
    pub fn soft_time_limit_exceeded(&self) -> impl Future<Output = ()> + Send + 'static {
        match &self.soft_limit {
            Some(signal) => Either::Left(signal.exceeded()),
            None => Either::Right(std::future::pending()),
        }
    }

    /// True once the soft time limit has passed: for blocking code, to check between steps.
    /// Like [`Context::soft_time_limit_exceeded`], calling it tells the worker that the task
    /// handles its soft limit itself.
    pub fn is_soft_time_limit_exceeded(&self) -> bool {
        self.soft_limit
            .as_ref()
            .is_some_and(|signal| signal.is_exceeded())
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
