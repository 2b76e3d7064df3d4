"""The database result backend (`db+postgresql://`) under faults: refused credentials are a
clear start-up error with the password masked, and a PostgreSQL server that crashes and comes
back while tasks run loses no result (stores are retried until they land, and with
`acks_late` no message is acked before its result is stored)."""
import subprocess
import time

import pytest

from conftest import ran_exactly_once, worker_config
from faultlib import Sender, nothing_left, wait_for
from servers import PrivatePostgres


@pytest.fixture
def postgres():
    server = PrivatePostgres().start()
    server.connect().cursor().execute("CREATE DATABASE results")
    yield server
    server.stop()


def stored(server, ids):
    """How many of `ids` have a SUCCESS row."""
    conn = server.connect("results")
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"
                    " AND task_id = ANY(%s)", (list(ids),))
        return cur.fetchone()[0]
    finally:
        conn.close()


def stored_rows(server):
    """How many rows `celery_taskmeta` has (0 before the table exists)."""
    conn = server.connect("results")
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'celery_taskmeta'")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT COUNT(*) FROM celery_taskmeta")
        return cur.fetchone()[0]
    finally:
        conn.close()


def test_refused_credentials_are_a_clear_startup_error(redis_factory, worker_factory, postgres):
    broker = redis_factory()
    url = "db+" + postgres.url("results", user="nosuchuser", password="S3cretPw0rd")
    worker = worker_factory(worker_config(broker.url(0), url), wait_ready=False)
    wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    log = worker.log()
    assert worker.proc.returncode != 0
    assert "cannot use result backend" in log and "nosuchuser" in log, log
    assert "S3cretPw0rd" not in log


def test_a_missing_database_is_a_clear_startup_error(redis_factory, worker_factory, postgres):
    broker = redis_factory()
    url = "db+" + postgres.url("no_such_db", password="S3cretPw0rd")
    worker = worker_factory(worker_config(broker.url(0), url), wait_ready=False)
    wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    log = worker.log()
    assert "no_such_db" in log and "S3cretPw0rd" not in log, log


@pytest.mark.parametrize("acks_late", [True, False], ids=["acks_late", "early_ack"])
def test_postgres_crash_loses_no_result(redis_factory, worker_factory, producer_factory,
                                        postgres, acks_late):
    broker = redis_factory()
    url = "db+" + postgres.url("results")
    worker = worker_factory(worker_config(broker.url(0), url, task_acks_late=acks_late))
    # The producer needs no result backend here (the rows are read with SQL below).
    app = producer_factory(broker.url(0), broker.url(1))
    sender = Sender(app, "tasks.add", 600, rate=300)
    sender.start()
    wait_for(lambda: stored_rows(postgres) >= 50, 30, "the first results stored")
    postgres.crash()
    # Longer than a connection attempt waits (broker_connection_timeout, 4 s): the stores
    # fail and are retried, not merely slow.
    time.sleep(6.0)
    if acks_late:
        # Nothing is acked while results cannot be stored: the messages are held.
        assert broker.client().hlen("unacked") > 0
    postgres.start()
    ids = sender.finish(60)
    wait_for(lambda: stored(postgres, ids) == len(set(ids)), 60, "every result stored")
    wait_for(lambda: nothing_left(broker.client()), 30, "unacked to empty")
    ran_exactly_once(ids, worker, republished=sender.retried)
    log = worker.log()
    assert "could not store task result" not in log
    assert "unreachable; retrying" in log and "reachable again" in log
