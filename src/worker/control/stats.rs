//! `stats`: Celery's worker statistics, field for field where rcelery has the fact (`total`, `pid`, `clock`, `uptime`, `pool`, `broker` without its password, `prefetch_count`, `rusage`). `max-concurrency` and `prefetch_count` follow `pool_grow` / `pool_shrink`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let s = &shared.settings;
        let mut d = Dict::with_capacity(8);
        d.insert("total", Value::Dict(shared.requests.totals()));
        d.insert("pid", i64::from(std::process::id()));
        d.insert("clock", shared.control.clock.value().to_string());
        d.insert(
            "uptime",
            i64::try_from(shared.control.started.elapsed().as_secs()).unwrap_or(i64::MAX),
        );
        let mut pool = Dict::with_capacity(6);
        pool.insert("implementation", "rcelery:Slots");
        pool.insert(
            "max-concurrency",
            i64::try_from(shared.slots.capacity()).unwrap_or(i64::MAX),
        );
        pool.insert(
            "processes",
            Value::List(vec![Value::Int(i64::from(std::process::id()))]),
        );
        pool.insert("max-tasks-per-child", "N/A");
        pool.insert("put-guarded-by-semaphore", false);
        let secs =
            |l: Option<crate::task::Seconds>| l.map_or(Value::Int(0), |s| Value::Float(s.as_f64()));
        pool.insert(
            "timeouts",
            Value::List(vec![secs(s.time_limits.soft), secs(s.time_limits.hard)]),
        );
        d.insert("pool", Value::Dict(pool));
        d.insert("broker", Value::Dict(s.control.broker_info.clone()));
        d.insert(
            "prefetch_count",
            i64::try_from(super::super::prefetch_count_for(s, shared.slots.capacity()))
                .unwrap_or(i64::MAX),
        );
        d.insert("rusage", rusage());
        Ok(Some(Value::Dict(d)))
    })
}

/// Celery's `rusage` fields, read from `/proc/self` (Linux); `"N/A"` elsewhere, as Celery
/// answers where `resource` is missing. Fields `/proc` does not give are 0.
fn rusage() -> Value {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Value::Str("N/A".into());
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> i64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    let status_kb = |key: &str| -> i64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // Linux reports times in clock ticks of 1/100 s (USER_HZ).
    let ticks = |n: usize| field(n) as f64 / 100.0;
    let mut d = Dict::with_capacity(16);
    d.insert("utime", ticks(14));
    d.insert("stime", ticks(15));
    d.insert("maxrss", status_kb("VmHWM:"));
    for k in ["ixrss", "idrss", "isrss"] {
        d.insert(k, 0);
    }
    d.insert("minflt", field(10));
    d.insert("majflt", field(12));
    d.insert("nswap", 0);
    d.insert("inblock", 0);
    d.insert("oublock", 0);
    d.insert("msgsnd", 0);
    d.insert("msgrcv", 0);
    d.insert("nsignals", 0);
    d.insert("nvcsw", status_kb("voluntary_ctxt_switches:"));
    d.insert("nivcsw", status_kb("nonvoluntary_ctxt_switches:"));
    Value::Dict(d)
}
