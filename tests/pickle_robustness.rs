//! The decoder must never panic, hang or blow up memory, whatever the bytes: ~100k mutated
//! golden pickles (fixed seed), plus hand-made hostile inputs. Successful decodes must survive
//! re-encoding and decoding again.

use rcelery::codec::pickle::{decode, encode, PickleError};
use rcelery::value::Value;

const GOLDEN: &str = include_str!("../python-fixtures/golden/pickle_values.json");

#[path = "decoders/mutate.rs"]
mod mutate;

use mutate::{mutate, Rng};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn seeds() -> Vec<Vec<u8>> {
    let doc: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    let mut out = Vec::new();
    for key in ["values", "forbidden"] {
        for case in doc[key].as_array().unwrap() {
            let data = unhex(case["hex"].as_str().unwrap());
            if data.len() <= 2048 {
                out.push(data);
            }
        }
    }
    out
}

/// Opcode bytes worth splicing in: every opcode plus a few length-ish bytes.
const INTERESTING: &[u8] = b"(.012FIJKLMNPQRSTUVXabcde}ghijl]opqrstu)G\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\xff\x00\x7f\n";

#[test]
fn mutated_pickles_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() > 400);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut ok, mut refused) = (0usize, 0usize);
    for _ in 0..100_000 {
        let data = mutate(&mut rng, &seeds, INTERESTING);
        match decode(&data) {
            Ok(v) => {
                ok += 1;
                for proto in [2, 5] {
                    let again = decode(&encode(&v, proto)).expect("our own pickle must decode");
                    if proto == 5 {
                        assert_eq!(
                            format!("{again:?}"),
                            format!("{v:?}"),
                            "round trip of {data:02x?}"
                        );
                    }
                }
            }
            Err(_) => refused += 1,
        }
    }
    // Sanity: the mutations are neither all fatal nor all harmless.
    assert!(ok > 1_000 && refused > 10_000, "ok {ok}, refused {refused}");
}

