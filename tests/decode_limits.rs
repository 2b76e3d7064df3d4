//! The decoders' limits: nesting refused at the opcode that makes it too deep, expansion
//! refused before it is allocated, ordinary payloads of any size accepted (see
//! `codec::limits` and `docs/security-pickle.md`, "Memory").

use rcelery::codec::json;
use rcelery::codec::limits::{BASE_BYTES, BYTES_PER_INPUT_BYTE};
use rcelery::codec::pickle::{decode, encode, PickleError};
use rcelery::{Dict, Value};

const MAX_DEPTH: usize = 900;

fn repeat(b: u8, n: usize) -> impl Iterator<Item = u8> {
    std::iter::repeat_n(b, n)
}

/// `]` x n, then `a` x (n - 1): lists nested n deep, built from the inside out.
fn nested_lists(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x02".to_vec();
    p.extend(repeat(b']', n));
    p.extend(repeat(b'a', n - 1));
    p.push(b'.');
    p
}

#[test]
fn deep_nesting_fails_at_the_append_that_makes_it_too_deep() {
    let n = 200_000;
    let mut p = nested_lists(n);
    // What follows the fatal opcode is never read (it would be "invalid load key").
    p.truncate(p.len() - 1);
    p.extend(repeat(0xff, 1 << 20));
    match decode(&p) {
        Err(PickleError::Invalid { offset, message }) => {
            // The k-th APPEND makes a list k + 1 deep: the 900th makes it 901.
            assert_eq!(offset, 2 + n + MAX_DEPTH - 1, "{message}");
            assert!(message.contains("nested too deeply"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let r = decode(&nested_lists(MAX_DEPTH));
    assert!(r.is_ok(), "900 levels are allowed: {:?}", r.err());
    assert!(decode(&nested_lists(MAX_DEPTH + 1)).is_err());
}

#[test]
fn deep_dicts_and_tuples_fail_as_early() {
    // {1: {1: {1: ...}}}: `}K\x01` per level, then SETITEM per level.
    let n = 100_000;
    let mut p = b"\x80\x02".to_vec();
    for _ in 0..n {
        p.extend(b"}K\x01");
    }
    p.push(b'}');
    p.extend(repeat(b's', n));
    p.push(b'.');
    match decode(&p) {
        Err(PickleError::Invalid { offset, .. }) => {
            assert_eq!(offset, 2 + 3 * n + 1 + MAX_DEPTH - 1)
        }
        other => panic!("{other:?}"),
    }
    // ((((...)))): a tuple of a tuple of ..., MARK / TUPLE.
    let mut p = b"\x80\x02".to_vec();
    p.extend(repeat(b'(', n));
    p.extend(repeat(b't', n));
    p.push(b'.');
    match decode(&p) {
        Err(PickleError::Invalid { offset, .. }) => assert_eq!(offset, 2 + n + MAX_DEPTH),
        other => panic!("{other:?}"),
    }
}

#[test]
fn expansion_beyond_the_allowance_fails_before_it_is_allocated() {
    // One list of 2M empty lists: ~40 bytes of objects per input byte.
    let n = 2_000_000;
    let mut p = b"\x80\x04(".to_vec();
    p.extend(repeat(b']', n));
    p.extend(b"l.");
    match decode(&p) {
        Err(PickleError::TooLarge { offset }) => {
            let allowance = p.len() * BYTES_PER_INPUT_BYTE + BASE_BYTES;
            // Refused while the lists are read, once ~the allowance is spent on them.
            assert!(offset < p.len() - 2, "{offset}");
            assert!(
                offset * 40 > allowance / 2,
                "{offset}: refused far too early"
            );
        }
        other => panic!("{other:?}"),
    }
    // Memo tricks: one list of 100 Nones, then 1M references to it (`h\x00`, two bytes each).
    let mut p = b"\x80\x02]q\x00(".to_vec();
    p.extend(repeat(b'N', 100));
    p.extend(b"e(");
    for _ in 0..1_000_000 {
        p.extend(b"h\x00");
    }
    p.extend(b"l.");
    assert!(matches!(decode(&p), Err(PickleError::TooLarge { .. })));
}

#[test]
fn long_runs_of_one_byte_items_are_refused_but_short_ones_are_fine() {
    // [None] * n is one byte per item: 36 bytes of value per input byte.
    let nones = |n: usize| encode(&Value::List(vec![Value::None; n]), 4);
    assert!(decode(&nones(1000)).is_ok());
    assert!(matches!(
        decode(&nones(1_000_000)),
        Err(PickleError::TooLarge { .. })
    ));
}

/// What CPython's pickler writes for ordinary data: accepted at any size.
fn ordinary(n: i64) -> Vec<(&'static str, Value)> {
    let record = |i: i64| {
        let mut d = Dict::new();
        d.insert("id", i);
        d.insert("name", format!("user{}", i % 100));
        d.insert("active", i % 2 == 0);
        Value::Dict(d)
    };
    vec![
        (
            "small ints",
            Value::List((0..n).map(|i| Value::Int(i % 256)).collect()),
        ),
        (
            "ints",
            Value::List((0..n).map(|i| Value::Int(1000 + i % 60_000)).collect()),
        ),
        (
            "big ints",
            Value::List((0..n).map(|i| Value::Int(i * 1_000_003)).collect()),
        ),
        (
            "floats",
            Value::List((0..n).map(|i| Value::Float(i as f64 / 3.0)).collect()),
        ),
        (
            "strings",
            Value::List((0..n).map(|i| Value::Str(format!("s{i}"))).collect()),
        ),
        (
            "pairs",
            Value::List(
                (0..n)
                    .map(|i| Value::List(vec![Value::Int(i), Value::Int(-i)]))
                    .collect(),
            ),
        ),
        ("records", Value::List((0..n / 4).map(record).collect())),
        (
            "a dict",
            Value::Dict(Dict(
                (0..n)
                    .map(|i| (Value::Str(format!("k{i}")), Value::Int(i)))
                    .collect(),
            )),
        ),
        ("one string", Value::Str("x".repeat(n as usize * 10))),
    ]
}

#[test]
fn ordinary_payloads_of_any_size_are_accepted_by_both_codecs() {
    for (what, value) in ordinary(200_000) {
        let p = encode(&value, 4);
        let back = decode(&p).unwrap_or_else(|e| panic!("pickle: {what}: {e}"));
        assert!(back == value, "pickle: {what} decoded differently");
        let j = json::encode(&value);
        let back = json::decode(&j).unwrap_or_else(|e| panic!("json: {what}: {e}"));
        assert!(back == value, "json: {what} decoded differently");
    }
}

#[test]
fn json_arrays_of_any_length_keep_their_items_in_order() {
    // Past a few thousand items an array is gathered in chunks, then joined.
    for n in [0usize, 1, 4095, 4096, 4097, 100_000] {
        let text = format!(
            "[{}]",
            (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        let v = json::decode(text.as_bytes()).unwrap();
        assert!(
            v == Value::List((0..n as i64).map(Value::Int).collect()),
            "{n} items"
        );
    }
}

#[test]
fn json_objects_with_many_keys_keep_pythons_rules_for_repeats() {
    let mut text = String::from("{");
    for i in 0..1000 {
        text.push_str(&format!("\"k{i}\": {i}, "));
    }
    text.push_str("\"k3\": -3, \"k999\": -999}");
    let v = json::decode(text.as_bytes()).unwrap();
    let d = v.as_dict().unwrap();
    assert_eq!(d.len(), 1000);
    assert_eq!(d.get("k3"), Some(&Value::Int(-3)));
    assert_eq!(d.get("k999"), Some(&Value::Int(-999)));
    assert_eq!(
        d.iter().nth(3).map(|(k, _)| k.clone()),
        Some(Value::str("k3")),
        "first place kept"
    );
}
