//! Decoder invariants shared by the cargo-fuzz targets in `fuzz/` (which include these files
//! by path) and their deterministic counterparts in `tests/decoder_robustness.rs`. Each module
//! has one `check(input)` that panics when an invariant does not hold.

pub mod envelope;
pub mod json;
pub mod mutate;
pub mod protocol;
pub mod result_meta;
pub mod seeds;
