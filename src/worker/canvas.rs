//! What a finished task sets in motion, as Celery's tracer does: `link` callbacks and the next
//! step of a chain after a success (sent before the result is stored, so the result's
//! `children` name them), `link_error` errbacks after a failure, and the chord body once the
//! last header part is in.

use std::time::Duration;

use crate::backend::chord::ChordFailure;
use crate::backend::join::{self, Joined, ResultNode};
use crate::backend::meta::exception_meta;
use crate::backend::{chord, ChordPart, ChordProgress, ResultBackend, ResultRecord, State};
use crate::producer::{AsyncResult, Producer, SendOptions};
use crate::protocol::{Signature, TaskMessage};
use crate::task::TaskError;
use crate::value::{Dict, Value};

/// Sending a task's callbacks or next chain step raised (a chord on a backend without
/// chords): Celery's tracer then fails the task with that exception.
pub(super) struct DispatchFailed {
    /// The exception the task fails with.
    pub error: TaskError,
    /// What was sent before it (the failed result's `children`).
    pub children: Vec<Value>,
}

/// Sends the callbacks and the chain's next task with `retval` prepended to their args.
/// Returns the `children` entries for the stored result (`as_tuple()` of each).
pub(super) async fn after_success(
    producer: &Producer,
    backend: &dyn ResultBackend,
    m: &TaskMessage,
    retval: &Value,
) -> Result<Vec<Value>, DispatchFailed> {
    let mut children = Vec::new();
    let linked = |extra: SendOptions| SendOptions {
        parent_id: Some(m.id.clone()),
        root_id: Some(root_of(m)),
        ..extra
    };
    macro_rules! allowed {
        ($sig:expr) => {
            if let Err(error) = ensure_chords_allowed(backend, $sig) {
                return Err(DispatchFailed { error, children });
            }
        };
    }
    if let Some(callbacks) = &m.embed.callbacks {
        let sigs = signatures(callbacks, m, "callback");
        if sigs.len() == 1 {
            allowed!(&sigs[0]);
            if let Some(child) = apply_any(
                producer,
                backend,
                &sigs[0],
                vec![retval.clone()],
                linked(SendOptions::default()),
                m,
            )
            .await
            {
                children.push(child);
            }
        } else if !sigs.is_empty() {
            // Celery: group callbacks are applied each on its own, the task callbacks as one group.
            let (groups, tasks): (Vec<_>, Vec<_>) =
                sigs.into_iter().partition(|s| s.subtask_type.is_some());
            for g in &groups {
                allowed!(g);
                if let Some(child) = apply_any(
                    producer,
                    backend,
                    g,
                    vec![retval.clone()],
                    linked(SendOptions::default()),
                    m,
                )
                .await
                {
                    children.push(child);
                }
            }
            if !tasks.is_empty() {
                children.push(
                    apply_group(
                        producer,
                        &tasks,
                        vec![retval.clone()],
                        linked(SendOptions::default()),
                        m,
                        None,
                    )
                    .await,
                );
            }
        }
    }
    if let Some(chain) = &m.embed.chain {
        let mut rest = match chain {
            Value::List(items) | Value::Tuple(items) => items.clone(),
            _ => Vec::new(),
        };
        if let Some(next) = rest.pop() {
            match Signature::from_value(&next) {
                // A group step followed by more (Celery's client sends a chord instead) goes
                // as Celery's tracer sends it: every member carries the rest of the chain.
                Some(sig) => {
                    allowed!(&sig);
                    let chain = (!rest.is_empty()).then_some(Value::List(rest));
                    let options = linked(SendOptions {
                        chain,
                        ..SendOptions::default()
                    });
                    if let Some(child) =
                        apply_any(producer, backend, &sig, vec![retval.clone()], options, m).await
                    {
                        children.push(child);
                    }
                }
                None => {
                    tracing::error!(task_id = %m.id, task_name = %m.name, "chain step is not a signature: {next:?}")
                }
            }
        }
    }
    Ok(children)
}

