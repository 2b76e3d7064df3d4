//! Python's `float.__repr__`: the shortest digits that round-trip, in fixed notation when the
//! decimal exponent is in `-4..16`, otherwise in scientific notation with a signed exponent of
//! at least two digits (`1e+16`, `1.5e-05`).

use std::fmt::Write as _;

/// A stack buffer holding the repr of one float, so that callers writing into a `String` or a
/// `Vec<u8>` need no allocation.
pub(crate) struct FloatRepr {
    buf: [u8; 40],
    len: usize,
}

impl FloatRepr {
    /// The text, e.g. `"0.1"`, `"1e+16"`, `"-0.0"`, `"inf"`, `"nan"`.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever written into `buf`.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

/// Writes a `str` into a fixed buffer (used to get Rust's shortest round-trip digits).
struct Scratch {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for Scratch {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Python's `repr(f)`.
pub(crate) fn float_repr(f: f64) -> FloatRepr {
    let mut out = FloatRepr {
        buf: [0; 40],
        len: 0,
    };
    if f.is_nan() {
        out.push_all(b"nan");
        return out;
    }
    if f.is_sign_negative() {
        out.push(b'-');
    }
    if f.is_infinite() {
        out.push_all(b"inf");
        return out;
    }
    if f == 0.0 {
        out.push_all(b"0.0");
        return out;
    }
    // Rust's `{:e}` prints the shortest round-trip digits, as Python's repr does.
    let mut scratch = Scratch {
        buf: [0; 40],
        len: 0,
    };
    if write!(scratch, "{:e}", f.abs()).is_err() {
        return out;
    }
    let text = &scratch.buf[..scratch.len];
    let e_pos = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let mut digits = [0u8; 24];
    let mut n = 0;
    for &b in &text[..e_pos] {
        if b.is_ascii_digit() && n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let digits = &digits[..n];
    let exp: i32 = std::str::from_utf8(text.get(e_pos + 1..).unwrap_or(b"0"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let decpt = exp + 1;
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_all(b"0.");
            for _ in 0..(-decpt) {
                out.push(b'0');
            }
            out.push_all(digits);
        } else {
            let d = decpt as usize;
            if d >= digits.len() {
                out.push_all(digits);
                for _ in digits.len()..d {
                    out.push(b'0');
                }
                out.push_all(b".0");
            } else {
                out.push_all(&digits[..d]);
                out.push(b'.');
                out.push_all(&digits[d..]);
            }
        }
    } else {
        out.push_all(&digits[..1.min(digits.len())]);
        if digits.len() > 1 {
            out.push(b'.');
            out.push_all(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        let mut tmp = Scratch {
            buf: [0; 40],
            len: 0,
        };
        let _ = write!(tmp, "{a}");
        out.push_all(&tmp.buf[..tmp.len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::float_repr;

    #[test]
    fn matches_python_repr() {
        // Expected texts printed by CPython 3.11's repr().
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-0.0, "-0.0"),
            (123.456, "123.456"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.5e100, "2.5e+100"),
            (-3.25, "-3.25"),
            (1234567890123456.7, "1234567890123456.8"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(*f).as_str(), *want, "{f:e}");
        }
    }
}
