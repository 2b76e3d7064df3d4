#!/usr/bin/env bash
# Fuzzes every decoder for a short, bounded time (for CI): installs cargo-fuzz if missing,
# builds every target in fuzz/ on the stable toolchain, seeds the corpora from the golden
# Celery captures, runs each target FUZZ_SECONDS seconds (default 20) in one process, one
# after the other, and fails loudly on any crash, panic, timeout or memory over the limit.
# FUZZ_SECONDS=600 makes it the long run. Extra arguments go to every libFuzzer run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
# Inputs up to 16 KiB. The documented bound for decoding one (8 x input + 64 KiB,
# docs/security-pickle.md) is under 1 MiB; the limit adds it to libFuzzer's own resident
# memory (about 60 MiB with the corpus loaded), with headroom for the corpus growing.
MAX_LEN=16384
RSS_LIMIT_MB="${FUZZ_RSS_LIMIT_MB:-160}"

# cargo-fuzz passes nightly-only flags (-Z, -C passes=sancov-module); this makes the stable
# toolchain accept them.
export RUSTC_BOOTSTRAP=1
# The decoders are `#![forbid(unsafe_code)]`: AddressSanitizer would find nothing in them,
# halve the speed and blur the memory figures. Release build with debug assertions and
# overflow checks (cargo-fuzz's default).
SANITIZER=(--sanitizer none)

started=$(date +%s)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
bash scripts/setup-python.sh
cargo fuzz build "${SANITIZER[@]}"
built=$(date +%s)
.venv/bin/python fuzz/seed.py

logs="$(mktemp -d)"
for target in $(cargo fuzz list); do
    log="$logs/$target.log"
    if ! cargo fuzz run "${SANITIZER[@]}" "$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" -max_len="$MAX_LEN" \
        -timeout=10 -print_final_stats=1 "$@" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "FATAL: fuzz target '$target' failed (crash, panic, timeout or over ${RSS_LIMIT_MB} MB);" \
            "the input is in fuzz/artifacts/$target/, the whole log in $log" >&2
        exit 1
    fi
    stat() { sed -n "s/^stat::$1: *//p" "$log"; }
    coverage="$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -n 1)"
    echo "fuzz $target: $(stat number_of_executed_units) execs, $(stat average_exec_per_sec)/s," \
        "$coverage, peak RSS $(stat peak_rss_mb) MB"
done
rm -rf "$logs"
echo "fuzz: all targets clean; build $((built - started)) s, total $(($(date +%s) - started)) s"
