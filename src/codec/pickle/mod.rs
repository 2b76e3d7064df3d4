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

#[cfg(test)]
mod tests {
    use super::{decode, encode};
    use crate::value::{py_repr, Value};

    fn sur(cps: &[u32]) -> Value {
        Value::from_code_points(cps.iter().copied()).unwrap_or(Value::None)
    }

    #[test]
    fn lone_surrogates_round_trip_with_surrogatepass() {
        // Bytes printed by CPython 3.11: pickle.dumps(s, protocol) for each s.
        let cases: [(&[u32], u8, &[u8]); 4] = [
            (&[0xD800], 2, b"\x80\x02X\x03\x00\x00\x00\xed\xa0\x80q\x00."),
            (
                &[0xD800],
                4,
                b"\x80\x04\x95\x07\x00\x00\x00\x00\x00\x00\x00\x8c\x03\xed\xa0\x80\x94.",
            ),
            (
                &[0x61, 0xDC00, 0x62],
                4,
                b"\x80\x04\x95\t\x00\x00\x00\x00\x00\x00\x00\x8c\x05a\xed\xb0\x80b\x94.",
            ),
            (
                &[0xD83D, 0xDE00],
                4,
                b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00\x8c\x06\xed\xa0\xbd\xed\xb8\x80\x94.",
            ),
        ];
        for (cps, proto, bytes) in cases {
            let v = sur(cps);
            assert!(matches!(v, Value::SurrogateStr(_)), "{cps:x?}");
            assert_eq!(encode(&v, proto), bytes, "{cps:x?} protocol {proto}");
            assert_eq!(decode(bytes).ok(), Some(v), "{cps:x?} protocol {proto}");
        }
    }

    #[test]
    fn protocol_0_unicode_escapes_keep_lone_surrogates() {
        // pickle.dumps('\ud800', 0) and pickle.dumps('\ud83d\ude00', 0) in CPython 3.11.
        assert_eq!(decode(b"V\\ud800\np0\n.").ok(), Some(sur(&[0xD800])));
        let pair = decode(b"V\\ud83d\\ude00\np0\n.").unwrap_or(Value::None);
        assert_eq!(pair, sur(&[0xD83D, 0xDE00]));
        assert_eq!(py_repr(&pair), r"'\ud83d\ude00'");
    }

    #[test]
    fn invalid_utf8_is_still_refused() {
        // ED A0 without its third byte, and a byte that never starts UTF-8.
        assert!(decode(b"\x80\x04\x8c\x02\xed\xa0\x94.").is_err());
        assert!(decode(b"\x80\x04\x8c\x01\xff\x94.").is_err());
    }
}
