#!/usr/bin/env bash
# The older Celery line: the golden and canvas tests of the compatibility suite against Celery
# 5.5.3 / kombu 5.5.4 / redis-py 5.2.1 (python-fixtures/requirements-5.5.txt, installed in
# .venv-5.5). Goldens that differ in 5.5 come from python-fixtures/golden-5.5/. Same
# environment as compat-tests.sh (RCELERY_WORKER, RCELERY_BIN, RCELERY_TEST_REDIS_PORT, ...);
# extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RCELERY_VENV=.venv-5.5 RCELERY_REQUIREMENTS=requirements-5.5.txt bash "$ROOT/scripts/setup-python.sh"
command -v redis-server >/dev/null || { echo "compat-tests-5.5: redis-server not on PATH" >&2; exit 1; }
if [ "${RCELERY_WORKER:-rust}" = "rust" ] && [ -z "${RCELERY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --workspace --bins)
fi
cd "$ROOT"
"$ROOT/.venv-5.5/bin/python" -c "import celery, sys; sys.exit(celery.__version__ != '5.5.3')" \
    || { echo "compat-tests-5.5: .venv-5.5 does not hold Celery 5.5.3" >&2; exit 1; }
exec "$ROOT/.venv-5.5/bin/python" -m pytest "$ROOT/compat-tests/test_golden_results.py" \
    "$ROOT/compat-tests/test_canvas.py" --timeout="${COMPAT_TEST_TIMEOUT:-180}" "$@"
