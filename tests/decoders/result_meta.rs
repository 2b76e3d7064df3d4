//! Invariants of the result-meta reader (`rcelery::backend::meta::decode_stored`, which the
//! Redis backend uses for every meta and chord part it reads), shared by the `result_meta`
//! fuzz target and `tests/decoder_robustness.rs`:
//!
//! - reading never panics, and neither do the readers that interpret a meta (`AsyncResult`'s
//!   status and exception, children as result tuples, chord parts, saved groups);
//! - what was read, written again with pickle (and with JSON when it was JSON), reads the same;
//! - a meta of Celery's shape is what our writer (`MetaEncoder::meta_at`) writes for the
//!   record it holds: the reader and the writer agree key for key.

use rcelery::backend::chord;
use rcelery::backend::join::ResultNode;
use rcelery::backend::meta::decode_stored;
use rcelery::backend::meta::exception_parts;
use rcelery::backend::{ExtendedMeta, MetaEncoder, ResultRecord, State};
use rcelery::codec::{json, Serializer};
use rcelery::value::Value;

/// Checks every invariant on one input; panics on a violation. True if it was read.
pub fn check(raw: &[u8]) -> bool {
    let Ok(meta) = decode_stored(raw) else {
        return false;
    };
    interpret(&meta);
    let read_as_json = raw.first() != Some(&0x80);
    let mut serializers = vec![Serializer::Pickle];
    if read_as_json {
        serializers.push(Serializer::Json);
        assert!(json::decode(raw).is_ok());
    }
    for &s in &serializers {
        let again = decode_stored(&s.encode(&meta))
            .unwrap_or_else(|e| panic!("our own {s:?} meta does not read: {e}"));
        assert_eq!(
            format!("{again:?}"),
            format!("{meta:?}"),
            "{s:?} round trip changed the meta"
        );
    }
    if let Some((record, date_done, extended)) = record_of(&meta) {
        let encoder = MetaEncoder {
            serializer: Serializer::Json,
            extended,
            timezone: chrono_tz::UTC,
        };
        let written = encoder.meta_at(&record, date_done);
        assert_eq!(
            format!("{written:?}"),
            format!("{meta:?}"),
            "the writer writes this meta otherwise"
        );
    }
    true
}

/// What the backend's readers make of a meta: none may panic.
fn interpret(meta: &Value) {
    let d = meta.as_dict();
    let status = d
        .and_then(|d| d.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("PENDING");
    let result = d
        .and_then(|d| d.get("result"))
        .cloned()
        .unwrap_or(Value::None);
    let _ = State::from_name(status);
    let _ = exception_parts(&result);
    if let Some(children) = d.and_then(|d| d.get("children")).and_then(Value::as_seq) {
        for child in children {
            let _ = ResultNode::from_tuple(child);
        }
    }
    let _ = ResultNode::list_from_tuples(&result);
    let unpacked = chord::unpack(std::slice::from_ref(meta));
    if let Some([_, _, Value::Str(state), value]) = meta.as_seq() {
        if !matches!(state.as_str(), "FAILURE" | "REVOKED") {
            assert_eq!(unpacked, Ok(vec![value.clone()]), "a chord part's result");
        }
    }
}

/// The record, `date_done` and `result_extended` of a meta laid out exactly as Celery (and
/// our writer) lay one out; `None` for any other shape.
fn record_of(meta: &Value) -> Option<(ResultRecord, Option<String>, bool)> {
    let d = meta.as_dict()?;
    let str_or_none = |v: &Value| match v {
        Value::Str(s) => Some(Some(s.clone())),
        Value::None => Some(None),
        _ => None,
    };
    let get = |k: &str| d.get(k);
    let has = |k: &str| get(k).is_some();
    let extended = has("name");
    let mut keys = vec!["status", "result", "traceback", "children", "date_done"];
    keys.extend(["group_id", "parent_id"].into_iter().filter(|k| has(k)));
    if extended {
        keys.extend(["name", "args", "kwargs", "worker", "retries", "queue"]);
    }
    keys.push("task_id");
    let actual: Vec<&str> = d.iter().map(|(k, _)| k.as_str().unwrap_or("\0")).collect();
    if actual != keys {
        return None;
    }
    let state = State::from_name(get("status")?.as_str()?)?;
    let Value::List(children) = get("children")? else {
        return None;
    };
    let extended_meta = if extended {
        Some(ExtendedMeta {
            name: str_or_none(get("name")?)?,
            args: get("args")?.clone(),
            kwargs: get("kwargs")?.clone(),
            worker: str_or_none(get("worker")?)?,
            retries: match get("retries")? {
                Value::Int(i) => Some(*i),
                Value::None => None,
                _ => return None,
            },
            queue: str_or_none(get("queue")?)?,
            argsrepr: None,
            kwargsrepr: None,
            periodic_task_name: None,
        })
    } else {
        None
    };
    let record = ResultRecord {
        task_id: get("task_id")?.as_str()?.to_owned(),
        state,
        result: get("result")?.clone(),
        traceback: str_or_none(get("traceback")?)?,
        children: children.clone(),
        group_id: get("group_id")
            .map(|v| v.as_str().map(str::to_owned))
            .map_or(Some(None), |g| g.map(Some))?,
        parent_id: get("parent_id")
            .map(|v| v.as_str().map(str::to_owned))
            .map_or(Some(None), |p| p.map(Some))?,
        extended: extended_meta,
        reply_to: None,
        correlation_id: None,
    };
    Some((record, str_or_none(get("date_done")?)?, extended))
}