/// Celery's `ensure_chords_allowed`: on a backend without chords (rpc://), applying a
/// signature that is a chord, or a group or chain holding one, raises
/// `NotImplementedError` with the backend's message.
fn ensure_chords_allowed(backend: &dyn ResultBackend, sig: &Signature) -> Result<(), TaskError> {
    match backend.chords_refused() {
        Some(message) if holds_chord(sig) => Err(TaskError::with_args(
            "NotImplementedError",
            "builtins",
            vec![Value::str(message)],
        )),
        _ => Ok(()),
    }
}

/// True for a chord signature, or a group or chain with one among its tasks.
fn holds_chord(sig: &Signature) -> bool {
    match sig.subtask_type.as_deref() {
        Some("chord") => true,
        Some("group" | "chain") => sig.kwargs.get("tasks").is_some_and(|tasks| {
            Signature::list_from_value(tasks)
                .iter()
                .any(|t| t.as_ref().is_ok_and(holds_chord))
        }),
        _ => false,
    }
}

/// Sends the errbacks as Celery does for errbacks it does not run in-process: as a group
/// called with the failed task's id.
pub(super) async fn after_failure(producer: &Producer, m: &TaskMessage) {
    let Some(errbacks) = &m.embed.errbacks else {
        return;
    };
    let sigs = signatures(errbacks, m, "errback");
    if sigs.is_empty() {
        return;
    }
    apply_group(
        producer,
        &sigs,
        vec![Value::Str(m.id.clone())],
        sent_from(m),
        m,
        None,
    )
    .await;
}

fn signatures(value: &Value, m: &TaskMessage, what: &str) -> Vec<Signature> {
    let mut out = Vec::new();
    for item in Signature::list_from_value(value) {
        match item {
            Ok(sig)
                if sig.subtask_type.is_none()
                    || (what == "callback"
                        && matches!(sig.subtask_type.as_deref(), Some("group" | "chord"))) =>
            {
                out.push(sig)
            }
            Ok(sig) => {
                tracing::error!(task_id = %m.id, task_name = %m.name, "{what} of type {:?} is not supported yet; not sent", sig.subtask_type)
            }
            Err(v) => {
                tracing::error!(task_id = %m.id, task_name = %m.name, "{what} is not a signature: {v:?}")
            }
        }
    }
    out
}

async fn apply(
    producer: &Producer,
    sig: &Signature,
    args: Vec<Value>,
    options: SendOptions,
    m: &TaskMessage,
) -> Option<AsyncResult> {
    match producer
        .apply_signature(sig, args, Dict::new(), options)
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "could not send {}", sig.task);
            None
        }
    }
}

/// Sends a task signature, a group signature (its tasks as one group) or a chord signature,
/// called with `args`; returns the `children` entry.
async fn apply_any(
    producer: &Producer,
    backend: &dyn ResultBackend,
    sig: &Signature,
    args: Vec<Value>,
    options: SendOptions,
    m: &TaskMessage,
) -> Option<Value> {
    match sig.subtask_type.as_deref() {
        Some("chord") => apply_chord(producer, backend, sig, args, options, m).await,
        None => apply(producer, sig, args, options, m)
            .await
            .map(|r| as_tuple(&r)),
        Some("group") => {
            let members = sig
                .kwargs
                .get("tasks")
                .map(|v| signatures(v, m, "group member"))
                .unwrap_or_default();
            let args = if sig.immutable { Vec::new() } else { args };
            let group_id = sig.option_str("task_id").map(str::to_owned);
            Some(apply_group(producer, &members, args, options, m, group_id).await)
        }
        Some(other) => {
            tracing::error!(task_id = %m.id, task_name = %m.name, "{other} signatures are not supported here yet; not sent");
            None
        }
    }
}

