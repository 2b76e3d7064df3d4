//! `decimal.Decimal` as Python's default context computes it: parsing `Decimal(str)`,
//! `Decimal(int)`, `Decimal(float)`, printing `str(Decimal)`, and `+` / `*` rounded to 28
//! significant digits with `ROUND_HALF_EVEN`.
//!
//! Deviations: results outside the default context's exponent range (`Emax=999999`) raise
//! `decimal.Overflow` as Python does, but subnormal results below `Emin` are not clamped.

use num_bigint::{BigInt, BigUint};
use num_traits::{One, Zero};

/// The default context's precision.
const PREC: usize = 28;
/// The default context's largest adjusted exponent.
const EMAX: i64 = 999_999;
/// Exponents beyond this magnitude are refused when parsing (CPython's 64-bit `MAX_EMAX` is
/// just under 10**18), which keeps every exponent sum inside an `i64`.
const MAX_ABS_EXP: u64 = 1_000_000_000_000_000_000;
/// Beyond this alignment shift the smaller operand is folded into a sticky digit.
const MAX_SHIFT: i64 = 4 * PREC as i64;

/// A decimal number: a sign, and a finite coefficient with exponent, an infinity, or a NaN.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dec {
    /// `(-1)**neg * coeff * 10**exp`; `coeff` holds ASCII digits with no leading zeros
    /// (`"0"` for zero).
    Finite { neg: bool, coeff: String, exp: i64 },
    /// `Infinity` / `-Infinity`.
    Inf { neg: bool },
    /// `NaN` / `sNaN`, with its payload digits (no leading zeros, may be empty).
    NaN {
        neg: bool,
        signaling: bool,
        payload: String,
    },
}

/// Why a decimal operation failed, named as Python's exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecError {
    /// `decimal.InvalidOperation` (`Inf - Inf`, `0 * Inf`, a signaling NaN).
    InvalidOperation,
    /// `decimal.Overflow`.
    Overflow,
}

fn strip_zeros(digits: &str) -> String {
    let t = digits.trim_start_matches('0');
    if t.is_empty() {
        "0".to_owned()
    } else {
        t.to_owned()
    }
}

