//! Mingle (Celery's `Mingle` consumer step): before consuming tasks, a starting worker
//! broadcasts `hello(from_node, revoked)` to every worker, collects their replies for one
//! second, and takes in each reply's revoked ids and Lamport clock, so that a task revoked
//! before it started stays revoked here. Only on transports that can broadcast (Redis,
//! AMQP), and not with `--without-mingle`.

use std::sync::Arc;
use std::time::Duration;

use super::revoke::Revocations;
use super::Shared;
use crate::control::{Broadcast, ControlClient, LamportClock};
use crate::value::{Dict, Value};

/// How long replies are collected (Celery's mingle `inspect(timeout=1.0)`).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

/// The longest mingle may take in all (a broker that does not answer must not hold the
/// start).
const LIMIT: Duration = Duration::from_secs(10);

/// The transports mingle runs on (Celery's `compatible_transports`, less `gcpubsub`).
pub(crate) const TRANSPORTS: [&str; 2] = ["amqp", "redis"];

/// Why one node's reply could not be taken in (logged; the others still count).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum SyncError {
    /// The reply is not a mapping (Celery's `sync_with_node(**reply)` fails the same way).
    #[error("the reply is not a mapping")]
    NotAMapping,
    /// `clock` is neither an integer nor empty.
    #[error("clock is not an integer")]
    Clock,
    /// `revoked` is neither a collection of ids nor a mapping keyed by id.
    #[error("revoked is not a collection of task ids")]
    Revoked,
}

/// The task ids in a `revoked` value as Celery sends it: its `LimitedSet._data` (a mapping
/// keyed by id), or a list, tuple or set of ids. Non-string members are skipped; `None`
/// holds no ids.
pub(crate) fn revoked_ids(value: Option<&Value>) -> Result<Vec<String>, SyncError> {
    let members: Box<dyn Iterator<Item = &Value>> = match value {
        None | Some(Value::None) => return Ok(Vec::new()),
        Some(Value::Dict(d)) => Box::new(d.iter().map(|(k, _)| k)),
        Some(Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v)) => {
            Box::new(v.iter())
        }
        Some(_) => return Err(SyncError::Revoked),
    };
    Ok(members
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect())
}

/// Takes in one node's `hello` reply (Celery's `sync_with_node`): the clock is adjusted
/// past the reply's `clock` (moved one tick on when it has none), and its revoked ids are
/// added to `revocations`. Returns how many ids it named.
pub(crate) fn sync_with_node(
    clock: &LamportClock,
    revocations: &Revocations,
    reply: &Value,
) -> Result<usize, SyncError> {
    let Value::Dict(reply) = reply else {
        return Err(SyncError::NotAMapping);
    };
    let ids = revoked_ids(reply.get("revoked"))?;
    match reply.get("clock") {
        None | Some(Value::None) | Some(Value::Int(0)) => {
            clock.forward();
        }
        Some(Value::Int(c)) if *c > 0 => {
            clock.adjust(u64::try_from(*c).unwrap_or(0));
        }
        Some(_) => return Err(SyncError::Clock),
    }
    let n = ids.len();
    revocations.merge(ids);
    Ok(n)
}

