//! The worker's own events: `worker-online` at start, `worker-heartbeat` every `freq`
//! seconds, `worker-offline` at shutdown (Celery's `Heart`), with Celery's fields.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::dispatcher::EventDispatcher;
use super::event::Event;
use crate::value::{Dict, Value};

/// What the worker is doing, for a worker event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Tasks running now (`active`).
    pub active: usize,
    /// Tasks run since start (`processed`).
    pub processed: u64,
}

/// A worker event (`worker-online`, `worker-heartbeat`, `worker-offline`): `freq, active,
/// processed, loadavg, sw_ident, sw_ver, sw_sys`.
pub fn worker_event(kind: &'static str, freq: f64, counts: WorkerCounts) -> Event {
    let mut d = Dict::with_capacity(7);
    d.insert("freq", Value::Float(freq));
    d.insert("active", i64::try_from(counts.active).unwrap_or(i64::MAX));
    d.insert(
        "processed",
        i64::try_from(counts.processed).unwrap_or(i64::MAX),
    );
    d.insert(
        "loadavg",
        Value::List(load_average().into_iter().map(Value::Float).collect()),
    );
    d.insert("sw_ident", SW_IDENT);
    d.insert("sw_ver", env!("CARGO_PKG_VERSION"));
    d.insert("sw_sys", system_name());
    Event::new(kind, d)
}

/// The software name in worker events (Celery sends `py-celery`).
pub const SW_IDENT: &str = "rcelery";

/// The system's 1, 5 and 15 minute load averages, rounded to two places as Celery's
/// `load_average()`; zeros where they cannot be read.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, word) in out.iter_mut().zip(text.split_whitespace()) {
        if let Ok(v) = word.parse::<f64>() {
            *slot = (v * 100.0).round() / 100.0;
        }
    }
    out
}

/// Python's `platform.system()` for this build's OS.
fn system_name() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        other => other,
    }
}

/// Sends `worker-online`, then `worker-heartbeat` every `freq` seconds until `stop`;
/// `counts` says what the worker is doing at each beat. `worker-offline` is the caller's, at
/// shutdown, once the tasks are done.
pub async fn beat(
    events: EventDispatcher,
    freq: f64,
    counts: impl Fn() -> WorkerCounts,
    stop: CancellationToken,
) {
    events.send(worker_event("worker-online", freq, counts()));
    let period = Duration::from_secs_f64(if freq.is_finite() && freq > 0.0 {
        freq.min(1e6)
    } else {
        super::dispatcher::DEFAULT_HEARTBEAT_INTERVAL
    });
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => events.send(worker_event("worker-heartbeat", freq, counts())),
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_events_have_celerys_fields() {
        let e = worker_event(
            "worker-heartbeat",
            2.0,
            WorkerCounts {
                active: 1,
                processed: 9,
            },
        );
        let keys: Vec<&str> = e.fields.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "freq",
                "active",
                "processed",
                "loadavg",
                "sw_ident",
                "sw_ver",
                "sw_sys"
            ]
        );
        assert_eq!(e.fields.get("processed"), Some(&Value::Int(9)));
        assert_eq!(
            e.fields
                .get("loadavg")
                .and_then(Value::as_seq)
                .map(<[Value]>::len),
            Some(3)
        );
    }
}