/// `chord(header, body).apply_async(args, **options)` from a worker (a chain step or a
/// callback): the body takes the calling options (the rest of the chain, parent and root) and
/// is embedded in every header part; the header's size is recorded first, then its parts go
/// out as one group. Nested groups in the header are flattened as Celery's `_freeze_unroll`
/// does; a chain in the header counts as one part (its last task carries the chord), and so
/// does a chord (its body does). Returns the header group's `children` entry.
fn apply_chord<'a>(
    producer: &'a Producer,
    backend: &'a dyn ResultBackend,
    sig: &'a Signature,
    args: Vec<Value>,
    options: SendOptions,
    m: &'a TaskMessage,
) -> futures::future::BoxFuture<'a, Option<Value>> {
    Box::pin(async move {
        let header = sig.kwargs.get("header");
        let (listed, header_id) = match header.and_then(Signature::from_value) {
            Some(g) if g.subtask_type.as_deref() == Some("group") => (
                g.kwargs.get("tasks").cloned(),
                g.option_str("task_id").map(str::to_owned),
            ),
            _ => (header.cloned(), None),
        };
        let Some(parts) = flatten_header(&listed.unwrap_or(Value::None)) else {
            tracing::error!(task_id = %m.id, task_name = %m.name, "chord header with a part that is not a task, chain, chord or group; not sent");
            return None;
        };
        let Some(mut body) = sig.kwargs.get("body").and_then(Signature::from_value) else {
            tracing::error!(task_id = %m.id, task_name = %m.name, "chord signature without a body; not sent");
            return None;
        };
        let group_id = header_id
            .or_else(|| sig.option_str("task_id").map(str::to_owned))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // body.clone(**options) and chord.run's `body.options.update(options)`: the chord's own
        // options and the calling ones, except the ids; then body.freeze().
        for (k, v) in sig.options.iter() {
            if k.as_str() != Some("task_id") {
                body.options.insert(k.clone(), v.clone());
            }
        }
        if let Some(chain) = &options.chain {
            body.options.insert("chain", chain.clone());
        }
        // Celery 5.6+ (`chord._body_options`): the body's parent is the header part that
        // completes the chord, not the task applying it; `parent_id` is not passed on.
        body.options.remove("parent_id");
        if let Some(root) = &options.root_id {
            body.options.insert("root_id", root.as_str());
        }
        if body.subtask_type.is_none() && body.option_str("task_id").is_none() {
            body.options
                .insert("task_id", uuid::Uuid::new_v4().to_string());
        }
        // Celery 5.6+: `body.freeze(task_id, group_id=<the header's group id>)`; a frozen
        // signature keeps a group id it already has (for a chain body, its last task gets it).
        freeze_group_id(&mut body, &group_id);
        let partial = if sig.immutable {
            sig.args.clone()
        } else {
            args.into_iter().chain(sig.args.iter().cloned()).collect()
        };
        if parts.is_empty() {
            // Celery's `chord.run`: no header task will ever fire the body, so it goes now.
            fire_body(
                producer,
                backend,
                m,
                &group_id,
                &body.to_value(),
                Ok(Vec::new()),
            )
            .await;
            return Some(Value::List(vec![
                Value::List(vec![Value::Str(group_id), Value::None]),
                Value::List(Vec::new()),
            ]));
        }
        let native = backend
            .native_chords()
            .filter(|c| c.counts_chords_it_applies());
        if let Some(chords) = native {
            if let Err(e) = chords.set_chord_size(&group_id, parts.len()).await {
                tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "chord {group_id}: could not record its size; not sent");
                return None;
            }
        }
        let unlock = native.is_none().then(|| body.clone());
        let body = body.to_value();
        let mut members = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            let (group_index, chord) = (index as i64, body.clone());
            let member = match part.subtask_type.as_deref() {
                None => {
                    let o = SendOptions {
                        chain: None,
                        chord: Some(chord),
                        group_id: Some(group_id.clone()),
                        group_index: Some(group_index),
                        ..options.clone()
                    };
                    apply(producer, &part, partial.clone(), o, m)
                        .await
                        .map(|r| as_tuple(&r))
                }
                Some("chain") => {
                    let Some((first, last_id)) = chain_as_part(part, &group_id, group_index, chord)
                    else {
                        tracing::error!(task_id = %m.id, task_name = %m.name, "chord {group_id}: a header chain of other than tasks is not supported yet; not sent");
                        continue;
                    };
                    let o = SendOptions {
                        chain: None,
                        ..options.clone()
                    };
                    apply(producer, &first, partial.clone(), o, m)
                        .await
                        .map(|_| id_tuple(&last_id))
                }
                Some("chord") => {
                    let Some((inner, body_id)) = chord_as_part(part, &group_id, group_index, chord)
                    else {
                        tracing::error!(task_id = %m.id, task_name = %m.name, "chord {group_id}: a header chord without a task body is not supported yet; not sent");
                        continue;
                    };
                    let o = SendOptions {
                        chain: None,
                        ..options.clone()
                    };
                    apply_chord(producer, backend, &inner, partial.clone(), o, m)
                        .await
                        .map(|_| id_tuple(&body_id))
                }
                Some(_) => None,
            };
            members.extend(member);
        }
        if let Some(body) = unlock {
            send_chord_unlock(producer, &body, &group_id, &members, m).await;
        }
        Some(Value::List(vec![
            Value::List(vec![Value::Str(group_id), Value::None]),
            Value::List(members),
        ]))
    })
}

