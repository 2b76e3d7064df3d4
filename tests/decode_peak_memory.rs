//! Real memory, not the decoders' own accounting: the peak resident memory of this process
//! while it decodes hostile and ordinary payloads stays within [`REAL_BYTES_PER_INPUT_BYTE`]
//! per input byte, and is handed back afterwards (`rcelery::memory::trim`).
//!
//! One test only, so nothing else runs in the process while it measures. Linux: the peak
//! comes from the kernel (`VmHWM` in `/proc/self/status`, reset through
//! `/proc/self/clear_refs`).

use std::time::Duration;

use rcelery::codec::{json, pickle};
use rcelery::Value;

/// The allocator the `rcelery` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bound in real memory: the accounted allowance
/// ([`rcelery::codec::limits::BYTES_PER_INPUT_BYTE`]) plus what the accounting leaves out
/// (allocator rounding, a vector's old buffer while it grows), as docs/security-pickle.md states.
const REAL_BYTES_PER_INPUT_BYTE: usize = 40;
const SLACK: usize = 4 << 20;

fn status(field: &str) -> usize {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    kb * 1024
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs is writable");
}

/// Runs `decode` on `input`; returns (peak growth, growth left once memory is handed back).
fn measure(input: &[u8], decode: impl Fn(&[u8]) -> bool) -> (usize, usize) {
    settle();
    let before = status("VmRSS:");
    reset_peak();
    let ok = decode(input);
    let peak = status("VmHWM:").saturating_sub(before);
    settle();
    let left = status("VmRSS:").saturating_sub(before);
    eprintln!(
        "  ok={ok} input {} KiB peak +{} KiB left +{} KiB",
        input.len() >> 10,
        peak >> 10,
        left >> 10
    );
    (peak, left)
}

/// Waits out mimalloc's purge delay, then lets it purge.
fn settle() {
    std::thread::sleep(Duration::from_millis(1100));
    rcelery::memory::trim();
}

#[test]
fn decoding_stays_within_the_real_memory_bound_and_gives_it_back() {
    let n = 3_000_000;
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', n));
    deep.extend(std::iter::repeat_n(b'a', n - 1));
    deep.push(b'.');
    let mut empties = b"\x80\x04(".to_vec();
    empties.extend(std::iter::repeat_n(b']', n));
    empties.extend(b"l.");
    let ints = pickle::encode(
        &Value::List(
            (0..n as i64)
                .map(|i| Value::Int(1000 + i % 60_000))
                .collect(),
        ),
        4,
    );
    let strings = pickle::encode(
        &Value::List(
            (0..n as i64 / 4)
                .map(|i| Value::Str(format!("s{i}")))
                .collect(),
        ),
        4,
    );
    let json_ints = json::encode(&Value::List(
        (0..n as i64).map(|i| Value::Int(i % 10)).collect(),
    ));
    type Decoder = fn(&[u8]) -> bool;
    let by_pickle: Decoder = |b| pickle::decode(b).is_ok();
    let by_json: Decoder = |b| json::decode(b).is_ok();
    let cases: [(&str, &[u8], Decoder); 5] = [
        ("nested lists", &deep, by_pickle),
        ("empty lists", &empties, by_pickle),
        ("ints", &ints, by_pickle),
        ("strings", &strings, by_pickle),
        ("json ints", &json_ints, by_json),
    ];
    for (what, input, decode) in cases {
        eprintln!("{what}:");
        let (peak, left) = measure(input, decode);
        let bound = REAL_BYTES_PER_INPUT_BYTE * input.len() + SLACK;
        assert!(peak <= bound, "{what}: peak growth {peak} > {bound}");
        assert!(left <= SLACK, "{what}: {left} bytes not handed back");
    }
}
