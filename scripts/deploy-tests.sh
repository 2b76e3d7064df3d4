#!/usr/bin/env bash
# Run the deployment suite (deploy-tests/): the whole deployment of
# docs/migration.md as one test. Sets up .venv, makes sure PostgreSQL runs, builds the
# release binary (unless RCELERY_WORKER=python or RCELERY_BIN is given), then pytest.
# RCELERY_WORKER=python runs the same test against the real Celery worker. Extra arguments go
# to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup-python.sh"
command -v redis-server >/dev/null || { echo "deploy-tests: redis-server not on PATH" >&2; exit 1; }
bash "$ROOT/scripts/ensure-databases.sh"
if [ "${RCELERY_WORKER:-rust}" = "rust" ] && [ -z "${RCELERY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --workspace --bins)
fi
cd "$ROOT/deploy-tests"
exec "$ROOT/.venv/bin/python" -m pytest "$ROOT/deploy-tests" "$@"
