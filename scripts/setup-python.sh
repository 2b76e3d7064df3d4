#!/usr/bin/env bash
# Create (or reuse) .venv in the repo root with python-fixtures/requirements.txt installed.
# Idempotent: reinstalls only when the requirements file changed. Fails loudly on any error.
# RCELERY_VENV (a directory name in the repo root) and RCELERY_REQUIREMENTS (a file in
# python-fixtures/) select another pair, e.g. .venv-5.5 with requirements-5.5.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/${RCELERY_VENV:-.venv}"
REQ="$ROOT/python-fixtures/${RCELERY_REQUIREMENTS:-requirements.txt}"
STAMP="$VENV/.requirements.sha256"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "setup-python: $PYTHON not found" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-python: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV" || { echo "setup-python: venv creation failed (apt-get install python3-venv?)" >&2; exit 1; }
fi
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    echo "setup-python: installing $REQ" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" > "$STAMP"
fi
"$VENV/bin/python" -c "import celery, kombu, redis, django, pytest, psutil" \
    || { echo "setup-python: the venv is incomplete" >&2; exit 1; }
