#!/usr/bin/env bash
# Run the fault suite (fault-tests/): real redis-servers on private ports and a private RabbitMQ
# node (ports 5680-5699) that the tests kill, restart, pause, stop and fill while a real Python
# producer sends and the rcelery worker runs. Sets up .venv, installs redis-server and
# rabbitmq-server from Debian's packages when missing, and builds the release binary (unless
# RCELERY_BIN is given or RCELERY_WORKER=python, which runs the same tests against the real
# Python Celery worker; meant for the AMQP tests: `RCELERY_WORKER=python bash
# scripts/fault-tests.sh -m amqp`). Extra arguments go to pytest, e.g. `-k sighup`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup-python.sh"
install_missing() {  # install_missing COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "fault-tests: $1 missing: installing $2 from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null \
        || { echo "fault-tests: FATAL: cannot install $2" >&2; exit 1; }
    command -v "$1" >/dev/null 2>&1 || { echo "fault-tests: FATAL: $1 still not on PATH" >&2; exit 1; }
}
install_missing redis-server redis-server
install_missing rabbitmq-server rabbitmq-server
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] \
    || { echo "fault-tests: FATAL: /usr/lib/rabbitmq/bin/rabbitmq-server missing (broken RabbitMQ install)" >&2; exit 1; }
if [ "${RCELERY_WORKER:-rust}" = "rust" ] && [ -z "${RCELERY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --workspace --bins)
fi
cd "$ROOT/fault-tests"
exec "$ROOT/.venv/bin/python" -m pytest "$ROOT/fault-tests" --timeout="${FAULT_TEST_TIMEOUT:-240}" "$@"
