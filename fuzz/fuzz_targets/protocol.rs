//! Fuzzes task-message decoding (`decode_task`: protocol v1 and v2, JSON and pickle bodies)
//! on a message built from the input (flags byte, headers JSON, properties JSON, body).
//! The invariants are in `tests/decoders/protocol.rs`, shared with `tests/decoder_robustness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../tests/decoders/protocol.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
