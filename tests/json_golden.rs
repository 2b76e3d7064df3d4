//! Golden tests for the JSON codec against output captured from kombu 5.7.0
//! (`python-fixtures/capture/capture_json.py` → `python-fixtures/golden/json_values.json`).

use rcelery::codec::json::{decode, encode};
use rcelery::value::py_repr;

fn golden() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python-fixtures/golden/json_values.json"
    );
    let text = std::fs::read_to_string(path).expect("golden file present");
    serde_json::from_str(&text).expect("golden file is JSON")
}

fn field<'a>(case: &'a serde_json::Value, name: &str) -> &'a str {
    case[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing {name} in {case}"))
}

#[test]
fn kombu_dumps_output_decodes_to_the_same_python_value_and_reencodes_byte_for_byte() {
    let g = golden();
    let cases = g["values"].as_array().expect("values");
    assert!(cases.len() > 50);
    let mut failures = Vec::new();
    for case in cases {
        let name = field(case, "name");
        let json = field(case, "json");
        let want_repr = field(case, "loads_repr");
        match decode(json.as_bytes()) {
            Err(e) => failures.push(format!("{name}: decode failed: {e}")),
            Ok(v) => {
                let got_repr = py_repr(&v);
                if got_repr != want_repr {
                    failures.push(format!("{name}: repr {got_repr} != {want_repr}"));
                }
                let again = String::from_utf8_lossy(&encode(&v)).into_owned();
                if again != json {
                    failures.push(format!("{name}: encode {again} != {json}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn decoding_arbitrary_texts_matches_kombu_loads() {
    let g = golden();
    let cases = g["decode"].as_array().expect("decode");
    let mut failures = Vec::new();
    for case in cases {
        let input = field(case, "input");
        let result = decode(input.as_bytes());
        if let Some(err) = case["error"].as_str() {
            if let Ok(v) = result {
                failures.push(format!("{input:?}: expected {err}, got {}", py_repr(&v)));
            }
            continue;
        }
        match result {
            Err(e) => failures.push(format!("{input:?}: decode failed: {e}")),
            Ok(v) => {
                let got = py_repr(&v);
                let want = field(case, "loads_repr");
                if got != want {
                    failures.push(format!("{input:?}: repr {got} != {want}"));
                }
                let again = String::from_utf8_lossy(&encode(&v)).into_owned();
                let want_dumps = field(case, "dumps");
                if again != want_dumps {
                    failures.push(format!("{input:?}: dumps {again} != {want_dumps}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
