//! Expected results and messages printed by CPython 3.11.

use super::*;
use crate::value::py_repr;

fn add(a: Value, b: Value) -> String {
    match a.py_add(&b) {
        Ok(v) => py_repr(&v),
        Err(e) => e.to_string(),
    }
}

fn mul(a: Value, b: Value) -> String {
    match a.py_mul(&b) {
        Ok(v) => py_repr(&v),
        Err(e) => e.to_string(),
    }
}

fn big(s: &str) -> Value {
    Value::int(s.parse().unwrap_or_default())
}

#[test]
fn ints_are_exact_at_any_size() {
    assert_eq!(
        add(Value::Int(i64::MAX), Value::Int(1)),
        "9223372036854775808"
    );
    assert_eq!(
        add(big("9223372036854775808"), Value::Int(-1)),
        "9223372036854775807"
    );
    assert!(matches!(
        big("9223372036854775808").py_add(&Value::Int(-1)),
        Ok(Value::Int(_))
    ));
    assert_eq!(
        mul(Value::Int(1 << 40), Value::Int(1 << 40)),
        "1208925819614629174706176"
    );
    assert_eq!(add(Value::Bool(true), Value::Bool(true)), "2");
    assert_eq!(add(Value::Int(1), Value::Float(0.5)), "1.5");
    assert_eq!(add(Value::Bool(true), Value::Float(1.5)), "2.5");
    assert_eq!(mul(Value::Float(0.1), Value::Int(3)), "0.30000000000000004");
}

#[test]
fn decimals_follow_the_default_context() {
    let d = |s: &str| Value::Decimal(s.to_owned());
    assert_eq!(add(d("1.5"), Value::Int(1)), "Decimal('2.5')");
    assert_eq!(add(Value::Int(1), d("1.50")), "Decimal('2.50')");
    assert_eq!(mul(d("1.5"), Value::Int(2)), "Decimal('3.0')");
    assert_eq!(
        add(d("1.5"), Value::Float(1.0)),
        "TypeError: unsupported operand type(s) for +: 'decimal.Decimal' and 'float'"
    );
}

#[test]
fn sequences_concatenate_and_repeat() {
    assert_eq!(add(Value::str("a"), Value::str("b")), "'ab'");
    assert_eq!(
        add(
            Value::Tuple(vec![Value::Int(1)]),
            Value::Tuple(vec![Value::Int(2)])
        ),
        "(1, 2)"
    );
    assert_eq!(mul(Value::str("ab"), Value::Int(3)), "'ababab'");
    assert_eq!(
        mul(Value::Int(2), Value::List(vec![Value::Int(1)])),
        "[1, 1]"
    );
    assert_eq!(mul(Value::str("ab"), Value::Int(-1)), "''");
    assert_eq!(mul(Value::Bool(true), Value::str("x")), "'x'");
}

#[test]
fn type_errors_carry_python_messages() {
    assert_eq!(
        add(Value::Int(1), Value::str("a")),
        "TypeError: unsupported operand type(s) for +: 'int' and 'str'"
    );
    assert_eq!(
        add(Value::str("a"), Value::Int(1)),
        "TypeError: can only concatenate str (not \"int\") to str"
    );
    assert_eq!(
        add(Value::List(vec![]), Value::Tuple(vec![])),
        "TypeError: can only concatenate list (not \"tuple\") to list"
    );
    assert_eq!(
        add(Value::Bytes(vec![]), Value::Int(1)),
        "TypeError: can't concat int to bytes"
    );
    assert_eq!(
        mul(Value::str("a"), Value::Float(1.5)),
        "TypeError: can't multiply sequence by non-int of type 'float'"
    );
    assert_eq!(
        mul(Value::str("a"), Value::str("b")),
        "TypeError: can't multiply sequence by non-int of type 'str'"
    );
    assert_eq!(
        mul(Value::None, Value::Int(2)),
        "TypeError: unsupported operand type(s) for *: 'NoneType' and 'int'"
    );
    assert_eq!(
        add(
            Value::Date(Date {
                year: 2024,
                month: 1,
                day: 1
            }),
            Value::Int(1)
        ),
        "TypeError: unsupported operand type(s) for +: 'datetime.date' and 'int'"
    );
}

#[test]
fn sum_starts_from_zero() {
    assert_eq!(
        py_sum(&[Value::Int(1), Value::Float(2.5), Value::Bool(true)]),
        Ok(Value::Float(4.5))
    );
    assert_eq!(py_sum(&[]), Ok(Value::Int(0)));
    assert_eq!(
        py_sum(&[Value::str("a")]).map_err(|e| e.message),
        Err("unsupported operand type(s) for +: 'int' and 'str'".to_owned())
    );
}

#[test]
fn timedeltas_shift_dates() {
    let td = Value::TimeDelta(TimeDelta {
        days: 1,
        seconds: 3600,
        microseconds: 0,
    });
    let dt = Value::DateTime(Box::new(DateTime {
        date: Date {
            year: 2024,
            month: 12,
            day: 31,
        },
        time: crate::value::Time {
            hour: 23,
            minute: 0,
            second: 0,
            microsecond: 0,
            tz: None,
            fold: 0,
        },
    }));
    assert_eq!(add(dt, td.clone()), "datetime.datetime(2025, 1, 2, 0, 0)");
    assert_eq!(
        mul(td, Value::Int(2)),
        "datetime.timedelta(days=2, seconds=7200)"
    );
}

#[test]
fn extreme_decimal_exponents_do_not_overflow() {
    let d = |s: &str| Value::Decimal(s.to_owned());
    assert!(d("1E+999999999999999999").py_add(&Value::Int(1)).is_err());
    assert!(d("1E-999999999999999999")
        .py_mul(&d("1E-999999999999999999"))
        .is_ok());
    assert_eq!(Value::parse_decimal("1E+9223372036854775807"), None);
}

#[test]
fn strs_with_lone_surrogates_concatenate_and_repeat() {
    // CPython 3.11: 'a' + '\ud800', '\ud83d' + '\ude00' (two code points, not joined),
    // '\ud800' * 2, '\ud800' * 0, '\ud800' + 1.
    let sur = |cps: &[u32]| Value::from_code_points(cps.iter().copied()).unwrap_or(Value::None);
    assert_eq!(add(Value::str("a"), sur(&[0xD800])), "'a\\ud800'");
    assert_eq!(add(sur(&[0xD83D]), sur(&[0xDE00])), "'\\ud83d\\ude00'");
    assert_eq!(
        sur(&[0xD83D]).py_add(&sur(&[0xDE00])).ok(),
        Some(sur(&[0xD83D, 0xDE00]))
    );
    assert_eq!(mul(sur(&[0xD800]), Value::Int(2)), "'\\ud800\\ud800'");
    assert_eq!(
        sur(&[0xD800]).py_mul(&Value::Int(0)).ok(),
        Some(Value::str(""))
    );
    assert_eq!(
        add(sur(&[0xD800]), Value::Int(1)),
        "TypeError: can only concatenate str (not \"int\") to str"
    );
    assert_eq!(py_type_name(&sur(&[0xD800])), "str");
    assert!(sur(&[0xD800]).truthy());
}
