#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, the Python-driven compatibility suite
# against real Celery and real Redis, then the fault suite. Needs nothing running beforehand: it starts what
# it needs and fails loudly (never skips) when something cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "FATAL: '$1' is required but not installed" >&2; exit 1; }; }
need cargo
need python3
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server missing: installing it from Debian's packages" >&2
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null || { echo "FATAL: cannot install redis-server" >&2; exit 1; }
fi
# The machine's shared Redis on 6379: started if down (the compat suite runs its own instances).
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "Redis on 6379 is down: starting it" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p 6379 ping >/dev/null || { echo "FATAL: cannot start Redis on 6379" >&2; exit 1; }
fi

# The machine's RabbitMQ on 5672: installed and started when it does not answer (never
# stopped or restarted: the suites use vhosts of their own on it).
bash scripts/rabbitmq.sh
# The same subset on kombu's filesystem transport (~3 min): 1 runs it.
RCELERY_CI_FILESYSTEM=${RCELERY_CI_FILESYSTEM:-0}

# The test builds skip link-time optimisation: a dozen test binaries each link the whole
# library with its SQL drivers, and thin LTO on each doubled the build. The scripts below
# reuse the same artifacts; benchmarks (benches/) build with Cargo.toml's profile.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-off}"
# Nor line tables (Cargo.toml keeps them for profiling the benchmarks): less to compile and link.
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}"

# Each phase says how long it took, so CI's time can be watched as the suites grow.
phase_started=$SECONDS
phase() {
    echo "== ($((SECONDS - phase_started)) s so far) $1"
}

phase "cargo test"
cargo test --workspace --release 2>&1
# The fuzz smoke run (its own build, then every decoder for 20 s) runs in the background
# while the compatibility suites, which mostly wait on workers and servers, use the time.
# Python's environment is made first, so that the two never install it at once.
bash scripts/setup-python.sh
phase "fuzz smoke run started in the background (every decoder, 20 s each)"
fuzz_log="$(mktemp)"
bash scripts/fuzz-smoke.sh >"$fuzz_log" 2>&1 &
fuzz_pid=$!
trap 'kill "$fuzz_pid" 2>/dev/null || true' EXIT
phase "compatibility tests (real Celery 5.7, real Redis)"
bash scripts/compat-tests.sh
# The compatibility suite on RabbitMQ against the rcelery worker: the every_broker subset
# (~3.5 min; the whole applicable suite would take ~6).
# The older line's run (golden and canvas tests: no database, Redis only) goes on beside it,
# on a redis-server of its own, as both mostly wait on workers.
phase "compatibility tests of the older line started in the background (golden and canvas tests, real Celery 5.5)"
old_line_log="$(mktemp)"
RCELERY_TEST_REDIS_PORT=6391 bash scripts/compat-tests-5.5.sh >"$old_line_log" 2>&1 &
old_line_pid=$!
trap 'kill "$fuzz_pid" "$old_line_pid" 2>/dev/null || true' EXIT
# The deployment test (Django, PostgreSQL, real celery beat; no RabbitMQ) goes on beside
# them too, on a redis-server of its own.
phase "the whole deployment as one test started in the background (Django, PostgreSQL, real celery beat)"
deploy_log="$(mktemp)"
RCELERY_TEST_REDIS_PORT=6392 bash scripts/deploy-tests.sh >"$deploy_log" 2>&1 &
deploy_pid=$!
trap 'kill "$fuzz_pid" "$old_line_pid" "$deploy_pid" 2>/dev/null || true' EXIT
phase "compatibility tests on RabbitMQ (rcelery worker, the every_broker subset)"
RCELERY_TEST_BROKER=amqp bash scripts/compat-tests.sh -m every_broker
if [ "$RCELERY_CI_FILESYSTEM" = "1" ]; then
    phase "compatibility tests on the filesystem transport (rcelery worker, the every_broker subset)"
    RCELERY_TEST_BROKER=filesystem bash scripts/compat-tests.sh -m every_broker
fi
phase "waiting for the older line's compatibility tests"
if ! wait "$old_line_pid"; then
    cat "$old_line_log"
    echo "FATAL: the compatibility tests of the older line (Celery 5.5) failed (output above)" >&2
    exit 1
fi
cat "$old_line_log"
phase "waiting for the deployment test"
if ! wait "$deploy_pid"; then
    cat "$deploy_log"
    echo "FATAL: the deployment test failed (output above)" >&2
    exit 1
fi
cat "$deploy_log"
phase "waiting for the fuzz smoke run"
if ! wait "$fuzz_pid"; then
    cat "$fuzz_log"
    echo "FATAL: the fuzz smoke run failed (its output is above)" >&2
    exit 1
fi
cat "$fuzz_log"
phase "fault tests (real redis-servers and a RabbitMQ node killed, restarted, paused and filled)"
bash scripts/fault-tests.sh
phase "all suites passed"
