//! Deterministic counterparts of the cargo-fuzz targets in `fuzz/` for the decoders other than
//! pickle (see `tests/pickle_robustness.rs` for that one): every golden input from real
//! Celery, then a fixed number of mutations of them (fixed seed), each checked against the
//! invariants in `tests/decoders/`.

mod decoders;

use decoders::mutate::{mutate, Rng};
use decoders::{envelope, json, protocol, result_meta, seeds};

/// Checks every seed (each must decode when `seeds_decode`), then `rounds` mutations; returns
/// how many of the mutations decoded.
fn run(
    seeds: &[Vec<u8>],
    seeds_decode: bool,
    seed: u64,
    rounds: usize,
    interesting: &[u8],
    check: fn(&[u8]) -> bool,
) -> usize {
    for s in seeds {
        assert!(
            checked(check, s) || !seeds_decode,
            "a golden seed does not decode: {}",
            String::from_utf8_lossy(s)
        );
    }
    let mut rng = Rng(seed);
    (0..rounds)
        .filter(|_| checked(check, &mutate(&mut rng, seeds, interesting)))
        .count()
}

/// `check(input)`, printing the input if it panics.
fn checked(check: fn(&[u8]) -> bool, input: &[u8]) -> bool {
    std::panic::catch_unwind(|| check(input)).unwrap_or_else(|panic| {
        eprintln!("failing input: {:?}", String::from_utf8_lossy(input));
        std::panic::resume_unwind(panic)
    })
}

/// JSON punctuation, literals' first letters, escapes, kombu tag names' letters.
const JSON_BYTES: &[u8] = b"{}[]\",:\\ -+.0123456789eEtfnNIu_\x00\x1f\x7f\xc3\xff";

/// Proportion sanity: the mutations are neither all fatal nor all harmless.
fn some_but_not_all(decoded: usize, rounds: usize) {
    assert!(
        decoded > rounds / 100 && decoded < rounds * 99 / 100,
        "{decoded} of {rounds} decoded"
    );
}

#[test]
fn mutated_envelopes_keep_the_invariants() {
    let rounds = 20_000;
    let decoded = run(
        &seeds::envelopes(),
        true,
        0x5eed_e0e1_0000_0001,
        rounds,
        JSON_BYTES,
        envelope::check,
    );
    some_but_not_all(decoded, rounds);
}

#[test]
fn mutated_json_keeps_the_invariants() {
    let rounds = 40_000;
    let decoded = run(
        &seeds::json_documents(),
        false,
        0x5eed_0450_0000_0002,
        rounds,
        JSON_BYTES,
        json::check,
    );
    some_but_not_all(decoded, rounds);
}

#[test]
fn mutated_task_messages_keep_the_invariants() {
    // Pickle opcodes too: the bodies are pickles half the time.
    let interesting: Vec<u8> = [JSON_BYTES, b"(.)]}eKJMNXaq\x80\x8c\x94\x95"].concat();
    let rounds = 20_000;
    let decoded = run(
        &seeds::protocol_inputs(),
        true,
        0x5eed_7a5c_0000_0003,
        rounds,
        &interesting,
        protocol::check,
    );
    some_but_not_all(decoded, rounds);
}

#[test]
fn mutated_result_metas_keep_the_invariants() {
    let interesting: Vec<u8> = [JSON_BYTES, b"(.)]}eKJMNXaq\x80\x8c\x94\x95"].concat();
    let rounds = 30_000;
    let decoded = run(
        &seeds::result_metas(),
        true,
        0x5eed_4e7a_0000_0004,
        rounds,
        &interesting,
        result_meta::check,
    );
    some_but_not_all(decoded, rounds);
}

#[test]
fn the_tail_port_reads_kombus_envelopes() {
    // The fetch script's fast path must apply to what kombu writes, or the port tests nothing.
    for raw in seeds::envelopes() {
        let tag = rcelery::broker::redis::parse_envelope(&raw)
            .expect("golden envelope")
            .delivery_tag;
        assert_eq!(
            envelope::kombu_tail_tag(&raw),
            tag,
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
}

#[test]
fn documents_at_the_nesting_limit_keep_the_invariants() {
    for depth in [511, 512, 513, 600] {
        let objects = format!("{}1{}", "{\"a\": ".repeat(depth), "}".repeat(depth));
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let mixed = format!(
            "{}1{}",
            "{\"a\": [".repeat(depth / 2),
            "]}".repeat(depth / 2)
        );
        for doc in [&objects, &arrays, &mixed] {
            checked(json::check, doc.as_bytes());
        }
        let deep_headers = format!(r#"{{"body": "", "headers": {objects}, "properties": {{}}}}"#);
        checked(envelope::check, deep_headers.as_bytes());
    }
}

/// Inputs on which a fuzz run once found a violation (`tests/fuzz-crashes/<target>/`), kept
/// so that the fix stays.
#[test]
fn inputs_the_fuzzer_found_keep_the_invariants() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashes");
    let targets: [(&str, fn(&[u8]) -> bool); 4] = [
        ("envelope", envelope::check),
        ("json", json::check),
        ("protocol", protocol::check),
        ("result_meta", result_meta::check),
    ];
    for (target, check) in targets {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable crash directory").path();
            checked(check, &std::fs::read(&path).expect("readable crash input"));
        }
    }
}