impl Dec {
    /// Python's `Decimal(text)`: surrounding whitespace and `_` between digits allowed,
    /// `Inf`/`Infinity`/`NaN`/`sNaN` in any case. `None` where Python raises.
    pub(crate) fn parse(text: &str) -> Option<Dec> {
        // CPython's C implementation drops every `_` once the whitespace is stripped.
        let owned: String = text.trim().chars().filter(|&c| c != '_').collect();
        let t = owned.as_str();
        let (neg, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let lower = body.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            return Some(Dec::Inf { neg });
        }
        for (prefix, signaling) in [("snan", true), ("nan", false)] {
            if let Some(payload) = lower.strip_prefix(prefix) {
                let digits = payload;
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let p = strip_zeros(digits);
                let payload = if p == "0" { String::new() } else { p };
                return Some(Dec::NaN {
                    neg,
                    signaling,
                    payload,
                });
            }
        }
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        let int_digits = int_part;
        let frac_digits = frac_part;
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        if !int_digits
            .bytes()
            .chain(frac_digits.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut exp: i64 = match exponent {
            None => 0,
            Some(e) => {
                let (eneg, edigits) = match e.as_bytes().first() {
                    Some(b'-') => (true, &e[1..]),
                    Some(b'+') => (false, &e[1..]),
                    _ => (false, e),
                };
                let ed = edigits;
                if ed.is_empty() || !ed.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let v: i64 = strip_zeros(ed).parse().ok()?;
                if eneg {
                    -v
                } else {
                    v
                }
            }
        };
        exp = exp.checked_sub(i64::try_from(frac_digits.len()).ok()?)?;
        if exp.unsigned_abs() > MAX_ABS_EXP {
            return None;
        }
        let coeff = strip_zeros(&[int_digits, frac_digits].concat());
        Some(Dec::Finite { neg, coeff, exp })
    }

    /// `Decimal(n)` for an int.
    pub(crate) fn from_int(n: &BigInt) -> Dec {
        let neg = n.sign() == num_bigint::Sign::Minus;
        Dec::Finite {
            neg,
            coeff: n.magnitude().to_string(),
            exp: 0,
        }
    }

    /// `Decimal(f)` for a float: the exact binary value.
    pub(crate) fn from_f64(f: f64) -> Dec {
        let neg = f.is_sign_negative();
        if f.is_nan() {
            return Dec::NaN {
                neg,
                signaling: false,
                payload: String::new(),
            };
        }
        if f.is_infinite() {
            return Dec::Inf { neg };
        }
        if f == 0.0 {
            return Dec::Finite {
                neg,
                coeff: "0".into(),
                exp: 0,
            };
        }
        let bits = f.abs().to_bits();
        let raw_exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (mut mant, mut e2) = if raw_exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), raw_exp - 1075)
        };
        let tz = mant.trailing_zeros();
        mant >>= tz;
        e2 += i64::from(tz);
        if e2 >= 0 {
            let v = BigUint::from(mant) << (e2 as usize);
            Dec::Finite {
                neg,
                coeff: v.to_string(),
                exp: 0,
            }
        } else {
            let k = (-e2) as u32;
            let v = BigUint::from(mant) * BigUint::from(5u32).pow(k);
            Dec::Finite {
                neg,
                coeff: v.to_string(),
                exp: -i64::from(k),
            }
        }
    }

    /// Python's `str(Decimal)` (to-scientific-string).
    pub(crate) fn to_py_string(&self) -> String {
        let mut out = String::new();
        match self {
            Dec::Inf { neg } => {
                if *neg {
                    out.push('-');
                }
                out.push_str("Infinity");
            }
            Dec::NaN {
                neg,
                signaling,
                payload,
            } => {
                if *neg {
                    out.push('-');
                }
                out.push_str(if *signaling { "sNaN" } else { "NaN" });
                out.push_str(payload);
            }
            Dec::Finite { neg, coeff, exp } => {
                if *neg {
                    out.push('-');
                }
                let n = coeff.len() as i64;
                let adjusted = exp.saturating_add(n - 1);
                if *exp <= 0 && adjusted >= -6 {
                    if *exp == 0 {
                        out.push_str(coeff);
                    } else if n > -exp {
                        let point = (n + exp) as usize;
                        out.push_str(&coeff[..point]);
                        out.push('.');
                        out.push_str(&coeff[point..]);
                    } else {
                        out.push_str("0.");
                        for _ in 0..(-exp - n) {
                            out.push('0');
                        }
                        out.push_str(coeff);
                    }
                } else {
                    out.push_str(&coeff[..1]);
                    if n > 1 {
                        out.push('.');
                        out.push_str(&coeff[1..]);
                    }
                    out.push('E');
                    out.push(if adjusted >= 0 { '+' } else { '-' });
                    out.push_str(&adjusted.unsigned_abs().to_string());
                }
            }
        }
        out
    }

    /// `self + other` in the default context.
    pub(crate) fn add(&self, other: &Dec) -> Result<Dec, DecError> {
        if let Some(r) = nan_result(self, other)? {
            return Ok(r);
        }
        match (self, other) {
            (Dec::Inf { neg: a }, Dec::Inf { neg: b }) if a != b => Err(DecError::InvalidOperation),
            (Dec::Inf { neg }, _) | (_, Dec::Inf { neg }) => Ok(Dec::Inf { neg: *neg }),
            (
                Dec::Finite {
                    neg: na,
                    coeff: ca,
                    exp: ea,
                },
                Dec::Finite {
                    neg: nb,
                    coeff: cb,
                    exp: eb,
                },
            ) => add_finite((*na, ca, *ea), (*nb, cb, *eb)),
            _ => Err(DecError::InvalidOperation),
        }
    }

    /// `self * other` in the default context.
    pub(crate) fn mul(&self, other: &Dec) -> Result<Dec, DecError> {
        if let Some(r) = nan_result(self, other)? {
            return Ok(r);
        }
        let neg = self.is_neg() != other.is_neg();
        match (self, other) {
            (Dec::Inf { .. }, Dec::Finite { coeff, .. })
            | (Dec::Finite { coeff, .. }, Dec::Inf { .. })
                if coeff == "0" =>
            {
                Err(DecError::InvalidOperation)
            }
            (Dec::Inf { .. }, _) | (_, Dec::Inf { .. }) => Ok(Dec::Inf { neg }),
            (
                Dec::Finite {
                    coeff: ca, exp: ea, ..
                },
                Dec::Finite {
                    coeff: cb, exp: eb, ..
                },
            ) => {
                let product = big(ca) * big(cb);
                let exp = ea.checked_add(*eb).ok_or(DecError::Overflow)?;
                round(neg, product, exp)
            }
            _ => Err(DecError::InvalidOperation),
        }
    }

    fn is_neg(&self) -> bool {
        match self {
            Dec::Finite { neg, .. } | Dec::Inf { neg } | Dec::NaN { neg, .. } => *neg,
        }
    }
}