/// Celery's `fallback_chord_unlock`, for a backend without native chords: sends
/// `celery.chord_unlock(group_id, body, result=[header tuples])` a second from now, on the
/// body's queue (its own option, else where `task_routes` sends the body) with the body's
/// priority; it polls the header's results and sends the body once all are ready.
async fn send_chord_unlock(
    producer: &Producer,
    body: &Signature,
    group_id: &str,
    members: &[Value],
    m: &TaskMessage,
) {
    let mut kwargs = Dict::new();
    kwargs.insert("result", Value::List(members.to_vec()));
    let options = SendOptions {
        countdown: Some(1.0),
        queue: body
            .option_str("queue")
            .map(str::to_owned)
            .or_else(|| producer.routed_queue(&body.task)),
        priority: Some(
            body.options
                .get("priority")
                .and_then(Value::as_i64)
                .map_or(0, |p| p.clamp(0, 255) as u8),
        ),
        ..SendOptions::default()
    };
    let args = vec![Value::str(group_id), body.to_value()];
    if let Err(e) = producer
        .send_task(super::chord_unlock::NAME, args, kwargs, options)
        .await
    {
        tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "chord {group_id}: could not send celery.chord_unlock; the body will not run");
    }
}

/// The parts of a chord header, nested groups flattened as Celery's `_freeze_unroll` does
/// (a nested group's tasks take its place in reverse order: `deque.extendleft`). `None` if a
/// part is not a signature, or is of a kind other than task, chain or chord.
fn flatten_header(listed: &Value) -> Option<Vec<Signature>> {
    let mut stack: std::collections::VecDeque<Value> = match listed {
        Value::List(items) | Value::Tuple(items) => items.iter().cloned().collect(),
        _ => return None,
    };
    let mut parts = Vec::new();
    while let Some(item) = stack.pop_front() {
        let sig = Signature::from_value(&item)?;
        match sig.subtask_type.as_deref() {
            Some("group") => {
                if let Some(Value::List(tasks) | Value::Tuple(tasks)) = sig.kwargs.get("tasks") {
                    for t in tasks {
                        stack.push_front(t.clone());
                    }
                }
            }
            None | Some("chain" | "chord") => parts.push(sig),
            Some(_) => return None,
        }
    }
    Some(parts)
}

/// A chain as a chord header part: its last task carries the group, index and chord (the
/// chain's result is its last task's); returns the first task to send, with the rest of the
/// chain, and the last task's id.
fn chain_as_part(
    chain: Signature,
    group_id: &str,
    group_index: i64,
    chord: Value,
) -> Option<(Signature, String)> {
    let mut tasks = chain_tasks(&chain)?;
    let last = tasks.last_mut().filter(|t| t.subtask_type.is_none())?;
    last.options.insert("group_id", group_id);
    last.options.insert("group_index", group_index);
    last.options.insert("chord", chord);
    let last_id = frozen_id(last);
    let mut chain = chain;
    chain.kwargs.insert(
        "tasks",
        Value::List(tasks.iter().map(Signature::to_value).collect()),
    );
    first_step(chain).map(|first| (first, last_id))
}

