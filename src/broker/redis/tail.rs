//! The delivery tag of a list item read the way the fetch script reads it: from the tail of
//! a kombu envelope (`..."delivery_info": {"exchange": "E", "routing_key": "R"}, "priority":
//! N, "body_encoding": "base64", "delivery_tag": "T"}}`), without decoding the rest.
//!
//! The fetch script records an item as unacked under the tag it finds there, even when the
//! rest of the item is garbage. When the worker then cannot parse the item, this finds the
//! same tag, so the garbage is acked (removed from `unacked`) at once instead of lingering
//! until a restore drops it.

/// The tag the fetch script's fast path reads from `raw`, if its tail has kombu's shape.
pub fn kombu_tag(raw: &[u8]) -> Option<&str> {
    const TAG: &[u8] = b", \"body_encoding\": \"base64\", \"delivery_tag\": \"";
    const INFO: &[u8] = b"\"delivery_info\": {\"exchange\": \"";
    const RK: &[u8] = b"\", \"routing_key\": \"";
    const PRIO: &[u8] = b"\"}, \"priority\": ";
    let n = raw.len();
    if n < 3 || &raw[n - 3..] != b"\"}}" {
        return None;
    }
    let window = n.saturating_sub(400);
    let info = find(&raw[window..], INFO)? + window;
    let ex_start = info + INFO.len();
    let ex_end = ex_start + raw[ex_start..].iter().position(|b| *b == b'"')?;
    if !raw[ex_end..].starts_with(RK) {
        return None;
    }
    let rk_start = ex_end + RK.len();
    let rk_end = rk_start + raw[rk_start..].iter().position(|b| *b == b'"')?;
    if !raw[rk_end..].starts_with(PRIO) {
        return None;
    }
    let prio_start = rk_end + PRIO.len();
    let tag_at = prio_start + find(&raw[prio_start..], TAG)?;
    let prio = &raw[prio_start..tag_at];
    if prio.is_empty() || !prio.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let tag = raw.get(tag_at + TAG.len()..n - 3)?;
    let escaped = |s: &[u8]| s.contains(&b'\\');
    if escaped(&raw[ex_start..ex_end]) || escaped(&raw[rk_start..rk_end]) || escaped(tag) || tag.contains(&b'"') {
        return None;
    }
    std::str::from_utf8(tag).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &str = r#""properties": {"correlation_id": "c", "reply_to": "", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "default"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "8a1c0f3e-7c55-4f6b-9a43-0c8b4d2a1f00"}}"#;

    #[test]
    fn reads_the_tag_of_garbage_with_a_kombu_tail() {
        let garbage = format!("{{\"body\": not json at all, {TAIL}");
        assert_eq!(kombu_tag(garbage.as_bytes()), Some("8a1c0f3e-7c55-4f6b-9a43-0c8b4d2a1f00"));
    }

    #[test]
    fn other_shapes_have_no_tag() {
        assert_eq!(kombu_tag(b"this is {not json"), None);
        let escaped = TAIL.replace("\"default\"", "\"de\\\"fault\"");
        assert_eq!(kombu_tag(escaped.as_bytes()), None);
        let no_prio = TAIL.replace("\"priority\": 0", "\"priority\": x");
        assert_eq!(kombu_tag(no_prio.as_bytes()), None);
    }
}
