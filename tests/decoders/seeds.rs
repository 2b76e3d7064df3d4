//! Seed inputs for the deterministic tests, from the golden captures of real Celery in
//! `python-fixtures/golden/` (the fuzz corpora are seeded from the same files by
//! `fuzz/seed.py`).

use std::path::{Path, PathBuf};

use rcelery::broker::redis::parse_envelope;
use rcelery::codec::{json, pickle};
use rcelery::value::{Dict, Value};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python-fixtures/golden")
}

/// Every `*.json` capture in a golden subdirectory, parsed.
fn captures(dir: &str) -> Vec<serde_json::Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(golden().join(dir))
        .unwrap_or_else(|e| panic!("golden {dir}: {e}"))
        .map(|entry| entry.expect("readable golden directory").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            serde_json::from_slice(&std::fs::read(p).expect("readable capture"))
                .expect("capture is JSON")
        })
        .collect()
}

/// The envelopes exactly as kombu stored them.
pub fn envelopes() -> Vec<Vec<u8>> {
    let out: Vec<Vec<u8>> = captures("messages")
        .iter()
        .map(|c| c["raw"].as_str().expect("raw envelope").as_bytes().to_vec())
        .collect();
    assert!(out.len() > 40, "golden messages missing");
    out
}

/// The stored result metas (JSON, as captured), their children's, and each also pickled.
pub fn result_metas() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for c in captures("results") {
        out.extend(c["raw"].as_str().map(|s| s.as_bytes().to_vec()));
        for child in c["children"].as_array().into_iter().flatten() {
            out.extend(child["raw"].as_str().map(|s| s.as_bytes().to_vec()));
        }
    }
    let pickled: Vec<Vec<u8>> = out
        .iter()
        .map(|raw| pickle::encode(&json::decode(raw).expect("golden meta decodes"), 4))
        .collect();
    out.extend(pickled);
    assert!(out.len() > 80, "golden results missing");
    out
}

/// JSON documents: envelopes, JSON task bodies, values and decode cases, result metas.
pub fn json_documents() -> Vec<Vec<u8>> {
    let mut out = envelopes();
    for raw in envelopes() {
        let message = parse_envelope(&raw)
            .expect("golden envelope parses")
            .message;
        if message.content_type == "application/json" {
            out.push(message.body);
        }
    }
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(golden().join("json_values.json")).expect("json_values.json"),
    )
    .expect("json_values.json is JSON");
    for case in doc["values"].as_array().expect("values") {
        out.extend(case["json"].as_str().map(|s| s.as_bytes().to_vec()));
    }
    for case in doc["decode"].as_array().expect("decode cases") {
        out.extend(case["input"].as_str().map(|s| s.as_bytes().to_vec()));
    }
    out.extend(
        result_metas()
            .into_iter()
            .filter(|m| m.first() != Some(&0x80)),
    );
    out
}

/// Protocol inputs (see `protocol::input`): each golden message's headers, properties and
/// body, accepted as JSON and pickle.
pub fn protocol_inputs() -> Vec<Vec<u8>> {
    envelopes()
        .iter()
        .map(|raw| {
            let m = parse_envelope(raw).expect("golden envelope parses").message;
            let mut props = Dict::new();
            let opt = |s: &Option<String>| s.clone().map_or(Value::None, Value::Str);
            props.insert("correlation_id", opt(&m.properties.correlation_id));
            props.insert("reply_to", opt(&m.properties.reply_to));
            props.insert(
                "delivery_mode",
                m.properties
                    .delivery_mode
                    .map_or(Value::None, |d| Value::Int(d.into())),
            );
            props.insert(
                "priority",
                m.properties
                    .priority
                    .map_or(Value::None, |p| Value::Int(p.into())),
            );
            props.insert("exchange", m.delivery_info.exchange.as_str());
            props.insert("routing_key", m.delivery_info.routing_key.as_str());
            props.insert("redelivered", m.delivery_info.redelivered);
            super::protocol::input(
                super::protocol::flags_for(&m.content_type),
                &json::encode(&Value::Dict(m.headers)),
                &json::encode(&Value::Dict(props)),
                &m.body,
            )
        })
        .collect()
}
