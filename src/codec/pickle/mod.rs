//! Safe pickle: a decoder that never executes code and an encoder byte-compatible with
//! CPython's.
//!
//! [`decode`] runs a pickle virtual machine for protocols 0–5 that only builds
//! [`Value`]s. Globals (`GLOBAL`, `STACK_GLOBAL`, `INST`) are looked up in a fixed allow list
//! of types we construct ourselves (datetime family, `Decimal`, `UUID`, `OrderedDict`, sets,
//! bytes, zone info, ...); any other global is refused with
//! [`PickleError::ForbiddenGlobal`] before anything else happens. Input-claimed lengths are
//! checked against the remaining input before allocating, allocation overall is bounded by a
//! multiple of the input size, nesting is bounded, and no input can make it panic.
//! See `docs/security-pickle.md`.
//!
//! [`encode`] writes what CPython 3.11's `pickle.dumps(value, protocol)` writes for the same
//! value built fresh (protocols 2–5), including memo indices and protocol-4 framing.

mod apply;
mod construct;
mod decimal;
mod decode;
mod encode;
mod globals;
mod machine;
mod materialize;
pub mod opcodes;
mod text;

use crate::value::Value;

/// Why a pickle could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The pickle names a global that is not on the allow list; nothing was executed.
    #[error("refused to load global {module}.{name}: not an allowed type")]
    ForbiddenGlobal {
        /// The global's module.
        module: String,
        /// The global's name.
        name: String,
    },
    /// The bytes are not a valid pickle (or use an allowed global in an unsupported way).
    #[error("invalid pickle at byte {offset}: {message}")]
    Invalid {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong.
        message: String,
    },
    /// The pickle uses a mechanism that needs the producer's code (persistent IDs, the
    /// extension registry, out-of-band buffers).
    #[error("refused pickle at byte {offset}: {what} are not supported")]
    Refused {
        /// Byte offset of the opcode.
        offset: usize,
        /// The refused mechanism.
        what: &'static str,
    },
    /// Decoding would allocate far more than the input's size justifies.
    #[error("pickle at byte {offset} expands beyond the allowed size")]
    TooLarge {
        /// Byte offset where the limit was hit.
        offset: usize,
    },
}

/// Decodes a pickle (any protocol 0–5) without executing any code.
pub fn decode(input: &[u8]) -> Result<Value, PickleError> {
    machine::Machine::new(input).run()
}

/// Encodes `value` as a pickle of the given protocol (2..=5; other values are clamped), byte
/// for byte as CPython 3.11's `pickle.dumps` would.
pub fn encode(value: &Value, protocol: u8) -> Vec<u8> {
    encode::Encoder::dumps(value, protocol)
}

/// The `(module, name)` globals [`decode`] accepts; everything else is refused.
pub fn allowed_globals() -> impl Iterator<Item = (&'static str, &'static str)> {
    globals::ALLOW_LIST.iter().map(|&(m, n, _)| (m, n))
}
