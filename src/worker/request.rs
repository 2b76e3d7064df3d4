//! One delivery, end to end: decode, check, hold until its ETA, run, store, settle.

use std::sync::Arc;
use std::time::Instant;

use super::{canvas, eta, forward, retry, slots, timeout, Shared};
use crate::backend::meta::exception_meta;
use crate::backend::{ExtendedMeta, ResultRecord, State};
use crate::broker::{Delivery, PrefetchPermit};
use crate::protocol::{decode_task, DecodeError, Disposition, TaskMessage};
use crate::task::{retry_message, Context, Request, TaskError};
use crate::value::{saferepr, Value};

/// A delivery not yet settled with the broker. Settling frees its prefetch slot.
pub(super) struct Unsettled {
    tag: String,
    permit: Option<PrefetchPermit>,
    /// The window was widened for it (held for its ETA): narrowed again when it is settled.
    widened: bool,
    settled: bool,
    /// Its place in the registry of held requests (remote control); leaves with it.
    held: Option<super::requests::Held>,
}

impl Unsettled {
    pub(super) fn ack(&mut self, shared: &Shared) {
        self.settle(shared, false, false);
    }

    pub(super) fn reject(&mut self, shared: &Shared, requeue: bool) {
        self.settle(shared, true, requeue);
    }

    fn settle(&mut self, shared: &Shared, reject: bool, requeue: bool) {
        if self.settled {
            return;
        }
        if reject {
            shared.broker.reject(&self.tag, requeue);
        } else {
            shared.broker.ack(&self.tag);
        }
        shared.inflight.remove(&self.tag);
        if let Some(held) = &self.held {
            held.acknowledged();
        }
        if self.widened {
            // Before the slot is freed, so that the slot itself can pay the decrement.
            shared.qos.decrement_eventually();
            self.widened = false;
        }
        self.permit = None;
        self.settled = true;
    }

    /// Widens the prefetch window by one for this message (Celery's QoS increment while an
    /// ETA task waits), so that a held message does not fill the window; narrowed again once
    /// the message is settled.
    fn widen_window(&mut self, shared: &Shared) {
        if !self.widened {
            shared.qos.increment_eventually();
            self.widened = true;
        }
    }
}

/// Handles one delivery. Returns without settling only at shutdown, leaving the tag in the
/// in-flight set so the worker gives the message back.
pub(super) async fn handle(shared: Arc<Shared>, delivery: Delivery) {
    let Delivery {
        mut raw,
        tag,
        permit,
        ..
    } = delivery;
    let mut unsettled = Unsettled {
        tag,
        permit,
        widened: false,
        settled: false,
        held: None,
    };
    let message = match decode_task(&mut raw, &shared.settings.accept, |n| {
        shared.registry.contains(n)
    }) {
        Ok(m) => m,
        Err(DecodeError::UnknownTask { id, name }) if shared.settings.forward_unknown.is_some() => {
            return Box::pin(forward::unknown(&shared, &mut unsettled, &raw, id, name)).await;
        }
        Err(e) => {
            let reply = &raw.properties;
            return Box::pin(refuse(&shared, &mut unsettled, e, reply)).await;
        }
    };
    // The body is decoded: its bytes need not wait with the message (an ETA may be far off).
    drop(raw);
    let Some(def) = shared.registry.get(&message.name).cloned() else {
        return unsettled.reject(&shared, false);
    };
    tracing::info!(task_id = %message.id, task_name = %message.display_name(), "Task {}[{}] received", message.display_name(), message.id);

    let wait_for_eta = message.eta.as_ref().and_then(eta::until);
    unsettled.held = Some(shared.requests.admit(&message, wait_for_eta.is_some()));
    if let Some(eta_dt) = &message.eta {
        if let Some(wait) = eta::until(eta_dt) {
            // Celery's QoS increment while an ETA task waits: it does not fill the window.
            unsettled.widen_window(&shared);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.shutdown.cancelled() => return,
            }
            if let Some(held) = &unsettled.held {
                held.reserved();
            }
        }
    }
    // The rest is a future of several kilobytes: allocated only now, so that a message held
    // for its ETA costs no more than its decoded form and a timer.
    Box::pin(run(shared, unsettled, message, def)).await
}

