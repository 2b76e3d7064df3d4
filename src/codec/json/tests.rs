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

fn code_points(v: &Value) -> Vec<u32> {
    match v {
        Value::SurrogateStr(s) => s.code_points().collect(),
        Value::Str(s) => s.chars().map(u32::from).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn lone_surrogates_are_kept() {
    // CPython 3.11: [ord(c) for c in json.loads(text)] for each text.
    for (text, want) in [
        (&br#""\ud800x""#[..], &[0xD800, 0x78][..]),
        (br#""\udc00""#, &[0xDC00]),
        (br#""\ud800\u0041""#, &[0xD800, 0x41]),
        (br#""a\udc00b""#, &[0x61, 0xDC00, 0x62]),
        (br#""\udbff\udbff\udfff""#, &[0xDBFF, 0x10FFFF]),
        (br#""\ude00\ud83d""#, &[0xDE00, 0xD83D]),
        (br#""\uDFFF\u00e9""#, &[0xDFFF, 0xE9]),
    ] {
        let v = decode(text).unwrap_or(Value::None);
        assert!(matches!(v, Value::SurrogateStr(_)), "{text:?}: {v:?}");
        assert_eq!(code_points(&v), want, "{text:?}");
    }
    // A high surrogate escape followed by a low one is one character, as before.
    assert_eq!(
        decode(br#""\ud83d\ude00""#).ok(),
        Some(Value::str("\u{1F600}"))
    );
    assert!(decode(br#""\ud800\u12""#).is_err());
}

#[test]
fn lone_surrogates_round_trip_as_python_writes_them() {
    // CPython 3.11 / kombu: dumps(loads(text)) == text.
    for text in [
        r#""\ud800""#,
        r#""a\udc00b""#,
        r#""\udfff\ud800""#,
        r#"{"k\udc80": ["\ud800", "x\u00e9\udbff"]}"#,
    ] {
        let v = decode(text.as_bytes()).unwrap_or(Value::None);
        assert_eq!(enc(&v), text);
        assert_eq!(decode(&encode(&v)).ok(), Some(v));
    }
    // Two surrogate code points side by side are written as they are, and read back joined
    // (json.loads(json.dumps('\ud83d\ude00')) == '\U0001F600' in Python too).
    let pair = Value::from_code_points([0xD83D, 0xDE00]).unwrap_or(Value::None);
    assert_eq!(enc(&pair), r#""\ud83d\ude00""#);
    assert_eq!(decode(&encode(&pair)).ok(), Some(Value::str("\u{1F600}")));
}

#[test]
fn object_keys_with_lone_surrogates_are_kept_apart() {
    // {"\ud800": 1, "\udc00": 2, "\ud800": 3} is {'\ud800': 3, '\udc00': 2} in Python.
    let Ok(Value::Dict(d)) = decode(br#"{"\ud800": 1, "\udc00": 2, "\ud800": 3}"#) else {
        panic!("decodes")
    };
    assert_eq!(d.len(), 2);
    assert_eq!(code_points(&d.0[0].0), [0xD800]);
    assert_eq!(d.0[0].1, Value::Int(3));
    // Past the hash index's threshold too.
    let mut text = String::from("{");
    for i in 0..100 {
        text.push_str(&format!("\"\\ud800{i}\": {i}, "));
    }
    text.push_str("\"\\ud8005\": \"last\"}");
    let Ok(Value::Dict(d)) = decode(text.as_bytes()) else {
        panic!("decodes")
    };
    assert_eq!(d.len(), 100);
    assert_eq!(d.0[5].1, Value::str("last"));
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