fn too_large_or_invalid(r: Result<Value, PickleError>) {
    assert!(
        matches!(
            r,
            Err(PickleError::TooLarge { .. } | PickleError::Invalid { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn claimed_lengths_beyond_input_fail_before_allocating() {
    for data in [
        &b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f."[..],
        b"\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\xff.",
        b"X\xff\xff\xff\xff.",
        b"\x8b\xff\xff\xff\x7f.",
        b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xff.",
    ] {
        too_large_or_invalid(decode(data));
    }
}

#[test]
fn exponential_sharing_is_bounded() {
    // l0 = [big str]; l(i+1) = [l(i), l(i)]: 2^40 strings if expanded naively.
    let mut p = b"\x80\x04]\x94X\x00\x04\x00\x00".to_vec();
    p.extend(std::iter::repeat_n(b'a', 1024));
    p.extend(b"a");
    for i in 0..40u32 {
        p.extend(b"]\x94j");
        p.extend(i.wrapping_mul(2).to_le_bytes());
        p.extend(b"j");
        p.extend(i.wrapping_mul(2).to_le_bytes());
        p.extend(b"\x86\x94e");
        let _ = i;
    }
    p.extend(b".");
    // Whatever the exact shape, decoding must stop quickly with an error or a bounded value.
    let _ = decode(&p);

    // A clean version: memo 0 = list of a 1 KiB string, each level a pair of the previous.
    let mut p = b"\x80\x04".to_vec();
    p.extend(b"\x8d\x00\x04\x00\x00\x00\x00\x00\x00");
    p.extend(std::iter::repeat_n(b'a', 1024));
    p.extend(b"\x94");
    for i in 0..40u32 {
        p.push(b'j');
        p.extend(i.to_le_bytes());
        p.push(b'j');
        p.extend(i.to_le_bytes());
        p.extend(b"\x86\x94");
    }
    p.push(b'.');
    too_large_or_invalid(decode(&p));
}

#[test]
fn shared_mutable_containers_keep_their_contents() {
    // x = [1, 2]; [x, x] — the second reference is a memo GET of a list filled after its PUT.
    let v = decode(b"\x80\x02]q\x00(]q\x01(K\x01K\x02eh\x01e.").unwrap();
    let x = Value::List(vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(v, Value::List(vec![x.clone(), x]));
}

#[test]
fn recursive_structures_are_refused() {
    // l = []; l.append(l)
    too_large_or_invalid(decode(b"\x80\x02]q\x00h\x00a."));
    // l = []; l += [l, l]
    too_large_or_invalid(decode(b"\x80\x02]q\x00(h\x00h\x00e."));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for depth in [800usize, 5_000, 200_000] {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', depth));
        p.extend(std::iter::repeat_n(b'a', depth - 1));
        p.push(b'.');
        let r = decode(&p);
        if depth <= 800 {
            assert!(r.is_ok(), "{r:?}");
        } else {
            too_large_or_invalid(r);
        }
    }
    // Deep marks and tuples.
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'(', 100_000));
    p.extend(std::iter::repeat_n(b't', 100_000));
    p.push(b'.');
    too_large_or_invalid(decode(&p));
}

#[test]
fn refuses_persistent_ids_extensions_and_buffers() {
    for data in [
        &b"Pabc\n."[..],
        b"N\x51.",
        b"\x80\x02\x82\x01.",
        b"\x80\x05\x97.",
    ] {
        assert!(
            matches!(decode(data), Err(PickleError::Refused { .. })),
            "{data:?}"
        );
    }
}

#[test]
fn misused_allowed_globals_are_invalid() {
    // getattr(datetime.datetime, 'now')() must not become a call.
    let p = b"\x80\x04\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94\x8c\x03now\x94\x86\x94R\x94).";
    assert!(matches!(decode(p), Err(PickleError::Invalid { .. })));
    // A bare class is not a value.
    assert!(matches!(
        decode(b"cdatetime\ndatetime\n."),
        Err(PickleError::Invalid { .. })
    ));
    // Text ints beyond CPython's 4300-digit limit.
    let mut p = b"L".to_vec();
    p.extend(std::iter::repeat_n(b'9', 5000));
    p.extend(b"L\n.");
    assert!(matches!(decode(&p), Err(PickleError::Invalid { .. })));
}

#[test]
fn duplicate_keys_follow_python_equality() {
    // {1: 'a', True: 'b', 1.0: 'c'} is {1: 'c'} in Python: first key kept, last value wins.
    let p = b"\x80\x02}(K\x01X\x01\x00\x00\x00a\x88X\x01\x00\x00\x00bG?\xf0\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00cu.";
    let v = decode(p).unwrap();
    assert_eq!(
        v,
        Value::Dict(rcelery::value::Dict(vec![(Value::Int(1), Value::str("c"))]))
    );
    // A set built from a list with repeats.
    let p = b"\x80\x02c__builtin__\nset\n](K\x01K\x02K\x01e\x85R.";
    assert_eq!(
        decode(p).unwrap(),
        Value::Set(vec![Value::Int(1), Value::Int(2)])
    );
    // A list as a dict key is unhashable, as in Python.
    assert!(decode(b"\x80\x02}]K\x01s.").is_err());
}

#[test]
fn duplicate_keys_are_found_in_big_dicts_too() {
    // {0: 0, ..., 39: 39} then 0.0, 3.0, ... 39.0 again with new values: 40 int keys remain,
    // the repeated ones with the last value (dicts past 16 keys find repeats by hash).
    let mut p = b"\x80\x02}(".to_vec();
    for i in 0..40u8 {
        p.extend([b'K', i, b'K', i]);
    }
    for i in (0..40u8).step_by(3) {
        p.push(b'G');
        p.extend(f64::from(i).to_be_bytes());
        p.extend([b'K', 100 + i]);
    }
    p.extend(b"u.");
    let expected: Vec<(Value, Value)> = (0..40i64)
        .map(|i| {
            (
                Value::Int(i),
                Value::Int(if i % 3 == 0 { 100 + i } else { i }),
            )
        })
        .collect();
    assert_eq!(
        decode(&p).unwrap(),
        Value::Dict(rcelery::value::Dict(expected))
    );
}