/// A chord as a chord header part: its body carries the outer group, index and chord;
/// returns the inner chord to apply and its body's id.
fn chord_as_part(
    mut inner: Signature,
    group_id: &str,
    group_index: i64,
    chord: Value,
) -> Option<(Signature, String)> {
    let mut body = inner
        .kwargs
        .get("body")
        .and_then(Signature::from_value)
        .filter(|b| b.subtask_type.is_none())?;
    body.options.insert("group_id", group_id);
    body.options.insert("group_index", group_index);
    body.options.insert("chord", chord);
    let body_id = frozen_id(&mut body);
    inner.kwargs.insert("body", body.to_value());
    Some((inner, body_id))
}

/// `freeze(group_id=...)` of a chord body: a task keeps a group id it already has, a chain
/// passes it to its last task; groups and chords take theirs from their own ids.
fn freeze_group_id(body: &mut Signature, group_id: &str) {
    match body.subtask_type.as_deref() {
        None => {
            if body.option_str("group_id").is_none() {
                body.options.insert("group_id", group_id);
            }
        }
        Some("chain") => {
            let Some(mut tasks) = chain_tasks(body) else {
                return;
            };
            if let Some(last) = tasks.last_mut() {
                freeze_group_id(last, group_id);
            }
            body.kwargs.insert(
                "tasks",
                Value::List(tasks.iter().map(Signature::to_value).collect()),
            );
        }
        Some(_) => {}
    }
}

/// The signature's task id, a new one set first if it has none (`freeze()`).
fn frozen_id(sig: &mut Signature) -> String {
    if let Some(id) = sig.option_str("task_id") {
        return id.to_owned();
    }
    let id = uuid::Uuid::new_v4().to_string();
    sig.options.insert("task_id", id.as_str());
    id
}

/// `((id, None), None)` for a result known by its id.
fn id_tuple(id: &str) -> Value {
    Value::List(vec![
        Value::List(vec![Value::str(id), Value::None]),
        Value::None,
    ])
}

/// `group(sigs).apply_async(args, **options)`: one group id (the group's frozen id, or a new
/// one), each member numbered.
async fn apply_group(
    producer: &Producer,
    sigs: &[Signature],
    args: Vec<Value>,
    options: SendOptions,
    m: &TaskMessage,
    group_id: Option<String>,
) -> Value {
    let group_id = group_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut members = Vec::with_capacity(sigs.len());
    for (index, sig) in sigs.iter().enumerate() {
        let o = SendOptions {
            group_id: Some(group_id.clone()),
            group_index: Some(index as i64),
            ..options.clone()
        };
        if let Some(r) = apply(producer, sig, args.clone(), o, m).await {
            members.push(as_tuple(&r));
        }
    }
    Value::List(vec![
        Value::List(vec![Value::Str(group_id), Value::None]),
        Value::List(members),
    ])
}

/// The root of the workflow `m` belongs to (`m` itself if it has none).
fn root_of(m: &TaskMessage) -> String {
    m.root_id.clone().unwrap_or_else(|| m.id.clone())
}

/// Options for a signature applied from inside the task `m`: parent `m`, root `m`'s root.
fn sent_from(m: &TaskMessage) -> SendOptions {
    SendOptions {
        parent_id: Some(m.id.clone()),
        root_id: Some(root_of(m)),
        ..SendOptions::default()
    }
}

/// `AsyncResult.as_tuple()`: `((id, parent), None)`.
fn as_tuple(r: &AsyncResult) -> Value {
    id_tuple(r.id())
}

