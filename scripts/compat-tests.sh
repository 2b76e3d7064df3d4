#!/usr/bin/env bash
# Run the compatibility suite: set up .venv, build the release binaries (rcelery and the
# example workers of examples/; not when RCELERY_WORKER=python or RCELERY_BIN is given), then
# pytest compat-tests/ with a per-test timeout. Extra arguments go to pytest, e.g. `-m "not slow"` or `-k priority`.
# The broker: env RCELERY_TEST_BROKER=redis (default) | amqp (RabbitMQ, started by
# scripts/rabbitmq.sh when down) | filesystem; the tests that do not apply to it are
# deselected (see compat-tests/README.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup-python.sh"
command -v redis-server >/dev/null || { echo "compat-tests: redis-server not on PATH" >&2; exit 1; }
if [ "${RCELERY_TEST_BROKER:-redis}" = "amqp" ]; then
    bash "$ROOT/scripts/rabbitmq.sh"
fi
bash "$ROOT/scripts/ensure-databases.sh"
if [ "${RCELERY_WORKER:-rust}" = "rust" ] && [ -z "${RCELERY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --workspace --bins)
fi
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$ROOT/compat-tests" --timeout="${COMPAT_TEST_TIMEOUT:-180}" --durations=15 "$@"
