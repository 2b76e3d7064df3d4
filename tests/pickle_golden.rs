//! Golden tests against CPython 3.11: every pickle in `python-fixtures/golden/pickle_values.json`
//! (written by `python-fixtures/capture/capture_pickle.py`) must decode to what `pickle.loads`
//! gives, re-encode byte for byte for protocols 2–5, and the forbidden ones must be refused
//! naming their global.

use rcelery::codec::pickle::{decode, encode, PickleError};
use rcelery::value::{Date, DateTime, Dict, Time, TimeDelta, TzInfo, Value};
use serde_json::Value as Json;

const GOLDEN: &str = include_str!("../python-fixtures/golden/pickle_values.json");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn int(j: &Json) -> i64 {
    j.as_i64().unwrap()
}

fn tz(j: &Json) -> Option<TzInfo> {
    let a = j.as_array()?;
    Some(match a[0].as_str().unwrap() {
        "utc" => TzInfo::Utc,
        "zone" => TzInfo::Zone(a[1].as_str().unwrap().to_owned()),
        "fixed" => TzInfo::Fixed {
            offset_seconds: int(&a[1]) as i32,
            name: a[2].as_str().map(str::to_owned),
        },
        other => panic!("unknown tz {other}"),
    })
}

/// The typed description the capture script writes → a `Value`.
fn expected(j: &Json) -> Value {
    let a = j.as_array().unwrap();
    let body = a.get(1);
    let items = || {
        body.unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(expected)
            .collect::<Vec<_>>()
    };
    let fields = || body.unwrap().as_array().unwrap().clone();
    match a[0].as_str().unwrap() {
        "none" => Value::None,
        "bool" => Value::Bool(body.unwrap().as_bool().unwrap()),
        "int" => Value::int(body.unwrap().as_str().unwrap().parse().unwrap()),
        "float" => Value::Float(f64::from_bits(
            body.unwrap().as_str().unwrap().parse().unwrap(),
        )),
        "str" => Value::Str(body.unwrap().as_str().unwrap().to_owned()),
        // A str holding lone surrogates, as its code points.
        "str_code_points" => Value::from_code_points(
            body.unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|cp| cp.as_u64().unwrap() as u32),
        )
        .unwrap(),
        "bytes" => Value::Bytes(unhex(body.unwrap().as_str().unwrap())),
        "bytearray" => Value::ByteArray(unhex(body.unwrap().as_str().unwrap())),
        "list" => Value::List(items()),
        "tuple" => Value::Tuple(items()),
        "set" => Value::Set(items()),
        "frozenset" => Value::FrozenSet(items()),
        "dict" => Value::Dict(Dict(
            body.unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (expected(&kv[0]), expected(&kv[1])))
                .collect(),
        )),
        "datetime" => {
            let f = fields();
            Value::DateTime(Box::new(DateTime {
                date: Date {
                    year: int(&f[0]) as i32,
                    month: int(&f[1]) as u8,
                    day: int(&f[2]) as u8,
                },
                time: Time {
                    hour: int(&f[3]) as u8,
                    minute: int(&f[4]) as u8,
                    second: int(&f[5]) as u8,
                    microsecond: int(&f[6]) as u32,
                    fold: int(&f[7]) as u8,
                    tz: tz(&f[8]),
                },
            }))
        }
        "date" => {
            let f = fields();
            Value::Date(Date {
                year: int(&f[0]) as i32,
                month: int(&f[1]) as u8,
                day: int(&f[2]) as u8,
            })
        }
        "time" => {
            let f = fields();
            Value::Time(Box::new(Time {
                hour: int(&f[0]) as u8,
                minute: int(&f[1]) as u8,
                second: int(&f[2]) as u8,
                microsecond: int(&f[3]) as u32,
                fold: int(&f[4]) as u8,
                tz: tz(&f[5]),
            }))
        }
        "timedelta" => {
            let f = fields();
            Value::TimeDelta(TimeDelta {
                days: int(&f[0]),
                seconds: int(&f[1]) as i32,
                microseconds: int(&f[2]) as i32,
            })
        }
        "decimal" => Value::Decimal(body.unwrap().as_str().unwrap().to_owned()),
        "uuid" => Value::Uuid(uuid::Uuid::parse_str(body.unwrap().as_str().unwrap()).unwrap()),
        other => panic!("unknown type {other}"),
    }
}

fn golden() -> Json {
    serde_json::from_str(GOLDEN).unwrap()
}

fn short(s: String) -> String {
    if s.len() > 400 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(400).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[test]
fn golden_values_decode_like_cpython() {
    let doc = golden();
    let cases = doc["values"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let name = format!(
            "{} (protocol {})",
            case["name"].as_str().unwrap(),
            case["protocol"]
        );
        let data = unhex(case["hex"].as_str().unwrap());
        let want = expected(&case["expect"]);
        match decode(&data) {
            // Debug strings tell -0.0 from 0.0, which `==` does not.
            Ok(got) if format!("{got:?}") == format!("{want:?}") => {}
            Ok(got) => failures.push(format!(
                "{name}: decoded {}\n   expected {}",
                short(format!("{got:?}")),
                short(format!("{want:?}"))
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(cases.len() > 500);
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_values_encode_byte_identical() {
    let doc = golden();
    let cases = doc["values"].as_array().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c["encode"].as_bool().unwrap()) {
        let proto = case["protocol"].as_u64().unwrap() as u8;
        let name = format!("{} (protocol {proto})", case["name"].as_str().unwrap());
        let data = unhex(case["hex"].as_str().unwrap());
        let value = expected(&case["expect"]);
        let ours = encode(&value, proto);
        checked += 1;
        if ours != data {
            let at = ours
                .iter()
                .zip(&data)
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(data.len()));
            failures.push(format!(
                "{name}: differs at byte {at} (ours {} bytes, CPython {})\n   ours    {}\n   cpython {}",
                ours.len(),
                data.len(),
                short(hex(&ours[at.saturating_sub(8)..])),
                short(hex(&data[at.saturating_sub(8)..])),
            ));
        }
    }
    assert!(checked > 300);
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn forbidden_globals_are_refused_by_name() {
    let doc = golden();
    let cases = doc["forbidden"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = format!(
            "{} (protocol {})",
            case["name"].as_str().unwrap(),
            case["protocol"]
        );
        let data = unhex(case["hex"].as_str().unwrap());
        let (module, global) = (
            case["module"].as_str().unwrap(),
            case["global"].as_str().unwrap(),
        );
        match decode(&data) {
            Err(PickleError::ForbiddenGlobal { module: m, name: n }) => {
                assert_eq!((m.as_str(), n.as_str()), (module, global), "{name}");
                let msg = PickleError::ForbiddenGlobal { module: m, name: n }.to_string();
                assert!(msg.contains(&format!("{module}.{global}")), "{name}: {msg}");
            }
            other => panic!("{name}: expected ForbiddenGlobal {module}.{global}, got {other:?}"),
        }
    }
}

#[test]
fn database_backend_result_format() {
    // celery-wire.md, "Database backend": `result` is pickle protocol 5 of the value.
    assert_eq!(encode(&Value::Int(3), 5), b"\x80\x05K\x03.");
    assert_eq!(decode(b"\x80\x05K\x03.").unwrap(), Value::Int(3));
}
