//! Sending subtasks from inside a task, through the worker's own producer (no globals): the
//! message names the running task as its parent and shares its root, and the task's stored
//! result lists it in `children`, as Celery does for tasks sent from a task.

use std::sync::Arc;

use super::Context;
use crate::broker::BrokerError;
use crate::producer::{AsyncResult, Producer, SendOptions};
use crate::protocol::Signature;
use crate::state::StateMap;
use crate::value::{Dict, Value};

/// What the worker gives every task it runs: the app's state and the producer that
/// publishes subtasks (the one the worker publishes retries and canvas steps with).
pub struct TaskEnv {
    /// The app's state.
    pub state: Arc<StateMap>,
    /// The worker's producer (`None`: a context built outside a worker cannot send).
    pub producer: Option<Producer>,
    /// The runtime the producer's connection lives on, for blocking tasks.
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for TaskEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEnv")
            .field("state", &self.state)
            .field("producer", &self.producer.as_ref().map(Producer::origin))
            .finish()
    }
}

impl TaskEnv {
    /// The environment of tasks of an app with `state`, sending through `producer`. Call it
    /// on the worker's runtime: blocking tasks send through it.
    pub fn new(state: Arc<StateMap>, producer: Option<Producer>) -> TaskEnv {
        TaskEnv {
            state,
            producer,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

/// Why a subtask could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The context does not come from a worker (a task function called directly).
    #[error("this task context has no producer: subtasks can only be sent from a worker")]
    NoProducer,
    /// A canvas (group, chain, chord) was given where a task signature is expected.
    #[error("only task signatures can be applied from a task, not a {0}")]
    NotATask(String),
    /// `*_blocking` was called on the async runtime (an async or inline task): use the async
    /// method there.
    #[error("the blocking send was called on the async runtime; await send_task/apply instead")]
    OnRuntime,
    /// The broker refused or could not be reached.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Context {
    /// Celery's `app.send_task(name, args, kwargs, **options)` from inside a task: publishes
    /// through the worker's producer with `parent_id` this task and `root_id` this task's root
    /// (unless `options` set them), and records the subtask in this task's `children`.
    pub async fn send_task(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Dict,
        options: SendOptions,
    ) -> Result<AsyncResult, SendError> {
        let producer = self.producer()?;
        let options = self.as_parent(options);
        let result = producer.send_task(name, args, kwargs, options).await?;
        self.request().add_child(as_tuple(result.id()));
        Ok(result)
    }

    /// Celery's `signature.apply_async()` from inside a task, for a task signature (its
    /// arguments and options as given), as [`Context::send_task`].
    pub async fn apply(&self, sig: &Signature) -> Result<AsyncResult, SendError> {
        if let Some(kind) = &sig.subtask_type {
            return Err(SendError::NotATask(kind.clone()));
        }
        let (args, kwargs) = sig.merged_arguments(Vec::new(), Dict::new());
        let options = SendOptions::from_signature_options(&sig.options);
        self.send_task(&sig.task, args, kwargs, options).await
    }

    /// [`Context::send_task`] for a blocking task (a plain `fn` run on its own thread).
    pub fn send_task_blocking(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Dict,
        options: SendOptions,
    ) -> Result<AsyncResult, SendError> {
        self.block_on(self.send_task(name, args, kwargs, options))
    }

    /// [`Context::apply`] for a blocking task.
    pub fn apply_blocking(&self, sig: &Signature) -> Result<AsyncResult, SendError> {
        self.block_on(self.apply(sig))
    }

    fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, SendError>>,
    ) -> Result<T, SendError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(SendError::OnRuntime);
        }
        let runtime = self
            .env()
            .and_then(|e| e.runtime.as_ref())
            .ok_or(SendError::NoProducer)?;
        runtime.block_on(fut)
    }

    fn producer(&self) -> Result<&Producer, SendError> {
        self.env()
            .and_then(|e| e.producer.as_ref())
            .ok_or(SendError::NoProducer)
    }

    /// Celery's `send_task` with a current task: parent this task, root its root.
    fn as_parent(&self, mut options: SendOptions) -> SendOptions {
        let m = &self.request().message;
        if options.parent_id.is_none() {
            options.parent_id = Some(m.id.clone());
        }
        if options.root_id.is_none() {
            options.root_id = Some(m.root_id.clone().unwrap_or_else(|| m.id.clone()));
        }
        options
    }
}

/// `AsyncResult.as_tuple()` of a result without parent: `((id, None), None)`.
fn as_tuple(id: &str) -> Value {
    Value::List(vec![
        Value::List(vec![Value::str(id), Value::None]),
        Value::None,
    ])
}