/// Celery's `on_chord_part_return` for a finished chord header task: stores its `record`
/// (the task's result, unless ignored) and records the part with Celery's Redis keys; the
/// part that completes the chord sends the body with every result (or, if a part failed,
/// stores the body as FAILURE `ChordError` and sends its errbacks).
/// A header holding a group result was saved as a `GroupResult` by the client: it is joined
/// from the stored results, so the group's results reach the body as one nested list.
pub(super) async fn chord_part(
    producer: &Producer,
    backend: &dyn ResultBackend,
    m: &TaskMessage,
    state: State,
    result: Value,
    record: Option<ResultRecord>,
    join_timeout: Duration,
) {
    let (Some(body), Some(group_id)) = (&m.embed.chord, &m.group) else {
        return;
    };
    let part = ChordPart {
        group_id: group_id.clone(),
        task_id: m.id.clone(),
        group_index: m.group_index,
        state,
        result,
    };
    let Some(chords) = backend.native_chords() else {
        // `celery.chord_unlock` joins this chord; the result is stored as for any task.
        if let Some(record) = record {
            if let Err(e) = backend.store(record).await {
                tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "could not store task result");
            }
        }
        return;
    };
    let outcome = match chords.chord_part_return(part, record).await {
        Ok(ChordProgress::Ready(parts)) => chord::unpack(&parts),
        Ok(ChordProgress::Pending | ChordProgress::NoSize | ChordProgress::Fired) => return,
        Ok(ChordProgress::Complex) => join_saved_header(backend, group_id, join_timeout)
            .await
            .map_err(ChordFailure::from),
        Err(e) => {
            tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "chord {group_id}: could not store and record this part");
            return;
        }
    };
    // Celery 5.7: the body goes out only while this worker still owns the chord's dispatch;
    // then the counters are deleted. A failed chord keeps its parts and forgets its size.
    let sent = outcome.is_ok();
    if sent {
        match chords.keep_dispatch_claim(group_id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(task_id = %m.id, task_name = %m.name, "chord {group_id}: body not sent: its dispatch claim is no longer this worker's");
                return;
            }
            Err(e) => {
                tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "chord {group_id}: could not extend its dispatch claim; body not sent");
                return;
            }
        }
    }
    fire_body(producer, backend, m, group_id, body, outcome).await;
    if sent {
        cleanup(backend, group_id).await;
    } else if let Err(e) = chords.chord_failed(group_id).await {
        tracing::warn!(task_id = %m.id, error = %e, "chord {group_id}: could not forget its size after the failure");
    }
}

/// Joins a chord header the client saved as a `GroupResult` (Celery's `join_native` with
/// `result_chord_join_timeout`); a failure is `Join error: <repr>`.
async fn join_saved_header(
    backend: &dyn ResultBackend,
    group_id: &str,
    timeout: Duration,
) -> Result<Vec<Value>, String> {
    let saved = match backend.restore_group(group_id).await {
        Ok(Some(saved)) => saved,
        Ok(None) => return Err("Join error: the header's saved GroupResult is gone".to_owned()),
        Err(e) => return Err(format!("Join error: {e}")),
    };
    let Some(ResultNode::Group(results)) = ResultNode::from_tuple(&saved) else {
        return Err(format!("Join error: unreadable GroupResult {saved:?}"));
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match join::join(backend, &results).await {
            Ok(Joined::Ready(values)) => return Ok(values),
            Ok(Joined::Failed(repr)) => return Err(format!("Join error: {repr}")),
            Ok(Joined::NotReady) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(JOIN_POLL).await
            }
            Ok(Joined::NotReady) => {
                let seconds = crate::value::py_repr(&Value::Float(timeout.as_secs_f64()));
                return Err(format!(
                    "Join error: TimeoutError('Operation timed out ({seconds})')"
                ));
            }
            Err(e) => return Err(format!("Join error: {e}")),
        }
    }
}

/// How often a header join that is not ready yet looks again (Celery's `interval`).
const JOIN_POLL: Duration = Duration::from_millis(100);

