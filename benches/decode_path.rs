//! Per-message CPU cost of the worker's decode and result-encode path, on a message captured
//! from real Celery (`python-fixtures/golden/messages/add_pickle.json`: `tasks.add(2, 3)` as
//! Celery 5.5 publishes it with the pickle serializer on Redis).
//!
//! Run with `cargo bench --bench decode_path`. Prints nanoseconds per message for each stage;
//! the end-to-end comparison with Python Celery is `benches/throughput.py`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rcelery::backend::meta::{MetaEncoder, ResultRecord, State};
use rcelery::broker::redis::parse_envelope;
use rcelery::codec::{AcceptContent, Serializer};
use rcelery::protocol::decode_task;
use rcelery::Value;

/// The allocator the `rcelery` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/python-fixtures/golden/messages/add_pickle.json"
);

/// Runs `f` in five rounds of ~200 ms (after a warm-up) and prints the best round's mean time
/// per call: the minimum is the figure least disturbed by other load on the machine.
fn measure(label: &str, mut f: impl FnMut()) {
    for _ in 0..10_000 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut iterations = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            for _ in 0..1_000 {
                f();
            }
            iterations += 1_000;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iterations as f64);
    }
    println!("{label:<34}{best:>9.0} ns/message");
}

fn main() {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture readable"))
            .expect("fixture is JSON");
    let raw = fixture["raw"]
        .as_str()
        .expect("fixture has the raw envelope")
        .as_bytes()
        .to_vec();
    let accept = AcceptContent::from_names(&["json", "pickle"]).expect("known serializers");
    let registered = |name: &str| name == "tasks.add";
    let encoder = MetaEncoder {
        serializer: Serializer::Json,
        extended: false,
        timezone: chrono_tz::UTC,
    };

    measure("envelope parse", || {
        black_box(parse_envelope(black_box(&raw)).ok());
    });
    let envelope = parse_envelope(&raw).expect("the fixture is a kombu envelope");
    let m = &envelope.message;
    let headers_json = rcelery::codec::json::encode(&Value::Dict(m.headers.clone()));
    measure("headers alone (JSON decode)", || {
        black_box(rcelery::codec::json::decode(black_box(&headers_json)).ok());
    });
    measure("pickle body alone", || {
        black_box(
            accept
                .decode(black_box(&m.content_type), black_box(&m.body))
                .ok(),
        );
    });
    measure("envelope parse + task decode", || {
        let Ok(mut envelope) = parse_envelope(black_box(&raw)) else {
            return;
        };
        black_box(decode_task(&mut envelope.message, &accept, registered).ok());
    });
    let mut first = parse_envelope(&raw).expect("the fixture is a kombu envelope");
    let message =
        decode_task(&mut first.message, &accept, registered).expect("the fixture decodes");
    let record = |m: &rcelery::protocol::TaskMessage| ResultRecord {
        task_id: m.id.clone(),
        state: State::Success,
        result: Value::Int(5),
        traceback: None,
        children: Vec::new(),
        group_id: m.group.clone(),
        parent_id: m.parent_id.clone(),
        extended: None,
        reply_to: None,
        correlation_id: None,
    };
    measure("result meta encode (JSON)", || {
        black_box(encoder.encode(black_box(&record(&message))));
    });
    measure("all of the above", || {
        let Ok(mut envelope) = parse_envelope(black_box(&raw)) else {
            return;
        };
        let Ok(message) = decode_task(&mut envelope.message, &accept, registered) else {
            return;
        };
        black_box(encoder.encode(&record(&message)));
    });
}
