//! The requests this worker holds (Celery's `worker.state` `requests`, `reserved_requests`,
//! `scheduled_requests`, `active_requests` and `total_count`), for the `active`, `reserved`,
//! `scheduled`, `query_task` and `stats` remote control commands. A request enters when its
//! message is decoded ([`Requests::admit`]) and leaves when its [`Held`] handle is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::protocol::TaskMessage;
use crate::value::{Dict, Value};

/// Where a held request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for its ETA or countdown.
    Scheduled,
    /// Received, waiting for a rate-limit token or a slot.
    Reserved,
    /// Running.
    Active,
}

impl Phase {
    /// Celery's `_state_of_task` word.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::Reserved => "reserved",
            Phase::Active => "active",
        }
    }
}

#[derive(Debug)]
struct Entry {
    id: String,
    name: String,
    args: Vec<Value>,
    kwargs: Dict,
    argsrepr: Option<String>,
    kwargsrepr: Option<String>,
    delivery_info: Dict,
    eta: Option<String>,
    phase: Phase,
    time_start: Option<f64>,
    acknowledged: bool,
}

/// The registry.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    seq: AtomicU64,
    held: Mutex<HashMap<u64, Entry>>,
    totals: Mutex<BTreeMap<String, u64>>,
}

/// A request's place in the registry; dropping it removes the request.
#[derive(Debug)]
pub(crate) struct Held {
    requests: Arc<Requests>,
    key: u64,
}

impl Requests {
    /// Records a received request, scheduled when it waits for an ETA.
    pub(crate) fn admit(self: &Arc<Self>, m: &TaskMessage, scheduled: bool) -> Held {
        let key = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut delivery_info = Dict::with_capacity(4);
        delivery_info.insert("exchange", m.delivery_info.exchange.as_str());
        delivery_info.insert("routing_key", m.delivery_info.routing_key.as_str());
        delivery_info.insert(
            "priority",
            m.properties
                .priority
                .map_or(Value::None, |p| Value::Int(i64::from(p))),
        );
        delivery_info.insert("redelivered", m.delivery_info.redelivered);
        let entry = Entry {
            id: m.id.clone(),
            name: m.name.clone(),
            args: m.args.clone(),
            kwargs: m.kwargs.clone(),
            argsrepr: m.argsrepr.clone(),
            kwargsrepr: m.kwargsrepr.clone(),
            delivery_info,
            eta: m.eta.as_ref().map(|d| d.isoformat()),
            phase: if scheduled {
                Phase::Scheduled
            } else {
                Phase::Reserved
            },
            time_start: None,
            acknowledged: false,
        };
        lock(&self.held).insert(key, entry);
        Held {
            requests: Arc::clone(self),
            key,
        }
    }

    /// How many requests are in `phase` (the metrics' ETA-held gauge).
    pub(crate) fn count(&self, phase: Phase) -> usize {
        lock(&self.held)
            .values()
            .filter(|e| e.phase == phase)
            .count()
    }

    /// `Request.info(safe)` of every request in `phase`, oldest first.
    pub(crate) fn infos(&self, phase: Phase, safe: bool, hostname: &str) -> Vec<Value> {
        let held = lock(&self.held);
        let mut keys: Vec<&u64> = held
            .iter()
            .filter(|(_, e)| e.phase == phase)
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| held.get(k))
            .map(|e| info(e, safe, hostname))
            .collect()
    }

    /// Celery's `scheduled` items: `{"eta", "priority", "request"}`.
    pub(crate) fn scheduled(&self, hostname: &str) -> Vec<Value> {
        let held = lock(&self.held);
        let mut entries: Vec<(&u64, &Entry)> = held
            .iter()
            .filter(|(_, e)| e.phase == Phase::Scheduled)
            .collect();
        entries.sort_by_key(|(k, _)| **k);
        entries
            .into_iter()
            .map(|(_, e)| {
                let mut d = Dict::with_capacity(3);
                d.insert("eta", e.eta.clone().map_or(Value::None, Value::Str));
                // Celery's timer entry priority for ETA requests.
                d.insert("priority", 6);
                d.insert("request", info(e, false, hostname));
                Value::Dict(d)
            })
            .collect()
    }

    /// Celery's `query_task` reply: `{id: [state, info]}` for each held id asked for.
    pub(crate) fn query(&self, ids: &[String], hostname: &str) -> Dict {
        let held = lock(&self.held);
        let mut out = Dict::new();
        for id in ids {
            if let Some(e) = held.values().find(|e| &e.id == id) {
                out.insert(
                    id.as_str(),
                    Value::List(vec![
                        Value::Str(e.phase.word().into()),
                        info(e, false, hostname),
                    ]),
                );
            }
        }
        out
    }

    /// Tasks started since the worker started, by name (Celery's `total_count`).
    pub(crate) fn totals(&self) -> Dict {
        let mut d = Dict::new();
        for (name, n) in lock(&self.totals).iter() {
            d.insert(name.as_str(), i64::try_from(*n).unwrap_or(i64::MAX));
        }
        d
    }

    fn update(&self, key: u64, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = lock(&self.held).get_mut(&key) {
            f(e);
        }
    }
}

