#!/usr/bin/env bash
# Makes sure the PostgreSQL and MariaDB servers the database result backend tests use are up
# (the machine's own, on 127.0.0.1:5432 and :3306): starts whichever is down and fails loudly
# when one cannot be had. Tests never skip for a missing database.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
mysql_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; }

start() {
    local name="$1"
    if command -v service >/dev/null 2>&1; then
        service "$name" start >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1; then
        systemctl start "$name" >/dev/null 2>&1 || true
    fi
}

wait_up() {
    local what="$1" check="$2"
    for _ in $(seq 1 60); do
        "$check" && return 0
        sleep 0.5
    done
    echo "ensure-databases: $what is not reachable and could not be started" >&2
    exit 1
}

if ! pg_up; then
    echo "ensure-databases: starting PostgreSQL" >&2
    start postgresql
    wait_up "PostgreSQL on 127.0.0.1:5432" pg_up
fi
if ! mysql_up; then
    echo "ensure-databases: starting MariaDB" >&2
    start mariadb
    start mysql
    wait_up "MariaDB on 127.0.0.1:3306" mysql_up
fi
