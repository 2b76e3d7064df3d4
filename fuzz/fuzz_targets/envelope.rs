//! Fuzzes kombu's Redis envelope reader (`parse_envelope`), the restore and publish paths,
//! and the fetch script's fast path for delivery tags.
//! The invariants are in `tests/decoders/envelope.rs`, shared with `tests/decoder_robustness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../tests/decoders/envelope.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