/// Runs mingle for the worker (nothing with `--without-mingle` or on a transport that
/// cannot broadcast).
pub(crate) async fn run(shared: &Shared) {
    let control = &shared.settings.control;
    if !control.mingle {
        return;
    }
    let transport = shared.broker.transport();
    if !TRANSPORTS.contains(&transport) {
        tracing::debug!("mingle: skipped: the {transport} transport cannot broadcast");
        return;
    }
    tracing::info!("mingle: searching for neighbors");
    let client = ControlClient::new(
        Arc::clone(&shared.broker),
        control.mailbox.clone(),
        control.serializer,
        shared.settings.accept.clone(),
    );
    let hostname = &shared.settings.hostname;
    let mut arguments = Dict::with_capacity(2);
    arguments.insert("from_node", hostname.as_str());
    let ours = shared.revocations.ids();
    arguments.insert(
        "revoked",
        Value::List(ours.into_iter().map(Value::Str).collect()),
    );
    let hello = Broadcast {
        method: "hello".to_owned(),
        arguments,
        destination: None,
        reply: true,
        timeout: TIMEOUT,
        limit: None,
    };
    let mut replies = match tokio::time::timeout(LIMIT, client.broadcast(&hello)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "mingle: cannot reach the other workers; starting without their revoked ids");
            return;
        }
        Err(_) => {
            tracing::warn!("mingle: no answer within {LIMIT:?}; starting without the other workers' revoked ids");
            return;
        }
    };
    replies.shift_remove(hostname.as_str());
    let answered: Vec<_> = replies.iter().filter(|(_, v)| v.truthy()).collect();
    if answered.is_empty() {
        tracing::info!("mingle: all alone");
        return;
    }
    tracing::info!("mingle: sync with {} nodes", answered.len());
    for (node, reply) in answered {
        tracing::debug!("mingle: processing reply from {node}");
        match sync_with_node(&shared.control.clock, &shared.revocations, reply) {
            Ok(n) => tracing::debug!(node = %node, revoked = n, "mingle: synced"),
            Err(e) => tracing::error!("mingle: sync with {node} failed: {e}"),
        }
    }
    tracing::info!("mingle: sync complete");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(pairs: Vec<(&str, Value)>) -> Value {
        let mut d = Dict::new();
        for (k, v) in pairs {
            d.insert(k, v);
        }
        Value::Dict(d)
    }

    #[test]
    fn celery_limited_set_data_is_read_by_key() {
        // A Python worker replies with `LimitedSet._data`: {id: [timestamp, id]}.
        let mut data = Dict::new();
        data.insert("a", Value::List(vec![Value::Float(1.5e9), Value::str("a")]));
        data.insert("b", Value::List(vec![Value::Float(1.5e9), Value::str("b")]));
        let ids = revoked_ids(Some(&Value::Dict(data))).unwrap();
        assert_eq!(ids, ["a", "b"]);
        let list = Value::List(vec![Value::str("c"), Value::Int(3)]);
        assert_eq!(revoked_ids(Some(&list)).unwrap(), ["c"]);
        assert!(revoked_ids(Some(&Value::None)).unwrap().is_empty());
        assert_eq!(revoked_ids(Some(&Value::Int(1))), Err(SyncError::Revoked));
    }

    #[test]
    fn a_reply_merges_ids_and_moves_the_clock_past_it() {
        let clock = LamportClock::new(3);
        let store = Revocations::default();
        let r = reply(vec![
            (
                "revoked",
                Value::List(vec![Value::str("x"), Value::str("y")]),
            ),
            ("clock", Value::Int(40)),
        ]);
        assert_eq!(sync_with_node(&clock, &store, &r), Ok(2));
        assert_eq!(clock.value(), 41);
        assert_eq!(store.ids(), ["x", "y"]);
        // A clock behind ours still moves it on by one.
        let r = reply(vec![("clock", Value::Int(5))]);
        assert_eq!(sync_with_node(&clock, &store, &r), Ok(0));
        assert_eq!(clock.value(), 42);
    }

    #[test]
    fn no_clock_forwards_and_garbage_is_refused_untouched() {
        let clock = LamportClock::new(7);
        let store = Revocations::default();
        assert_eq!(sync_with_node(&clock, &store, &reply(vec![])), Ok(0));
        assert_eq!(clock.value(), 8);
        assert_eq!(
            sync_with_node(&clock, &store, &Value::str("pong")),
            Err(SyncError::NotAMapping)
        );
        let bad = reply(vec![
            ("revoked", Value::List(vec![Value::str("z")])),
            ("clock", Value::str("soon")),
        ]);
        assert_eq!(sync_with_node(&clock, &store, &bad), Err(SyncError::Clock));
        assert_eq!(clock.value(), 8);
        assert!(store.ids().is_empty());
    }
}
