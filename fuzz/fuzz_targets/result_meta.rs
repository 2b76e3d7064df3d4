//! Fuzzes the result-meta reader (`backend::meta::decode_stored`) and what reads a meta
//! after it (states, exceptions, children, chord parts).
//! The invariants are in `tests/decoders/result_meta.rs`, shared with `tests/decoder_robustness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../tests/decoders/result_meta.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
