//! Gossip (Celery's `Gossip` consumer step): the worker listens to the other workers'
//! `worker.#` events on a queue of its own (`celeryev.<uuid>`, auto-deleted, bound to the
//! `celeryev` exchange), moves its Lamport clock past each event's clock and keeps the
//! table of nodes that are alive ([`nodes`]), logging a node whose heartbeats stop. It
//! runs unless `--without-gossip`, on the transports that can broadcast (Redis, AMQP). It
//! costs nothing per task: only worker events (a heartbeat per node every few seconds)
//! arrive here.

pub mod nodes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Shared;
use crate::broker::QueueSpec;
use crate::codec::AcceptContent;
use crate::control::mailbox::queue_arguments;
use crate::control::LamportClock;
use crate::events::{event_exchange, EVENT_EXCHANGE};
use crate::protocol::RawMessage;
use crate::value::Value;
use nodes::{Change, Nodes};

/// How often nodes whose heartbeats stopped are looked for (Celery's gossip `interval`).
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Celery's `event_queue_expires` default: the queue goes away a minute after its consumer.
const QUEUE_EXPIRES: f64 = 60.0;

/// The gossip queue as Celery's gossip receiver declares it: `celeryev.<uuid>`, bound to
/// `celeryev` with `worker.#`, not durable, auto-deleted, messages living one heartbeat
/// interval (`x-message-ttl`), the queue expiring after `event_queue_expires`.
pub(crate) fn queue(transport: &str, heartbeat_interval: f64) -> QueueSpec {
    let exchange = event_exchange(transport);
    QueueSpec {
        name: format!("{EVENT_EXCHANGE}.{}", uuid::Uuid::new_v4()),
        exchange: exchange.name,
        exchange_type: exchange.kind,
        routing_key: "worker.#".to_owned(),
        max_priority: None,
        durable: false,
        auto_delete: true,
        exclusive: false,
        exchange_durable: exchange.durable,
        exchange_auto_delete: exchange.auto_delete,
        arguments: queue_arguments(Some(heartbeat_interval), Some(QUEUE_EXPIRES)),
    }
}

/// A worker event as gossip reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Heard {
    /// The sending node.
    pub hostname: String,
    /// The event type (`worker-heartbeat`).
    pub kind: String,
    /// Its Lamport clock (0 when absent).
    pub clock: u64,
    /// Its heartbeat interval, when it says.
    pub freq: Option<f64>,
}

/// Why an event was skipped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum GossipError {
    /// The body could not be decoded.
    #[error("cannot decode the event: {0}")]
    Decode(String),
    /// The body is not a mapping, or lacks its hostname or type.
    #[error("not a worker event: {0}")]
    Malformed(&'static str),
}

/// Reads a worker event; `Ok(None)` for a task event (Redis without fanout patterns
/// delivers every event here, as Celery's gossip notes).
pub(crate) fn read(raw: &RawMessage, accept: &AcceptContent) -> Result<Option<Heard>, GossipError> {
    if raw.delivery_info.routing_key.split('.').next() == Some("task") {
        return Ok(None);
    }
    let body = accept
        .decode(&raw.content_type, &raw.body)
        .map_err(|e| GossipError::Decode(e.to_string()))?;
    let Value::Dict(body) = body else {
        return Err(GossipError::Malformed("the body is not a mapping"));
    };
    let kind = match body.get("type") {
        Some(Value::Str(t)) => t.clone(),
        _ => return Err(GossipError::Malformed("no type")),
    };
    if !kind.starts_with("worker-") {
        return Ok(None);
    }
    // Protocol 2 has the hostname in the headers; protocol 1 in the body.
    let hostname = match (raw.headers.get("hostname"), body.get("hostname")) {
        (Some(Value::Str(h)), _) | (_, Some(Value::Str(h))) => h.clone(),
        _ => return Err(GossipError::Malformed("no hostname")),
    };
    let clock = match body.get("clock") {
        Some(Value::Int(c)) => u64::try_from(*c).unwrap_or(0),
        Some(Value::Float(c)) if c.is_finite() && *c > 0.0 => c.min(u64::MAX as f64) as u64,
        _ => 0,
    };
    let freq = match body.get("freq") {
        Some(Value::Int(f)) => Some(*f as f64),
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    };
    Ok(Some(Heard {
        hostname,
        kind,
        clock,
        freq,
    }))
}

/// Takes in one event (Celery's gossip `on_message`): our own events move the clock one
/// tick on; another node's move it past the event's clock and update the table.
pub(crate) fn take_in(
    heard: &Heard,
    own_hostname: &str,
    clock: &LamportClock,
    nodes: &Nodes,
    now: Instant,
) {
    if heard.hostname == own_hostname {
        clock.forward();
        return;
    }
    clock.adjust(heard.clock);
    match nodes.observe(&heard.hostname, &heard.kind, heard.freq, now) {
        Change::Joined => tracing::debug!("{} joined the party", heard.hostname),
        Change::Left => tracing::debug!("{} left", heard.hostname),
        Change::Seen => {}
        Change::Ignored => tracing::debug!(
            node = %heard.hostname,
            "gossip: {} nodes tracked already; this one is not",
            nodes::MAX_NODES
        ),
    }
}

/// Starts gossip (nothing with `--without-gossip` or on a transport that cannot
/// broadcast). It ends when the worker's shutdown starts.
pub(crate) fn spawn(shared: Arc<Shared>) -> Option<JoinHandle<()>> {
    if !shared.settings.control.gossip {
        return None;
    }
    let transport = shared.broker.transport();
    if !super::mingle::TRANSPORTS.contains(&transport) {
        tracing::debug!("gossip: off: the {transport} transport cannot broadcast");
        return None;
    }
    let queue = queue(transport, shared.settings.events.heartbeat_interval);
    Some(tokio::spawn(async move {
        let name = queue.name.clone();
        let subscribed = tokio::select! {
            s = Arc::clone(&shared.broker).subscribe(queue) => s,
            _ = shared.shutdown.cancelled() => return,
        };
        let mut events = match subscribed {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, queue = %name, "gossip: cannot subscribe to the other workers' events");
                return;
            }
        };
        tracing::debug!(queue = %name, "gossip: listening to worker events");
        let accept = AcceptContent::default();
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = events.recv() => match m {
                    Some(raw) => match read(&raw, &accept) {
                        Ok(Some(heard)) => take_in(
                            &heard,
                            &shared.settings.hostname,
                            &shared.control.clock,
                            &shared.gossip,
                            Instant::now(),
                        ),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(error = %e, "gossip: skipping an event"),
                    },
                    None => break,
                },
                _ = sweep.tick() => {
                    for node in shared.gossip.sweep(Instant::now()) {
                        tracing::info!("missed heartbeat from {node}");
                    }
                }
                _ = shared.shutdown.cancelled() => break,
            }
        }
    }))
}

#[cfg(test)]
mod tests;