impl Held {
    /// The ETA came: the request waits for a token or a slot.
    pub(crate) fn reserved(&self) {
        self.requests
            .update(self.key, |e| e.phase = Phase::Reserved);
    }

    /// The request runs now (counted in the totals).
    pub(crate) fn started(&self) {
        let mut name = None;
        self.requests.update(self.key, |e| {
            e.phase = Phase::Active;
            e.time_start = Some(now());
            name = Some(e.name.clone());
        });
        if let Some(name) = name {
            *lock(&self.requests.totals).entry(name).or_insert(0) += 1;
        }
    }

    /// The message was settled with the broker.
    pub(crate) fn acknowledged(&self) {
        self.requests.update(self.key, |e| e.acknowledged = true);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.requests.held).remove(&self.key);
    }
}

/// Celery's `Request.info(safe)`.
fn info(e: &Entry, safe: bool, hostname: &str) -> Value {
    let mut d = Dict::with_capacity(10);
    d.insert("id", e.id.as_str());
    d.insert("name", e.name.as_str());
    if safe {
        d.insert("args", e.argsrepr.clone().map_or(Value::None, Value::Str));
        d.insert(
            "kwargs",
            e.kwargsrepr.clone().map_or(Value::None, Value::Str),
        );
    } else {
        // A tuple, as Celery's request holds it (a pickle reply shows the difference).
        d.insert("args", Value::Tuple(e.args.clone()));
        d.insert("kwargs", Value::Dict(e.kwargs.clone()));
    }
    d.insert("type", e.name.as_str());
    d.insert("hostname", hostname);
    d.insert("time_start", e.time_start.map_or(Value::None, Value::Float));
    d.insert("acknowledged", e.acknowledged);
    d.insert("delivery_info", Value::Dict(e.delivery_info.clone()));
    d.insert(
        "worker_pid",
        if e.phase == Phase::Active {
            Value::Int(i64::from(std::process::id()))
        } else {
            Value::None
        },
    );
    Value::Dict(d)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> TaskMessage {
        let mut m = TaskMessage::new(id, "tasks.add");
        m.args = vec![Value::Int(1)];
        m
    }

    #[test]
    fn a_request_moves_through_the_phases_and_leaves() {
        let r = Arc::new(Requests::default());
        let h = r.admit(&message("a"), true);
        assert_eq!(r.scheduled("n").len(), 1);
        h.reserved();
        assert_eq!(r.infos(Phase::Reserved, false, "n").len(), 1);
        h.started();
        h.acknowledged();
        let active = r.infos(Phase::Active, false, "n");
        let Value::Dict(d) = &active[0] else {
            panic!("a dict")
        };
        assert_eq!(d.get("acknowledged"), Some(&Value::Bool(true)));
        assert_eq!(d.get("type"), Some(&Value::Str("tasks.add".into())));
        assert!(matches!(d.get("time_start"), Some(Value::Float(_))));
        let q = r.query(&["a".into(), "b".into()], "n");
        assert_eq!(q.len(), 1);
        assert_eq!(r.totals().get("tasks.add"), Some(&Value::Int(1)));
        drop(h);
        assert!(r.infos(Phase::Active, false, "n").is_empty());
    }
}
