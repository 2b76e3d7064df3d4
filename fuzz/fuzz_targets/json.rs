//! Fuzzes kombu's JSON codec: `json::decode` with kombu's type tags, `json::encode`, and the
//! `PullReader`.
//! The invariants are in `tests/decoders/json.rs`, shared with `tests/decoder_robustness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../tests/decoders/json.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