/// Sends a finished chord's body with its header's results, as Celery's
/// `callback.delay(results)` from inside the task `m` (a header part, or `chord_unlock`); or,
/// given the reason the chord failed, stores the body as FAILURE `ChordError(reason)` after
/// sending its errbacks (Celery's `chord_error_from_stack`).
pub(super) async fn fire_body(
    producer: &Producer,
    backend: &dyn ResultBackend,
    m: &TaskMessage,
    group_id: &str,
    body: &Value,
    outcome: Result<Vec<Value>, ChordFailure>,
) {
    let parsed = Signature::from_value(body);
    let kind = parsed.as_ref().and_then(|b| b.subtask_type.clone());
    let (group_body, chord_body) = (
        kind.as_deref() == Some("group"),
        kind.as_deref() == Some("chord"),
    );
    let Some(sig) = (if group_body || chord_body {
        parsed
    } else {
        parsed.and_then(first_step)
    }) else {
        tracing::error!(task_id = %m.id, task_name = %m.name, "chord {group_id}: body of this kind is not supported yet: {body:?}");
        return;
    };
    let body_id = sig.option_str("task_id").map(str::to_owned);
    match outcome {
        Ok(results) if chord_body => {
            // `callback.delay(results)` on a chord: the results go to its header's tasks.
            if apply_chord(
                producer,
                backend,
                &sig,
                vec![Value::List(results)],
                sent_from(m),
                m,
            )
            .await
            .is_none()
            {
                tracing::error!(task_id = %m.id, task_name = %m.name, "chord {group_id}: its chord body was not sent");
            }
        }
        Ok(results) if group_body => {
            // `callback.delay(results)` on a group: each member called with the results, in
            // the group the client froze (its id is the one the client's GroupResult holds).
            let members = sig
                .kwargs
                .get("tasks")
                .map(|v| signatures(v, m, "chord body member"))
                .unwrap_or_default();
            let args = if sig.immutable {
                Vec::new()
            } else {
                vec![Value::List(results)]
            };
            apply_group(producer, &members, args, sent_from(m), m, body_id).await;
        }
        Ok(results) => {
            // `callback.delay(results)` from inside the task: parent and root default to it.
            let mut options = SendOptions::from_signature_options(&sig.options);
            options.parent_id.get_or_insert_with(|| m.id.clone());
            options.root_id.get_or_insert_with(|| root_of(m));
            let (args, kwargs) = sig.merged_arguments(vec![Value::List(results)], Dict::new());
            if let Err(e) = producer.send_task(&sig.task, args, kwargs, options).await {
                tracing::error!(task_id = %m.id, task_name = %m.name, error = %e, "chord {group_id}: could not send the body {}", sig.task);
                if let Some(id) = &body_id {
                    fail_body(backend, id, &format!("Callback error: {e}")).await;
                }
            }
        }
        Err(failure) if group_body => {
            tracing::error!(task_id = %m.id, task_name = %m.name, "Chord {group_id:?} raised: ChordError({:?})", failure.message);
            fail_group_body(producer, backend, m, &sig, &failure).await;
        }
        Err(ChordFailure { message, .. }) => {
            tracing::error!(task_id = %m.id, task_name = %m.name, "Chord {group_id:?} raised: ChordError({message:?})");
            if let Some(id) = &body_id {
                let errbacks = SendOptions::from_signature_options(&sig.options).link_error;
                let root = m.root_id.clone().unwrap_or_else(|| id.clone());
                send_errbacks(producer, m, &errbacks, id, root).await;
                fail_body(backend, id, &message).await;
            }
        }
    }
}

/// Sends a failed task's errbacks as one group called with `(task_id,)`, the task as their
/// parent and `root` as their root.
async fn send_errbacks(
    producer: &Producer,
    m: &TaskMessage,
    errbacks: &[Signature],
    task_id: &str,
    root: String,
) {
    if errbacks.is_empty() {
        return;
    }
    let options = SendOptions {
        parent_id: Some(task_id.to_owned()),
        root_id: Some(root),
        ..SendOptions::default()
    };
    let args = vec![Value::str(task_id)];
    apply_group(producer, errbacks, args, options, m, None).await;
}

