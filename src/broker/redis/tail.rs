//! The delivery tag the fetch script reads from a kombu-shaped tail without decoding the
//! envelope (`kombu_tail` in `scripts.rs`). The script records the message in `unacked` under
//! that tag, so the worker must settle it under the same one, even when the envelope then
//! turns out not to parse (garbage that merely ends like kombu's envelopes).
//!
//! kombu's envelope ends with `"delivery_info": {"exchange": "<ex>", "routing_key": "<rk>"},
//! "priority": <digits>, "body_encoding": "base64", "delivery_tag": "<tag>"}}`; the script
//! looks for it in the last 400 bytes and gives up on escapes in the exchange, routing key or
//! tag. This reads exactly the same tails (`tests/decoders/envelope.rs` checks it against a
//! line-by-line port of the Lua).

const DELIVERY_INFO: &[u8] = b"\"delivery_info\": {\"exchange\": \"";
const ROUTING_KEY: &[u8] = b"\", \"routing_key\": \"";
const PRIORITY: &[u8] = b"\"}, \"priority\": ";
const TAG: &[u8] = b", \"body_encoding\": \"base64\", \"delivery_tag\": \"";
const END: &[u8] = b"\"}}";

/// The script searches for [`DELIVERY_INFO`] from byte `n - 400` (1-based) on.
const SEARCHED: usize = 401;

/// The tag the fetch script's fast path records `raw` under, if it reads one (and the tag is
/// UTF-8, which a tag the worker can settle must be).
pub(super) fn recorded_tag(raw: &[u8]) -> Option<&str> {
    let n = raw.len();
    if !raw.ends_with(END) {
        return None;
    }
    let window = n.saturating_sub(SEARCHED);
    let info = window + find(&raw[window..], DELIVERY_INFO)? + DELIVERY_INFO.len();
    let (exchange, rest) = until_quote(&raw[info..])?;
    let (routing_key, rest) = until_quote(rest.strip_prefix(ROUTING_KEY)?)?;
    let rest = rest.strip_prefix(PRIORITY)?;
    let priority_len = find(rest, TAG)?;
    if priority_len == 0 || !rest[..priority_len].iter().all(u8::is_ascii_digit) {
        return None;
    }
    // The tag runs to the closing `"}}`; it is empty when the pattern's last quote is that one.
    let tag_start = n - rest.len() + priority_len + TAG.len();
    let tag = raw.get(tag_start..n - END.len()).unwrap_or_default();
    if exchange.contains(&b'\\')
        || routing_key.contains(&b'\\')
        || tag.contains(&b'"')
        || tag.contains(&b'\\')
    {
        return None;
    }
    std::str::from_utf8(tag).ok()
}

/// The bytes up to the next `"`, and the rest from that quote on.
fn until_quote(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&b| b == b'"')?;
    Some(s.split_at(at))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &str = r#""properties": {"correlation_id": "i1", "reply_to": "r", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "default"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "1b3f5e0c-4c1e-4d7a-9a57-0e6a8b1c2d3e"}}"#;

    #[test]
    fn reads_kombus_tail_whatever_comes_before() {
        for head in [
            r#"{"body": "e30=", "headers": {}, "#,
            "garbage \u{0} that is not JSON, ",
        ] {
            let raw = format!("{head}{TAIL}");
            assert_eq!(
                recorded_tag(raw.as_bytes()),
                Some("1b3f5e0c-4c1e-4d7a-9a57-0e6a8b1c2d3e"),
                "{raw}"
            );
        }
    }

    #[test]
    fn gives_up_where_the_script_decodes_whole() {
        let cases = [
            TAIL.replace(r#""default""#, r#""de\"fault""#),
            TAIL.replace(r#""priority": 0"#, r#""priority": "0""#),
            TAIL.replace(r#""priority": 0"#, r#""priority": "#),
            TAIL.replace("1b3f5e0c", r"1b3\u0066"),
            TAIL.replace(r#""default"}"#, r#""default", "redelivered": true}"#),
            TAIL.replace(r#""default""#, &format!("\"{}\"", "k".repeat(300))),
            TAIL.trim_end_matches('}').to_owned(),
        ];
        for raw in cases {
            assert_eq!(recorded_tag(raw.as_bytes()), None, "{raw}");
        }
    }

    #[test]
    fn an_empty_tag_counts_as_the_script_reads_it() {
        let raw = TAIL.replace(r#""1b3f5e0c-4c1e-4d7a-9a57-0e6a8b1c2d3e"}}"#, r#""}}"#);
        assert_eq!(recorded_tag(raw.as_bytes()), Some(""));
    }
}
