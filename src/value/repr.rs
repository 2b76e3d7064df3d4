//! Python's `repr()` of values ([`py_repr`]) and Celery's truncating `saferepr` ([`saferepr`]),
//! byte for byte as CPython 3.11 and Celery 5.5.3 print them.

mod float;
mod nonprintable;
mod python;
mod safe;
mod text;

use float::float_repr;
pub use safe::{saferepr, saferepr_value};

use super::Value;

/// Python's `repr(value)`: `'text'` (Python's quote choice and escapes), `b'..'`,
/// `bytearray(b'..')`, `1.0`, `(1,)`, `set()`, `frozenset({1})`,
/// `datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)`, `Decimal('1.5')`,
/// `UUID('...')`, `datetime.timedelta(days=1, seconds=5)`.
///
/// A named zone prints as `zoneinfo.ZoneInfo(key='...')` (a pytz zone's repr cannot be
/// rebuilt). Containers nested more than 512 deep print as `...` where Python would raise.
pub fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    python::write_repr(value, &mut out, 0);
    out
}

impl Value {
    /// Appends Python's `repr(self)` to `out` (what [`py_repr`] returns, without a new String).
    pub fn push_py_repr(&self, out: &mut String) {
        python::write_repr(self, out, 0);
    }

    /// Appends Python's `repr(f)` for a float (`1.0`, `0.1`, `1e+16`, `1.5e-05`, `-0.0`,
    /// `inf`, `nan`) to a byte buffer, without allocating.
    pub fn push_float_repr(f: f64, out: &mut Vec<u8>) {
        out.extend_from_slice(float_repr(f).as_str().as_bytes());
    }
}
