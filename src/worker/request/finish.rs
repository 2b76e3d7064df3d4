//! Finishing a task that ran: record its outcome (store it, count it in its chord), send
//! what it sets in motion (callbacks, errbacks, its retry), and settle its message through
//! the [ack policy](super::ack_policy).

use super::super::{canvas, retry, timeout, Shared};
use super::ack_policy::{self, Unsettled};
use super::run::Ran;
use crate::backend::meta::exception_meta;
use crate::backend::{ExtendedMeta, ResultRecord, State};
use crate::protocol::TaskMessage;
use crate::task::{retry_message, TaskError};
use crate::value::{saferepr, Value};
use crate::worker::lifecycle::{Failure, Revoked};
use crate::worker::revoke::RevokedBy;

/// Records how the task ended and settles its message.
pub(super) async fn finish(shared: &Shared, ran: Ran) {
    let Ran {
        mut unsettled,
        policy,
        request,
        def,
        outcome,
        runtime,
        ignore_result,
    } = ran;
    let m = &request.message;
    match outcome {
        Ok(value) => {
            // Celery's `request.children`: subtasks the task sent, then its callbacks.
            let mut children = request.take_children();
            if m.embed.callbacks.is_some() || m.embed.chain.is_some() {
                let sent = Box::pin(canvas::after_success(
                    &shared.producer,
                    shared.backend.as_ref(),
                    m,
                    &value,
                ))
                .await;
                match sent {
                    Ok(sent) => children.extend(sent),
                    Err(canvas::DispatchFailed {
                        error,
                        children: sent,
                    }) => {
                        // Celery's tracer: the exception fails the task (stored, errbacks).
                        children.extend(sent);
                        Box::pin(fail(shared, m, error, children, ignore_result)).await;
                        return policy.after_run(shared, &mut unsettled);
                    }
                }
            }
            shared.lifecycle.succeeded(m, &value, runtime);
            if policy.acks_with_queued_write(shared, m, ignore_result) {
                let repr = saferepr(&value, 1024);
                let stored = queue_store(shared, m, State::Success, value, None, children);
                policy.after_queued_write(shared, &mut unsettled);
                // Let the fetch that carries this write and ack go out first: logging and
                // freeing the message then overlap its round trip instead of delaying it.
                tokio::task::yield_now().await;
                tracing::info!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] succeeded in {runtime:.6}s: {repr}", m.display_name(), m.id);
                let task_id = m.id.clone();
                drop(request);
                if let Err(e) = stored.await {
                    tracing::error!(task_id = %task_id, task_name = %def.name, error = %e, "could not store task result");
                }
                return;
            }
            tracing::info!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] succeeded in {runtime:.6}s: {}", m.display_name(), m.id, saferepr(&value, 1024));
            let outcome = Outcome {
                state: State::Success,
                result: value,
                traceback: None,
                children,
            };
            Box::pin(record_outcome(shared, m, outcome, ignore_result)).await;
        }
        Err(mut err) if err.retry.is_some() => {
            let r = err.retry.take().map(|r| *r);
            if let Some(r) = r {
                match Box::pin(retry::send(&shared.producer, m, &r, ignore_result)).await {
                    Ok(()) => {
                        tracing::info!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] retry: {}", m.display_name(), m.id, retry_message(&r));
                        let tb = err.traceback_text(&m.name);
                        if !shared.lifecycle.is_empty() {
                            let exception = r
                                .exc
                                .as_ref()
                                .map_or_else(|| retry_message(&r), TaskError::repr);
                            let failure = Failure {
                                exception: &exception,
                                traceback: Some(&tb),
                            };
                            shared.lifecycle.retried(m, failure);
                        }
                        if !ignore_result {
                            let meta = r.exc.map_or(Value::None, failure_meta);
                            // Celery's retry is sent from inside the task: its result (the
                            // same id) is one of the task's children in the RETRY meta.
                            let retry_child = Value::List(vec![
                                Value::List(vec![Value::Str(m.id.clone()), Value::None]),
                                Value::None,
                            ]);
                            Box::pin(store_with_children(
                                shared,
                                m,
                                State::Retry,
                                meta,
                                Some(tb),
                                vec![retry_child],
                            ))
                            .await;
                        }
                    }
                    Err(e) => {
                        // Celery turns a failed retry publish into Reject(requeue=False).
                        tracing::error!(task_id = %m.id, task_name = %m.display_name(), error = %e, "could not send the retry; rejecting the message");
                        return policy.retry_not_sent(shared, &mut unsettled);
                    }
                }
            }
        }
        Err(err) if err.reject.is_some() => {
            let requeue = err.reject.unwrap_or(false);
            tracing::error!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] raised unexpected: {}", m.display_name(), m.id, err.repr());
            shared.lifecycle.rejected(m, requeue);
            if !requeue {
                // Celery 5.7: a task that rejects its message without requeue will never run
                // again, so it is stored as FAILURE (no traceback) and its errbacks run.
                let outcome = Outcome {
                    state: State::Failure,
                    result: failure_meta(err),
                    traceback: None,
                    children: Vec::new(),
                };
                Box::pin(record_outcome(shared, m, outcome, ignore_result)).await;
                Box::pin(canvas::after_failure(&shared.producer, m)).await;
            }
            return policy.task_rejected(shared, &mut unsettled, requeue);
        }
        Err(err) => {
            let children = request.take_children();
            Box::pin(fail(shared, m, err, children, ignore_result)).await;
        }
    }
    policy.after_run(shared, &mut unsettled);
}