/// Celery 5.6+'s `_handle_group_chord_error` for a chord whose body is a group and whose
/// header failed: every task of the body sends its own errbacks and the group's (each once,
/// called with the task's id) and is stored as FAILURE with the failed part's exception (the
/// `ChordError`'s cause, or the `ChordError` itself when there is none), then the group's own
/// id is stored as FAILURE too. Celery then broadcasts a revoke of the group's tasks, which
/// only matters to workers that still hold them; rcelery does not send it yet.
async fn fail_group_body(
    producer: &Producer,
    backend: &dyn ResultBackend,
    m: &TaskMessage,
    sig: &Signature,
    failure: &ChordFailure,
) {
    let cause = failure.cause.clone().unwrap_or_else(|| {
        exception_meta(
            "ChordError",
            "celery.exceptions",
            vec![Value::str(&failure.message)],
        )
    });
    let (exc_type, _) = crate::backend::meta::exception_parts(&cause);
    let group_errbacks = SendOptions::from_signature_options(&sig.options).link_error;
    let members = sig
        .kwargs
        .get("tasks")
        .map(|v| signatures(v, m, "chord body member"))
        .unwrap_or_default();
    for mut member in members {
        let id = frozen_id(&mut member);
        let mut errbacks = SendOptions::from_signature_options(&member.options).link_error;
        for e in &group_errbacks {
            if !errbacks.contains(e) {
                errbacks.push(e.clone());
            }
        }
        // Celery's fake request has no root: the task's own id is the errbacks' root.
        send_errbacks(producer, m, &errbacks, &id, id.clone()).await;
        let tb =
            TaskError::with_args(&exc_type, "builtins", Vec::new()).traceback_text("celery.chord");
        if let Err(e) = backend
            .store(ResultRecord::failure(&id, cause.clone(), Some(tb)))
            .await
        {
            tracing::error!(task_id = %id, error = %e, "could not store the failure of a chord body's task");
        }
    }
    if let Some(group_id) = sig.option_str("task_id") {
        if let Err(e) = backend
            .store(ResultRecord::failure(group_id, cause, None))
            .await
        {
            tracing::error!(task_id = %group_id, error = %e, "could not store the failure of a chord body's group");
        }
    }
}

/// Deletes a finished chord's counters (Celery deletes `.j`, `.t` and `.s` once the body is sent).
async fn cleanup(backend: &dyn ResultBackend, group_id: &str) {
    let Some(chords) = backend.native_chords() else {
        return;
    };
    if let Err(e) = chords.chord_cleanup(group_id).await {
        tracing::warn!(error = %e, "chord {group_id}: could not delete its counters; they expire with result_expires");
    }
}

/// Stores the chord body as FAILURE with `celery.exceptions.ChordError(message)`.
async fn fail_body(backend: &dyn ResultBackend, body_id: &str, message: &str) {
    let error = TaskError::with_args("ChordError", "celery.exceptions", vec![Value::str(message)]);
    let record = ResultRecord::failure(
        body_id,
        exception_meta(&error.exc_type, &error.exc_module, error.args.clone()),
        Some(error.traceback_text("celery.chord")),
    );
    if let Err(e) = backend.store(record).await {
        tracing::error!(task_id = %body_id, error = %e, "could not store the chord body's failure");
    }
}

/// The tasks of a chain signature (its `kwargs["tasks"]`), or `None` when any is unreadable.
fn chain_tasks(chain: &Signature) -> Option<Vec<Signature>> {
    chain
        .kwargs
        .get("tasks")
        .map(Signature::list_from_value)?
        .into_iter()
        .collect::<Result<_, _>>()
        .ok()
}

/// The task signature to send for a chord body: the body itself, or for a chain body its
/// first task carrying the rest of the chain (after any chain the body already carries, as
/// Celery's `_prepare_chain_from_options` orders them) and the chain's calling options. The
/// rest may hold groups and chords (Celery 5.5's client folds `chain | chord` into the body
/// of the chord before it); they are applied as chain steps.
fn first_step(body: Signature) -> Option<Signature> {
    match body.subtask_type.as_deref() {
        None => Some(body),
        Some("chain") => {
            let mut tasks = chain_tasks(&body)?;
            if tasks.first().is_none_or(|t| t.subtask_type.is_some()) {
                return None;
            }
            let mut first = tasks.remove(0);
            let mut chain: Vec<Value> = match body.options.get("chain") {
                Some(Value::List(items)) | Some(Value::Tuple(items)) => items.clone(),
                _ => Vec::new(),
            };
            chain.extend(tasks.iter().rev().map(Signature::to_value));
            for (k, v) in body.options.iter() {
                if !matches!(k.as_str(), Some("task_id" | "chain")) && !v.is_none() {
                    first.options.insert(k.clone(), v.clone());
                }
            }
            if !chain.is_empty() {
                first.options.insert("chain", Value::List(chain));
            }
            Some(first)
        }
        Some(_) => None,
    }
}
