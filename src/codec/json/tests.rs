//! Edge cases of the JSON codec (expected texts printed by CPython 3.11 / kombu 5.5.4).

use super::{decode, encode, MAX_DEPTH};
use crate::value::{Dict, TimeDelta, Value};

fn enc(v: &Value) -> String {
    String::from_utf8_lossy(&encode(v)).into_owned()
}

#[test]
fn nesting_past_the_limit_is_an_error_not_a_crash() {
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert!(decode(deep.as_bytes()).is_err());
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(decode(ok.as_bytes()).is_ok());
    assert!(decode("{\"a\":".repeat(100_000).as_bytes()).is_err());
}

#[test]
fn lone_surrogates_become_replacement_characters() {
    assert_eq!(decode(br#""\ud800x""#).ok(), Some(Value::str("\u{FFFD}x")));
    assert_eq!(decode(br#""\udc00""#).ok(), Some(Value::str("\u{FFFD}")));
    assert_eq!(
        decode(br#""\ud800\u0041""#).ok(),
        Some(Value::str("\u{FFFD}A"))
    );
}

#[test]
fn invalid_utf8_and_truncated_input_are_errors() {
    for bad in [
        &b"\"\xff\""[..],
        b"\"abc",
        b"\"\\u12",
        b"{\"a\"",
        b"-",
        b"[1,",
        b"tru",
        b"\xef\xbb\xbf1",
    ] {
        assert!(decode(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn ints_beyond_python_digit_limit_are_refused() {
    assert!(decode("9".repeat(4300).as_bytes()).is_ok());
    assert!(decode("9".repeat(4301).as_bytes()).is_err());
}

#[test]
fn many_keys_keep_first_position_last_value() {
    let mut text = String::from("{");
    for i in 0..40 {
        text.push_str(&format!("\"k{i}\": {i}, "));
    }
    text.push_str("\"k3\": \"last\"}");
    let Ok(Value::Dict(d)) = decode(text.as_bytes()) else {
        panic!("decodes")
    };
    assert_eq!(d.len(), 40);
    assert_eq!(d.0[3], (Value::str("k3"), Value::str("last")));
}

#[test]
fn python_refused_types_use_documented_fallbacks() {
    assert_eq!(
        enc(&Value::Set(vec![Value::Int(1), Value::Int(2)])),
        "[1, 2]"
    );
    assert_eq!(enc(&Value::FrozenSet(vec![])), "[]");
    let td = TimeDelta::from_parts(1, 5, 500_000).unwrap_or_default();
    assert_eq!(enc(&Value::TimeDelta(td)), "86405.5");
    assert_eq!(
        enc(&Value::ByteArray(b"ab".to_vec())),
        r#"{"__type__": "bytes", "__value__": "ab"}"#
    );
    let mut d = Dict::new();
    d.insert(
        Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
        Value::Int(3),
    );
    assert_eq!(enc(&Value::Dict(d)), r#"{"(1, 2)": 3}"#);
}

#[test]
fn mutated_inputs_never_panic() {
    // A cheap deterministic fuzz: every prefix and many byte flips of a tagged document.
    let doc = br#"{"a": [1, -2.5e3, "\u00e9\ud83d\ude00", {"__type__": "datetime", "__value__": "2024-01-02T03:04:05+08:00"}, {"__type__": "uuid", "__value__": {"hex": "6e9788d2dc484974ae79858845b262a1"}}, {"__type__": "base64", "__value__": "/wA="}, {"__type__": "decimal", "__value__": "1.5"}, NaN, -Infinity, true, null]}"#;
    for end in 0..=doc.len() {
        let _ = decode(&doc[..end]);
    }
    let mut seed: u32 = 12345;
    for _ in 0..20_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let mut buf = doc.to_vec();
        let pos = (seed as usize >> 8) % buf.len();
        buf[pos] = (seed >> 3) as u8;
        if let Ok(v) = decode(&buf) {
            let _ = decode(&encode(&v));
        }
    }
}
