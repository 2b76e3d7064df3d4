#!/usr/bin/env bash
# Make sure the machine's RabbitMQ answers on 127.0.0.1:5672 (guest/guest): when it does not,
# install rabbitmq-server from Debian's packages if it is missing, start it detached and wait
# (bounded) until it is up. Fails loudly when it cannot. A running RabbitMQ is never stopped
# or restarted: the suites only add and delete vhosts of their own on it.
set -euo pipefail

PORT="${RABBITMQ_NODE_PORT:-5672}"  # another port (and node) only to try this script out
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
fatal() { echo "FATAL: rabbitmq: $*" >&2; exit 1; }

if answers; then
    exit 0
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "rabbitmq: rabbitmq-server missing: installing it from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server) \
        >/dev/null || fatal "cannot install rabbitmq-server"
    # The package starts the service where a service manager runs; elsewhere we do.
    if answers; then
        exit 0
    fi
fi
echo "rabbitmq: nothing answers on 127.0.0.1:$PORT: starting rabbitmq-server" >&2
# Listen on the loopback only (where an earlier configuration does not say otherwise).
export RABBITMQ_NODE_IP_ADDRESS="${RABBITMQ_NODE_IP_ADDRESS:-127.0.0.1}"
rabbitmq-server -detached >/dev/null 2>&1 || fatal "rabbitmq-server -detached failed"
# The node's own readiness (bounded), then what the suites need: the port answering.
timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
for _ in $(seq 300); do
    answers && exit 0
    sleep 0.2
done
logs="${RABBITMQ_LOG_BASE:-/var/log/rabbitmq}"
tail -n 30 "$logs"/*.log >&2 2>/dev/null || true
fatal "started, but nothing answers on 127.0.0.1:$PORT (the log, if any, is above: $logs)"