/// A quiet NaN operand propagates; a signaling one raises.
fn nan_result(a: &Dec, b: &Dec) -> Result<Option<Dec>, DecError> {
    for d in [a, b] {
        if let Dec::NaN {
            signaling: true, ..
        } = d
        {
            return Err(DecError::InvalidOperation);
        }
    }
    for d in [a, b] {
        if let Dec::NaN { .. } = d {
            return Ok(Some(d.clone()));
        }
    }
    Ok(None)
}

fn big(digits: &str) -> BigUint {
    BigUint::parse_bytes(digits.as_bytes(), 10).unwrap_or_default()
}

fn pow10(n: u64) -> BigUint {
    BigUint::from(10u32).pow(n as u32)
}

fn add_finite(a: (bool, &String, i64), b: (bool, &String, i64)) -> Result<Dec, DecError> {
    let (mut a, mut b) = (a, b);
    if a.2 < b.2 {
        std::mem::swap(&mut a, &mut b);
    }
    // Now a.2 >= b.2: `a` is shifted left by `shift` to align.
    let (na, ca, ea) = (a.0, big(a.1), a.2);
    let (nb, mut cb, mut eb) = (b.0, big(b.1), b.2);
    let shift = ea.checked_sub(eb).ok_or(DecError::Overflow)?;
    if shift > MAX_SHIFT {
        let top = ea.saturating_add(a.1.len() as i64); // exponent just above a's leading digit
        let floor = top - (PREC as i64) - 3;
        if cb.is_zero() {
            // Only the exponent of a zero matters; past the precision it rounds away.
            eb = eb.max(ea - (PREC as i64 + 1));
        } else if !ca.is_zero() && eb + (b.1.len() as i64) < floor {
            // `b` lies wholly below the rounding digit: keep it as a sticky 1.
            cb = BigUint::one();
            eb = floor - 1;
        }
    }
    if ca.is_zero() && shift > MAX_SHIFT && !cb.is_zero() {
        // a is a zero with a far larger exponent: the result is `b` (exact, fits).
        return round(nb, cb, eb);
    }
    let shift = (ea - eb).max(0) as u64;
    let ca = ca * pow10(shift);
    let sa = if na {
        -BigInt::from(ca)
    } else {
        BigInt::from(ca)
    };
    let sb = if nb {
        -BigInt::from(cb)
    } else {
        BigInt::from(cb)
    };
    let sum = sa + sb;
    let neg = if sum.is_zero() {
        na && nb
    } else {
        sum.sign() == num_bigint::Sign::Minus
    };
    round(neg, sum.magnitude().clone(), eb.min(ea))
}

