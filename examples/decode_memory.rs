//! Peak memory of the worker's decode path on one input file, for measuring the bound of
//! `docs/security-pickle.md` without a broker.
//!
//! `cargo run --release --example decode_memory -- <stage> <file>` where `<stage>` is
//! `pickle` or `json` (the body codecs), `envelope` (the kombu envelope only) or `message`
//! (envelope, then the task decode as the worker does it). Prints the input size, the peak
//! resident memory growth during the stage and the resident memory after everything is
//! dropped, from `/proc/self/status`. `sizes` prints the size of the value types instead.

use std::time::Instant;

use rcelery::broker::redis::parse_envelope;
use rcelery::codec::AcceptContent;
use rcelery::protocol::decode_task;

/// The allocator the `rcelery` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets the peak-RSS counter (`VmHWM`) to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let stage = args.get(1).map(String::as_str).unwrap_or("sizes");
    if stage == "sizes" {
        println!("Value {}", std::mem::size_of::<rcelery::Value>());
        println!(
            "(Value, Value) {}",
            std::mem::size_of::<(rcelery::Value, rcelery::Value)>()
        );
        return;
    }
    let Some(path) = args.get(2) else {
        eprintln!("usage: decode_memory <pickle|json|envelope|message> <file>");
        std::process::exit(2);
    };
    let input = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let accept = AcceptContent::from_names(&["json", "pickle"]).unwrap_or_else(|e| panic!("{e}"));
    let idle = status_bytes("VmRSS:");
    reset_peak();
    let started = Instant::now();
    let outcome = match stage {
        "pickle" => rcelery::codec::pickle::decode(&input)
            .map(drop)
            .map_err(|e| e.to_string()),
        "json" => rcelery::codec::json::decode(&input)
            .map(drop)
            .map_err(|e| e.to_string()),
        "envelope" => parse_envelope(&input).map(drop).map_err(|e| e.to_string()),
        "message" => match parse_envelope(&input) {
            Ok(mut env) => decode_task(&mut env.message, &accept, |_| true)
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        other => panic!("unknown stage {other}"),
    };
    let elapsed = started.elapsed();
    let peak = status_bytes("VmHWM:");
    // Past mimalloc's purge delay, let it hand back what was freed (as the worker does).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    rcelery::memory::trim();
    let after = status_bytes("VmRSS:");
    println!(
        "{stage}: input {:.1} MB, {:?} in {elapsed:.2?}; peak growth {:.1} MB ({:.1} x input), after {:.1} MB above idle",
        mb(input.len() as u64),
        outcome.err().unwrap_or_else(|| "ok".into()),
        mb(peak.saturating_sub(idle)),
        peak.saturating_sub(idle) as f64 / input.len().max(1) as f64,
        mb(after.saturating_sub(idle)),
    );
}
