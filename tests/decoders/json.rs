//! Invariants of kombu's JSON codec (`rcelery::codec::json`), shared by the `json` fuzz target
//! and `tests/decoder_robustness.rs`:
//!
//! - whatever decodes re-encodes, and the re-encoded text decodes to the same value and
//!   re-encodes to the same bytes (the writer's output is a fixed point);
//! - walking the document with [`PullReader`] (every object member by member, strings
//!   borrowed, read exactly: lone surrogates kept) reads the same value, or fails with the
//!   same error (offset and message), as
//!   [`json::decode`]. The one documented difference: the pull reader walks objects as plain
//!   objects, so an object that is a kombu tag is read as one here and passed through
//!   `decode` separately; a tag `decode` refuses is then not compared.

use std::collections::HashMap;

use rcelery::codec::json::{self, ExactStr, JsonError, PullReader};
use rcelery::value::{Dict, Value};

/// Checks every invariant on one input; panics on a violation. True if it decoded.
pub fn check(data: &[u8]) -> bool {
    let decoded = json::decode(data);
    if let Ok(value) = &decoded {
        round_trip(value);
    }
    let mut walk = Walk::default();
    let pulled = pull_document(data, &mut walk);
    if walk.refused_tag {
        return decoded.is_ok();
    }
    match (&decoded, &pulled) {
        (Ok(a), Ok(b)) => assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "pull reader read another value"
        ),
        (Err(a), Err(b)) => assert_eq!(
            (a.offset, &a.message),
            (b.offset, &b.message),
            "pull reader failed otherwise"
        ),
        _ => panic!("decode gave {decoded:?}, the pull reader {pulled:?}"),
    }
    decoded.is_ok()
}

/// `encode` then `decode` gives the value back; a second `encode` gives the same bytes.
pub fn round_trip(value: &Value) {
    let text = json::encode(value);
    let again = match json::decode(&text) {
        Ok(v) => v,
        Err(e) => panic!(
            "our own JSON does not decode ({e}): {}",
            String::from_utf8_lossy(&text)
        ),
    };
    // Debug keeps -0.0 apart from 0.0 and makes NaN equal to itself.
    assert_eq!(
        format!("{again:?}"),
        format!("{value:?}"),
        "JSON round trip changed the value"
    );
    assert_eq!(
        json::encode(&again),
        text,
        "re-encoding is not a fixed point"
    );
}

/// What walking met besides values.
#[derive(Default)]
struct Walk {
    /// An object that is a kombu tag `decode` refuses was walked (see the module doc).
    refused_tag: bool,
}

fn pull_document(data: &[u8], walk: &mut Walk) -> Result<Value, JsonError> {
    let mut doc = PullReader::new(data)?;
    let value = pull_value(&mut doc, walk)?;
    doc.finish()?;
    Ok(value)
}

/// Objects member by member (recursively), strings through the borrowing reader, anything
/// else whole.
fn pull_value(doc: &mut PullReader<'_>, walk: &mut Walk) -> Result<Value, JsonError> {
    if doc.at_string() {
        return doc.exact_string().map(str_value);
    }
    if !doc.at_object() {
        return doc.value();
    }
    doc.enter_object()?;
    // Python's dict: a repeated key keeps its first place and takes the last value.
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    // Keys by their code points (the surrogatepass UTF-8 of a str).
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    while let Some(key) = doc.next_exact_key()? {
        let key = str_value(key);
        let value = pull_value(doc, walk)?;
        let code_points = key.str_surrogatepass_utf8().unwrap_or_default().to_vec();
        match index.get(&code_points) {
            Some(&at) => pairs[at].1 = value,
            None => {
                index.insert(code_points, pairs.len());
                pairs.push((key, value));
            }
        }
    }
    let object = Value::Dict(Dict(pairs));
    if !is_tag(&object) {
        return Ok(object);
    }
    // What kombu's object hook makes of it: decode the tag alone.
    match json::decode(&json::encode(&object)) {
        Ok(tagged) => Ok(tagged),
        Err(_) => {
            walk.refused_tag = true;
            Ok(object)
        }
    }
}

/// A string the pull reader read exactly, as a `str` value.
fn str_value(s: ExactStr<'_>) -> Value {
    match s {
        Ok(text) => Value::Str(text.into_owned()),
        Err(s) => Value::SurrogateStr(s),
    }
}

/// True for an object whose keys are exactly `__type__` and `__value__`.
pub fn is_tag(value: &Value) -> bool {
    value.as_dict().is_some_and(|d| {
        d.len() == 2 && d.get("__type__").is_some() && d.get("__value__").is_some()
    })
}