/// A task that raised `err`: logged, recorded as FAILURE (with its traceback, unless a hard
/// time limit ended it), and its errbacks sent.
async fn fail(
    shared: &Shared,
    m: &TaskMessage,
    err: TaskError,
    children: Vec<Value>,
    ignore_result: bool,
) {
    // A hard time limit was logged when it fired and is stored without a traceback.
    let hard_timeout = timeout::is_hard_timeout(&err);
    if !hard_timeout {
        tracing::error!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] raised unexpected: {}", m.display_name(), m.id, err.repr());
    }
    let tb = (!hard_timeout).then(|| err.traceback_text(&m.name));
    if !shared.lifecycle.is_empty() {
        let exception = err.repr();
        let failure = Failure {
            exception: &exception,
            traceback: tb.as_deref(),
        };
        shared.lifecycle.failed(m, failure);
    }
    let meta = failure_meta(err);
    let outcome = Outcome {
        state: State::Failure,
        result: meta,
        traceback: tb,
        children,
    };
    Box::pin(record_outcome(shared, m, outcome, ignore_result)).await;
    Box::pin(canvas::after_failure(&shared.producer, m)).await;
}

/// Why a task is revoked.
pub(super) enum Revocation {
    /// Its id or a stamp of it was revoked before it ran.
    Revoked(RevokedBy),
    /// It was running and ended by a revoke with `terminate=True` (the signal).
    Terminated(i32),
}

/// A revoked task: stored as REVOKED (reason `revoked` or `terminated`, with the request's
/// meta) and acked, with `acks_late` too (Celery's `_announce_revoked`).
pub(super) async fn revoked(
    shared: &Shared,
    unsettled: &mut Unsettled,
    message: &TaskMessage,
    why: Revocation,
) {
    let (name, id) = (message.display_name(), &message.id);
    let (reason, event) = match &why {
        Revocation::Revoked(RevokedBy::Id) => {
            tracing::info!(task_id = %id, task_name = %name, "Discarding revoked task: {name}[{id}]");
            ("revoked", Revoked::default())
        }
        Revocation::Revoked(RevokedBy::Stamp { header, value }) => {
            let stamp = crate::value::py_repr(value);
            tracing::info!(task_id = %id, task_name = %name, "Discarding revoked task: {name}[{id}] (revoked by header: {{'{header}': {stamp}}})");
            ("revoked", Revoked::default())
        }
        Revocation::Terminated(signum) => {
            tracing::info!(task_id = %id, task_name = %name, signum, "Task {name}[{id}] terminated by a revoke (signal {signum})");
            let event = Revoked {
                terminated: true,
                signum: Some(*signum),
                expired: false,
            };
            ("terminated", event)
        }
    };
    let meta = exception_meta(
        "TaskRevokedError",
        "celery.exceptions",
        vec![Value::str(reason)],
    );
    store(shared, message, State::Revoked, meta, None).await;
    shared.lifecycle.revoked(message, event);
    ack_policy::discard_revoked(shared, unsettled);
}

