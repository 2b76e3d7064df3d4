//! Sending a retry as Celery's `Task.retry` does (`signature_from_request`): the same task id,
//! `retries + 1`, an ETA, and everything else the request carried.

use std::sync::Arc;

use super::timeout;
use crate::producer::{Producer, SendOptions};
use crate::protocol::TaskMessage;
use crate::task::{Context, Request, RetryRequest, TaskError, TaskOptions};
use crate::value::Value;

/// Publishes the retry of `m`; `ignore_result` is the request's effective setting, which the
/// retry carries (Celery 5.7's `signature_from_request`).
pub(super) async fn send(
    producer: &Producer,
    m: &TaskMessage,
    r: &RetryRequest,
    ignore_result: bool,
) -> Result<(), crate::broker::BrokerError> {
    let di = &m.delivery_info;
    let (queue, exchange, routing_key) = match &r.queue {
        Some(q) => (Some(q.clone()), None, None),
        None if di.exchange.is_empty() && !di.routing_key.is_empty() => {
            (Some(di.routing_key.clone()), None, None)
        }
        None => (
            None,
            Some(di.exchange.clone()),
            Some(di.routing_key.clone()),
        ),
    };
    let sigs = |v: &Option<Value>| {
        v.as_ref()
            .map(crate::protocol::Signature::all_in)
            .unwrap_or_default()
    };
    let options = SendOptions {
        task_id: Some(m.id.clone()),
        queue,
        exchange,
        routing_key,
        priority: m.properties.priority,
        countdown: if r.eta.is_none() { r.countdown } else { None },
        eta: r.eta.clone(),
        expires_in: None,
        expires_at: m.expires.clone(),
        headers: m.custom_headers(),
        time_limit: m.timelimit.hard,
        soft_time_limit: m.timelimit.soft,
        link: sigs(&m.embed.callbacks),
        link_error: sigs(&m.embed.errbacks),
        ignore_result,
        // Sent from inside the task: a request without a parent gets this task as parent.
        parent_id: Some(m.parent_id.clone().unwrap_or_else(|| m.id.clone())),
        root_id: Some(m.root_id.clone().unwrap_or_else(|| m.id.clone())),
        group_id: m.group.clone(),
        group_index: m.group_index,
        chain: m.embed.chain.clone(),
        chord: m.embed.chord.clone(),
        shadow: m.shadow.clone(),
        retries: m.retries + 1,
        reply_to: m.properties.reply_to.clone(),
        origin: m.origin.clone(),
        replaced_task_nesting: m
            .headers
            .get("replaced_task_nesting")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    };
    let args = r.args.clone().unwrap_or_else(|| m.args.clone());
    let kwargs = r.kwargs.clone().unwrap_or_else(|| m.kwargs.clone());
    producer
        .send_task(&m.name, args, kwargs, options)
        .await
        .map(|_| ())
}

/// Turns an error the task's `autoretry_for` names into the retry Celery's autoretry wrapper
/// would raise: `self.retry(exc=exc, countdown=<backoff>)`, or past `max_retries` the error
/// itself. Other outcomes pass through.
pub(super) fn autoretry(
    outcome: Result<Value, TaskError>,
    request: &Arc<Request>,
    options: &TaskOptions,
) -> Result<Value, TaskError> {
    let Err(err) = outcome else { return outcome };
    let Some(auto) = options
        .autoretry
        .as_ref()
        .filter(|a| a.matches(&err) && !timeout::is_hard_timeout(&err))
    else {
        return Err(err);
    };
    let ctx = Context::for_task(Arc::clone(request), options);
    let mut retry = ctx.retry().exc(err);
    if let Some(countdown) = auto.countdown(request.message.retries, &mut rand::thread_rng()) {
        retry = retry.countdown(countdown);
    }
    Err(retry.error())
}