/// Rounds to [`PREC`] digits with `ROUND_HALF_EVEN` and checks the exponent range.
fn round(neg: bool, coeff: BigUint, exp: i64) -> Result<Dec, DecError> {
    let mut digits = coeff.to_string();
    let mut exp = exp;
    if digits.len() > PREC {
        let drop = (digits.len() - PREC) as u64;
        let divisor = pow10(drop);
        let mut q = &coeff / &divisor;
        let r = &coeff % &divisor;
        let twice = r << 1usize;
        if twice > divisor || (twice == divisor && q.bit(0)) {
            q += 1u32;
        }
        exp = exp.checked_add(drop as i64).ok_or(DecError::Overflow)?;
        digits = q.to_string();
        if digits.len() > PREC {
            digits.truncate(PREC);
            exp += 1;
        }
    }
    if exp.saturating_add(digits.len() as i64 - 1) > EMAX && digits != "0" {
        return Err(DecError::Overflow);
    }
    Ok(Dec::Finite {
        neg,
        coeff: digits,
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        Dec::parse(text)
            .map(|d| d.to_py_string())
            .unwrap_or_else(|| "ERR".into())
    }

    fn add(a: &str, b: &str) -> String {
        match (Dec::parse(a), Dec::parse(b)) {
            (Some(x), Some(y)) => x
                .add(&y)
                .map(|d| d.to_py_string())
                .unwrap_or_else(|e| format!("{e:?}")),
            _ => "ERR".into(),
        }
    }

    fn mul(a: &str, b: &str) -> String {
        match (Dec::parse(a), Dec::parse(b)) {
            (Some(x), Some(y)) => x
                .mul(&y)
                .map(|d| d.to_py_string())
                .unwrap_or_else(|e| format!("{e:?}")),
            _ => "ERR".into(),
        }
    }

    #[test]
    fn str_matches_python() {
        // Expected texts printed by CPython 3.11's str(Decimal(text)).
        for (text, want) in [
            ("1.50", "1.50"),
            ("-1E+3", "-1E+3"),
            ("1e3", "1E+3"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1E-7"),
            ("+1.5", "1.5"),
            ("-0", "-0"),
            ("nan", "NaN"),
            ("-inf", "-Infinity"),
            ("sNaN012", "sNaN12"),
            ("NaN0", "NaN"),
            (" 1_000.5 ", "1000.5"),
            ("123E-2", "1.23"),
            ("0E-10", "0E-10"),
            ("00.00", "0.00"),
            (".5", "0.5"),
            ("5.", "5"),
            ("12345E+2", "1.2345E+6"),
            ("1__0", "10"),
            ("In_f", "Infinity"),
            ("", "ERR"),
            ("1e", "ERR"),
            ("abc", "ERR"),
            ("1.2.3", "ERR"),
        ] {
            assert_eq!(s(text), want, "{text}");
        }
    }

    #[test]
    fn from_float_is_exact() {
        assert_eq!(Dec::from_f64(1.5).to_py_string(), "1.5");
        assert_eq!(Dec::from_f64(1.0).to_py_string(), "1");
        assert_eq!(Dec::from_f64(-0.0).to_py_string(), "-0");
        assert_eq!(
            Dec::from_f64(0.1).to_py_string(),
            "0.1000000000000000055511151231257827021181583404541015625"
        );
        assert_eq!(Dec::from_f64(1e20).to_py_string(), "100000000000000000000");
    }

    #[test]
    fn arithmetic_matches_python() {
        // Expected texts printed by CPython 3.11 with the default context.
        assert_eq!(add("1.50", "2"), "3.50");
        assert_eq!(add("1.50", "-1.50"), "0.00");
        assert_eq!(add("-0", "-0"), "-0");
        assert_eq!(add("1E+3", "1"), "1001");
        assert_eq!(add("0.1", "0.2"), "0.3");
        assert_eq!(add("1E+100", "1"), "1.000000000000000000000000000E+100");
        assert_eq!(add("1E+100", "-1"), "1.000000000000000000000000000E+100");
        assert_eq!(add("1", "1E-100"), "1.000000000000000000000000000");
        assert_eq!(
            add("9999999999999999999999999999", "1"),
            "1.000000000000000000000000000E+28"
        );
        assert_eq!(add("Infinity", "-Infinity"), "InvalidOperation");
        assert_eq!(add("NaN", "1"), "NaN");
        assert_eq!(mul("1.5", "3"), "4.5");
        assert_eq!(mul("0", "Infinity"), "InvalidOperation");
        assert_eq!(mul("-2", "0.50"), "-1.00");
        assert_eq!(mul("1E+999999", "10"), "Overflow");
        assert_eq!(
            add("0E-200", "1E+200"),
            "1.000000000000000000000000000E+200"
        );
        assert_eq!(add("1E-200", "0E+200"), "1E-200");
    }
}
