//! Running an admitted task: wait for backend room and a slot, settle early unless it acks
//! late, record STARTED, run it under its time limits.

use std::sync::Arc;
use std::time::Instant;

use super::super::{retry, slots, timeout, Shared};
use super::ack_policy::{AckPolicy, Unsettled};
use super::admit::{self, Received};
use super::finish;
use crate::backend::State;
use crate::task::{Context, Request, TaskDef, TaskError};
use crate::value::Value;

/// A task that has run, to be finished.
pub(super) struct Ran {
    pub(super) unsettled: Unsettled,
    pub(super) policy: AckPolicy,
    pub(super) request: Arc<Request>,
    pub(super) def: Arc<TaskDef>,
    pub(super) outcome: Result<Value, TaskError>,
    /// Seconds the task ran.
    pub(super) runtime: f64,
    pub(super) ignore_result: bool,
}

/// Runs an admitted task. `None` when it was revoked (and settled here) or the worker shut
/// down before it could start (its message left unsettled and given back).
pub(super) async fn run(shared: &Shared, admitted: Received) -> Option<Ran> {
    let Received {
        mut unsettled,
        mut watch,
        message,
        def,
    } = admitted;
    // While the backend cannot store results, no task starts until it has room again: the
    // worker stops taking on work (and, with early ack, acking it) instead of piling up
    // results in memory.
    tokio::select! {
        _ = shared.backend.wait_for_room() => {}
        v = watch.revoked() => {
            Box::pin(admit::discard(shared, &mut unsettled, &message, v)).await;
            return None;
        }
        _ = shared.shutdown.cancelled() => return None,
    }
    let limits = super::super::control::time_limits(shared, &message, &def);
    let slot = tokio::select! {
        s = shared.slots.acquire(&message.id, message.display_name(), slots::run_kind(&def.handler), limits) => s,
        v = watch.revoked() => {
            Box::pin(admit::discard(shared, &mut unsettled, &message, v)).await;
            return None;
        }
        _ = shared.shutdown.cancelled() => return None,
    };
    let slot = slot?;
    // Celery's last look before the pool runs it.
    if let Some(by) = shared.revocations.check(&message) {
        drop(slot);
        let why = finish::Revocation::Revoked(by);
        Box::pin(finish::revoked(shared, &mut unsettled, &message, why)).await;
        return None;
    }
    if let Some(held) = unsettled.held() {
        held.started();
    }
    let policy = AckPolicy::for_task(&def, shared);
    policy.before_run(shared, &mut unsettled);
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
        Box::pin(finish::store(
            shared,
            &request.message,
            State::Started,
            Value::Dict(info),
            None,
        ))
        .await;
    }
    watch.started();
    shared.lifecycle.started(&request.message);

    let started = Instant::now();
    let ctx =
        Context::for_task(Arc::clone(&request), &def.options).with_env(Arc::clone(&shared.env));
    let m = &request.message;
    // A blocking task's slot stays taken until its function returns, even past this point.
    let running = Box::pin(timeout::run(
        &def.handler,
        ctx,
        m.args.clone(),
        m.kwargs.clone(),
        limits,
        m,
        slot,
    ));
    let outcome = tokio::select! {
        o = running => o,
        signum = watch.terminated() => {
            // Dropping the run ends an async task; a blocking one's thread runs on, its
            // result discarded (see `super::super::revoke`).
            let why = finish::Revocation::Terminated(signum);
            Box::pin(finish::revoked(shared, &mut unsettled, m, why)).await;
            return None;
        }
    };
    drop(watch);
    let outcome = retry::autoretry(outcome, &request, &def.options);
    let runtime = started.elapsed().as_secs_f64();
    shared
        .stats
        .processed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(Ran {
        unsettled,
        policy,
        request,
        def,
        outcome,
        runtime,
        ignore_result,
    })
}
