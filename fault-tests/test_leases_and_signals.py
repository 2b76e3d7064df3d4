"""Leases instead of duplicates, and Celery's signals: an ETA longer than the visibility
timeout runs once; a redelivered message the worker holds is not run twice; SIGHUP restarts
the worker in place without losing or repeating anything; a killed worker's messages still
come back."""
import os
import signal
import time

from conftest import ran_exactly_once, worker_config
from faultlib import nothing_left, send_many, wait_all_succeeded, wait_for


def test_eta_longer_than_the_visibility_timeout_runs_once(redis_factory, worker_factory, producer_factory):
    server = redis_factory()
    conf = worker_config(server.url(0), server.url(1), broker_transport_options={"visibility_timeout": 2})
    worker = worker_factory(conf)
    # A second worker on the same queue: its restores must not take the held messages either.
    other = worker_factory(conf, name="w2@%h")
    app = producer_factory(server.url(0), server.url(1))
    ids = send_many(app, "tasks.add", [(i, i) for i in range(50)], countdown=7)
    wait_for(lambda: server.client(0).hlen("unacked") == 50, 10, "the ETA messages to be held")
    time.sleep(4.5)  # two visibility timeouts: without renewal, every message would be restored
    assert server.client(0).llen("default") == 0, "held messages were given back while held"
    wait_all_succeeded(server.client(1), ids, 20)
    ran_exactly_once(ids, worker, other)
    wait_for(lambda: nothing_left(server.client(0)), 10, "unacked to empty")


def test_a_dead_workers_messages_still_come_back(redis_factory, worker_factory, producer_factory):
    server = redis_factory()
    conf = worker_config(server.url(0), server.url(1), broker_transport_options={"visibility_timeout": 2})
    dead = worker_factory(conf)
    app = producer_factory(server.url(0), server.url(1))
    ids = send_many(app, "tasks.add", [(i, i) for i in range(20)], countdown=30)
    wait_for(lambda: server.client(0).hlen("unacked") == 20, 10, "the ETA messages to be held")
    dead.kill()
    heir = worker_factory(conf, name="w2@%h")
    # Restored once their holds are older than the visibility timeout, they are fetched by
    # the heir and wait for their ETA there.
    wait_for(lambda: all(f"[{t}] received" in heir.log() for t in ids), 30,
             "the heir to receive the dead worker's messages")
    assert "restored" in heir.log()
    assert heir.alive()


def test_sighup_restarts_in_place(redis_factory, worker_factory, producer_factory):
    server = redis_factory()
    conf = worker_config(server.url(0), server.url(1), worker_concurrency=1, worker_prefetch_multiplier=50)
    worker = worker_factory(conf)
    pid = worker.proc.pid
    app = producer_factory(server.url(0), server.url(1))
    ids = send_many(app, "tasks.sleep", [(0.02,)] * 200)
    wait_for(lambda: server.client(0).hlen("unacked") >= 20, 10, "messages to be prefetched")
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: worker.log().count("ready.") >= 2, 30, "the worker to come back")
    assert worker.alive() and worker.proc.pid == pid, "SIGHUP must restart in place, same pid"
    assert "Restarting celery worker" in worker.log()
    wait_all_succeeded(server.client(1), ids, 60)
    wait_for(lambda: nothing_left(server.client(0)), 10, "unacked to empty")
    ran_exactly_once(ids, worker)


def test_kill9_soak(redis_factory, worker_factory, producer_factory):
    """kill -9 every 2 s (with acks_late) until 20,000 tasks have drained: none lost, nothing
    left in `unacked`. A killed worker's unacked messages run again (at least once)."""
    server = redis_factory()
    conf = worker_config(server.url(0), server.url(1), worker_concurrency=4,
                         broker_transport_options={"visibility_timeout": 3})
    app = producer_factory(server.url(0), server.url(1))
    ids = send_many(app, "tasks.sleep", [(0.001,)] * 20000)
    backend = server.client(1)
    kills = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        worker = worker_factory(conf)
        time.sleep(2.0)
        if server.client(0).llen("default") == 0 and server.client(0).hlen("unacked") == 0:
            break
        worker.kill()
        kills += 1
    wait_all_succeeded(backend, ids, 60)
    wait_for(lambda: nothing_left(server.client(0)), 30, "unacked to empty")
    assert kills >= 2, "the soak must kill the worker while it has work"