/// A received message whose ETA has come: waits for a rate-limit token, a result-buffer
/// place and a slot, runs the task, stores its result and settles the message.
async fn run(
    shared: Arc<Shared>,
    mut unsettled: Unsettled,
    message: TaskMessage,
    def: Arc<crate::task::TaskDef>,
) {
    if shared.throttle.limits(&def.name) {
        // Wait for a token, unacked and keeping the prefetch slot (as Celery 5.5 does).
        tokio::select! {
            _ = shared.throttle.acquire(&def.name) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
    if message.expires.as_ref().is_some_and(eta::has_passed) {
        return Box::pin(revoke_expired(&shared, &mut unsettled, &message)).await;
    }

    // While the backend cannot store results, no task starts until it has room again: the
    // worker stops taking on work (and, with early ack, acking it) instead of piling up
    // results in memory.
    tokio::select! {
        _ = shared.backend.wait_for_room() => {}
        _ = shared.shutdown.cancelled() => return,
    }
    let limits = super::control::time_limits(&shared, &message, &def);
    let slot = tokio::select! {
        s = shared.slots.acquire(&message.id, message.display_name(), slots::run_kind(&def.handler), limits) => s,
        _ = shared.shutdown.cancelled() => return,
    };
    let Some(slot) = slot else { return };
    if let Some(held) = &unsettled.held {
        held.started();
    }
    let acks_late = def.options.acks_late.unwrap_or(shared.settings.acks_late);
    if !acks_late {
        unsettled.ack(&shared);
    }
    // Celery 5.6+: the message's own `ignore_result` wins over the task's, both ways.
    let ignore_result = message.ignore_result.unwrap_or_else(|| {
        def.options
            .ignore_result
            .unwrap_or(shared.settings.ignore_result)
    });
    let request = Arc::new(Request::new(message, shared.settings.hostname.clone()));
    if def
        .options
        .track_started
        .unwrap_or(shared.settings.track_started)
        && !ignore_result
    {
        let mut info = crate::value::Dict::new();
        info.insert("pid", std::process::id() as i64);
        info.insert("hostname", shared.settings.hostname.as_str());
        Box::pin(store(
            &shared,
            &request.message,
            State::Started,
            Value::Dict(info),
            None,
        ))
        .await;
    }

    let started = Instant::now();
    let ctx =
        Context::for_task(Arc::clone(&request), &def.options).with_env(Arc::clone(&shared.env));
    let m = &request.message;
    // A blocking task's slot stays taken until its function returns, even past this point.
    let outcome = Box::pin(timeout::run(
        &def.handler,
        ctx,
        m.args.clone(),
        m.kwargs.clone(),
        limits,
        m,
        slot,
    ))
    .await;
    let outcome = retry::autoretry(outcome, &request, &def.options);
    let runtime = started.elapsed().as_secs_f64();
    shared
        .stats
        .processed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

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
                        Box::pin(fail(&shared, m, error, children, ignore_result)).await;
                        if acks_late {
                            unsettled.ack(&shared);
                        }
                        return;
                    }
                }
            }
            // A backend that queues its write in order with the broker's acks lets the ack go
            // at once: it frees the prefetch slot, and write, ack and next fetch share one
            // round trip. Not for chord parts: their ack waits for the chord counter.
            let ack_now = !ignore_result
                && acks_late
                && m.embed.chord.is_none()
                && shared.backend.orders_writes_before_acks();
            if ack_now {
                let repr = saferepr(&value, 1024);
                let stored = queue_store(&shared, m, State::Success, value, None, children);
                unsettled.ack(&shared);
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
            Box::pin(record_outcome(&shared, m, outcome, ignore_result)).await;
        }
        Err(mut err) if err.retry.is_some() => {
            let r = err.retry.take().map(|r| *r);
            if let Some(r) = r {
                match Box::pin(retry::send(&shared.producer, m, &r, ignore_result)).await {
                    Ok(()) => {
                        tracing::info!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] retry: {}", m.display_name(), m.id, retry_message(&r));
                        if !ignore_result {
                            let tb = err.traceback_text(&m.name);
                            let meta = r.exc.map_or(Value::None, failure_meta);
                            // Celery's retry is sent from inside the task: its result (the
                            // same id) is one of the task's children in the RETRY meta.
                            let retry_child = Value::List(vec![
                                Value::List(vec![Value::Str(m.id.clone()), Value::None]),
                                Value::None,
                            ]);
                            Box::pin(store_with_children(
                                &shared,
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
                        return unsettled.reject(&shared, false);
                    }
                }
            }
        }
        Err(err) if err.reject.is_some() => {
            let requeue = err.reject.unwrap_or(false);
            tracing::error!(task_id = %m.id, task_name = %m.display_name(), "Task {}[{}] raised unexpected: {}", m.display_name(), m.id, err.repr());
            if !requeue {
                // Celery 5.7: a task that rejects its message without requeue will never run
                // again, so it is stored as FAILURE (no traceback) and its errbacks run.
                let outcome = Outcome {
                    state: State::Failure,
                    result: failure_meta(err),
                    traceback: None,
                    children: Vec::new(),
                };
                Box::pin(record_outcome(&shared, m, outcome, ignore_result)).await;
                Box::pin(canvas::after_failure(&shared.producer, m)).await;
            }
            return unsettled.reject(&shared, requeue);
        }
        Err(err) => {
            let children = request.take_children();
            Box::pin(fail(&shared, m, err, children, ignore_result)).await;
        }
    }
    if acks_late {
        unsettled.ack(&shared);
    }
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

/// A message that is not a runnable task: logged and disposed of as Celery would. `reply`
/// holds its `reply_to` and `correlation_id`, where the `rpc://` backend sends a failure.
async fn refuse(
    shared: &Shared,
    unsettled: &mut Unsettled,
    error: DecodeError,
    reply: &crate::protocol::Properties,
) {
    match &error {
        DecodeError::UnknownTask { id, name } => {
            tracing::error!(task_name = %name, task_id = id.as_deref().unwrap_or(""), "Received unregistered task of type {name:?}.\nThe message has been ignored and discarded.");
            if let Some(id) = id {
                let meta = failure_meta(TaskError::not_registered(name));
                store_refusal(shared, id, meta, reply, "NotRegistered failure").await;
            }
        }
        DecodeError::Undecodable { .. } => {
            tracing::error!(error = %error, "Can't decode message body; the message has been acknowledged and discarded");
        }
        DecodeError::TooLarge {
            id,
            name,
            size,
            limit,
        } => {
            let (id_text, name_text) =
                (id.as_deref().unwrap_or("?"), name.as_deref().unwrap_or("?"));
            tracing::error!(
                task_id = id_text,
                task_name = name_text,
                size,
                limit,
                "Refusing task {name_text}[{id_text}]: its message of {size} bytes is larger than rcelery_max_message_bytes ({limit}); it has been acknowledged and discarded"
            );
            if let Some(id) = id {
                // kombu's DecodeError: what a Python client reading the failure can rebuild.
                let meta = exception_meta(
                    "DecodeError",
                    "kombu.exceptions",
                    vec![Value::Str(error.to_string())],
                );
                store_refusal(
                    shared,
                    id,
                    meta,
                    reply,
                    "failure of a message too large to decode",
                )
                .await;
            }
        }
        _ => tracing::error!(error = %error, "Rejecting message"),
    }
    match error.disposition() {
        Disposition::Ack => unsettled.ack(shared),
        Disposition::Reject => unsettled.reject(shared, false),
    }
}

/// Stores the FAILURE of a refused message's task id (replied to where the message says);
/// `what` names it in the error logged when it cannot be stored.
async fn store_refusal(
    shared: &Shared,
    id: &str,
    meta: Value,
    reply: &crate::protocol::Properties,
    what: &str,
) {
    let record = ResultRecord::failure(id, meta, None)
        .replying_to(reply.reply_to.clone(), reply.correlation_id.clone());
    if let Err(e) = shared.backend.store(record).await {
        tracing::error!(task_id = %id, error = %e, "could not store the {what}");
    }
}

/// An expired task: stored as REVOKED with reason `expired`, and acked (Celery's
/// `_announce_revoked`).
async fn revoke_expired(shared: &Shared, unsettled: &mut Unsettled, message: &TaskMessage) {
    tracing::info!(task_id = %message.id, task_name = %message.display_name(), "Discarding revoked task: {}[{}] (expired)", message.display_name(), message.id);
    let meta = exception_meta(
        "TaskRevokedError",
        "celery.exceptions",
        vec![Value::str("expired")],
    );
    store(shared, message, State::Revoked, meta, None).await;
    unsettled.ack(shared);
}

/// The stored form of a task error (Celery's exception meta for non-pickle serializers).
fn failure_meta(err: TaskError) -> Value {
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

async fn store(
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
