#!/usr/bin/env bash
# Run the fault suite (fault-tests/): real redis-servers on private ports that the tests kill,
# restart, pause and fill while a real Python producer sends and the rcelery worker runs.
# Sets up .venv and builds the release binary (unless RCELERY_BIN is given). Extra arguments go
# to pytest, e.g. `-k sighup`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup-python.sh"
command -v redis-server >/dev/null || { echo "fault-tests: redis-server not on PATH" >&2; exit 1; }
if [ -z "${RCELERY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --workspace --bins)
fi
cd "$ROOT/fault-tests"
exec "$ROOT/.venv/bin/python" -m pytest "$ROOT/fault-tests" --timeout="${FAULT_TEST_TIMEOUT:-240}" "$@"
