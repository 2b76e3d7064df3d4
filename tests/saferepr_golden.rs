//! Golden tests for `py_repr` and `saferepr` against CPython 3.11 / Celery 5.7.0
//! (`python-fixtures/capture/capture_saferepr.py` → `python-fixtures/golden/saferepr_values.json`).

use rcelery::codec::json::decode;
use rcelery::value::{py_repr, saferepr, saferepr_value, Value};

#[test]
fn repr_and_saferepr_match_python() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python-fixtures/golden/saferepr_values.json"
    );
    let text = std::fs::read_to_string(path).expect("golden file present");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("golden file is JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() > 15);
    let mut failures = Vec::new();
    for case in cases {
        let json = case["json"].as_str().expect("json");
        let mut value = decode(json.as_bytes()).expect("input decodes");
        if case["tuple"].as_bool() == Some(true) {
            if let Value::List(items) = value {
                value = Value::Tuple(items);
            }
        }
        let want_repr = case["repr"].as_str().expect("repr");
        let got_repr = py_repr(&value);
        if got_repr != want_repr {
            failures.push(format!(
                "repr of {json:.60}:\n  got  {got_repr}\n  want {want_repr}"
            ));
        }
        for (maxlen, want) in case["saferepr"].as_object().expect("saferepr") {
            let maxlen: usize = maxlen.parse().expect("maxlen");
            // A text holding lone surrogates comes as its code points and its
            // backslashreplace spelling (what `saferepr`'s String shows).
            let (want_value, want) = match want.as_str() {
                Some(text) => (Value::str(text), text),
                None => (
                    Value::from_code_points(
                        want["code_points"]
                            .as_array()
                            .expect("code points")
                            .iter()
                            .map(|cp| cp.as_u64().expect("code point") as u32),
                    )
                    .expect("code points in range"),
                    want["backslashreplace"].as_str().expect("backslashreplace"),
                ),
            };
            let got = saferepr(&value, maxlen);
            if got != want {
                failures.push(format!(
                    "saferepr({json:.60}, {maxlen}):\n  got  {got}\n  want {want}"
                ));
            }
            let got_value = saferepr_value(&value, maxlen);
            if got_value != want_value {
                failures.push(format!(
                    "saferepr_value({json:.60}, {maxlen}):\n  got  {got_value:?}\n  want {want_value:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
