//! `decimal.Decimal(text)` → the exact `str()` Python would give, so a pickled Decimal
//! becomes [`Value::Decimal`](crate::value::Value::Decimal) with canonical text.

/// Parses `text` as `Decimal()` does and returns `str(Decimal(text))`, or `None` when Python
/// would raise `InvalidOperation`.
pub(super) fn canonical_decimal(text: &str) -> Option<String> {
    let s = text.trim();
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let sign = if negative { "-" } else { "" };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(format!("{sign}Infinity"));
    }
    for (prefix, name) in [("snan", "sNaN"), ("nan", "NaN")] {
        if let Some(payload) = lower.strip_prefix(prefix) {
            if !payload.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let payload = payload.trim_start_matches('0');
            return Some(format!("{sign}{name}{payload}"));
        }
    }
    let (mantissa, exp_text) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut exponent: i64 = match exp_text {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            e.parse().ok()?
        }
    };
    exponent = exponent.checked_sub(i64::try_from(frac_part.len()).ok()?)?;
    let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let trimmed = digits.trim_start_matches('0').len();
    digits.drain(..digits.len() - trimmed);
    if digits.is_empty() {
        digits.push('0');
    }
    Some(to_sci_string(sign, &digits, exponent))
}

/// Python's `Decimal.__str__` (scientific notation rules of the General Decimal Arithmetic spec).
fn to_sci_string(sign: &str, digits: &str, exponent: i64) -> String {
    let n = digits.len() as i64;
    let leftdigits = exponent + n;
    let dotplace = if exponent <= 0 && leftdigits > -6 {
        leftdigits
    } else {
        1
    };
    let (int_part, frac_part) = if dotplace <= 0 {
        (
            "0".to_owned(),
            format!(".{}{}", "0".repeat((-dotplace) as usize), digits),
        )
    } else if dotplace >= n {
        (
            format!("{}{}", digits, "0".repeat((dotplace - n) as usize)),
            String::new(),
        )
    } else {
        let (a, b) = digits.split_at(dotplace as usize);
        (a.to_owned(), format!(".{b}"))
    };
    let exp = if leftdigits == dotplace {
        String::new()
    } else {
        format!("E{:+}", leftdigits - dotplace)
    };
    format!("{sign}{int_part}{frac_part}{exp}")
}

#[cfg(test)]
mod tests {
    use super::canonical_decimal as c;

    #[test]
    fn matches_python_str() {
        assert_eq!(c("1.50").as_deref(), Some("1.50"));
        assert_eq!(c("-1E+3").as_deref(), Some("-1E+3"));
        assert_eq!(c("-1e3").as_deref(), Some("-1E+3"));
        assert_eq!(c("0.0000001").as_deref(), Some("1E-7"));
        assert_eq!(c("0.000001").as_deref(), Some("0.000001"));
        assert_eq!(c("00012.3400").as_deref(), Some("12.3400"));
        assert_eq!(c("-0").as_deref(), Some("-0"));
        assert_eq!(c("0E-3").as_deref(), Some("0.000"));
        assert_eq!(c("nan").as_deref(), Some("NaN"));
        assert_eq!(c("-sNaN012").as_deref(), Some("-sNaN12"));
        assert_eq!(c("inf").as_deref(), Some("Infinity"));
        assert_eq!(c("1.").as_deref(), Some("1"));
        assert_eq!(c(".5").as_deref(), Some("0.5"));
        assert_eq!(c("abc"), None);
        assert_eq!(c("1e"), None);
        assert_eq!(c("."), None);
    }
}