/// An expired task: stored as REVOKED with reason `expired`, and acked (Celery's
/// `_announce_revoked`).
pub(super) async fn revoke_expired(
    shared: &Shared,
    unsettled: &mut Unsettled,
    message: &TaskMessage,
) {
    tracing::info!(task_id = %message.id, task_name = %message.display_name(), "Discarding revoked task: {}[{}] (expired)", message.display_name(), message.id);
    let meta = exception_meta(
        "TaskRevokedError",
        "celery.exceptions",
        vec![Value::str("expired")],
    );
    store(shared, message, State::Revoked, meta, None).await;
    shared.lifecycle.revoked(
        message,
        Revoked {
            expired: true,
            ..Revoked::default()
        },
    );
    ack_policy::discard_revoked(shared, unsettled);
}

/// The stored form of a task error (Celery's exception meta for non-pickle serializers).
pub(super) fn failure_meta(err: TaskError) -> Value {
    exception_meta(&err.exc_type, &err.exc_module, err.args)
}

/// How a task ended, as it is recorded.
struct Outcome {
    state: State,
    result: Value,
    traceback: Option<String>,
    children: Vec<Value>,
}

/// Records a finished task: as a chord part when it belongs to a chord (the part is counted
/// even when its own result is ignored), else as a stored result unless `ignore_result`.
async fn record_outcome(shared: &Shared, m: &TaskMessage, outcome: Outcome, ignore_result: bool) {
    let Outcome {
        state,
        result,
        traceback,
        children,
    } = outcome;
    if m.embed.chord.is_some() {
        let record = (!ignore_result)
            .then(|| result_record(shared, m, state, result.clone(), traceback, children));
        canvas::chord_part(
            &shared.producer,
            shared.backend.as_ref(),
            m,
            state,
            result,
            record,
            shared.settings.chord.join_timeout,
        )
        .await;
    } else if !ignore_result {
        store_with_children(shared, m, state, result, traceback, children).await;
    }
}

pub(super) async fn store(
    shared: &Shared,
    m: &TaskMessage,
    state: State,
    result: Value,
    traceback: Option<String>,
) {
    store_with_children(shared, m, state, result, traceback, Vec::new()).await;
}

/// Stores a result and waits until it is stored, logging a failure.
async fn store_with_children(
    shared: &Shared,
    m: &TaskMessage,
    state: State,
    result: Value,
    traceback: Option<String>,
    children: Vec<Value>,
) {
    if let Err(e) = queue_store(shared, m, state, result, traceback, children).await {
        tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "could not store task result");
    }
}

/// Hands a result to the backend; the returned future resolves once it is stored. A backend
/// that [orders writes before acks](crate::backend::ResultBackend::orders_writes_before_acks)
/// has queued the write by the time this returns.
fn queue_store<'a>(
    shared: &'a Shared,
    m: &TaskMessage,
    state: State,
    result: Value,
    traceback: Option<String>,
    children: Vec<Value>,
) -> futures::future::BoxFuture<'a, Result<(), crate::backend::BackendError>> {
    shared
        .backend
        .store(result_record(shared, m, state, result, traceback, children))
}

/// The result to store for `m`, with the extended fields when `result_extended` is on.
fn result_record(
    shared: &Shared,
    m: &TaskMessage,
    state: State,
    result: Value,
    traceback: Option<String>,
    children: Vec<Value>,
) -> ResultRecord {
    let extended = shared.settings.result_extended.then(|| ExtendedMeta {
        name: Some(m.name.clone()),
        args: Value::List(m.args.clone()),
        kwargs: Value::Dict(m.kwargs.clone()),
        worker: Some(shared.settings.hostname.clone()),
        retries: Some(m.retries),
        queue: Some(m.delivery_info.routing_key.clone()).filter(|q| !q.is_empty()),
        argsrepr: m.argsrepr.clone(),
        kwargsrepr: m.kwargsrepr.clone(),
        periodic_task_name: m
            .headers
            .get("periodic_task_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
    });
    ResultRecord {
        task_id: m.id.clone(),
        state,
        result,
        traceback,
        children,
        group_id: m.group.clone(),
        parent_id: m.parent_id.clone(),
        extended,
        reply_to: m.properties.reply_to.clone(),
        correlation_id: m.properties.correlation_id.clone(),
    }
}
