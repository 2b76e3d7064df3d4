"""The result backend's connection heals and no result is dropped: a backend on its own Redis
goes away while tasks run, with `acks_late` (messages stay unacked until their result is
stored) and with early ack (results wait in the bounded buffer), and a backend whose server
closes idle connections (`timeout`)."""
import time

import pytest

from conftest import ran_exactly_once, worker_config
from faultlib import Sender, nothing_left, send_many, wait_all_succeeded, wait_for


@pytest.mark.parametrize("acks_late", [True, False], ids=["acks_late", "early_ack"])
def test_backend_restart_loses_no_result(redis_factory, worker_factory, producer_factory, acks_late):
    broker = redis_factory()
    results = redis_factory(aof=True)
    worker = worker_factory(worker_config(broker.url(0), results.url(0), task_acks_late=acks_late))
    # The producer's own result consumer lives on the broker's server: Celery's Redis backend
    # subscribes to each result as it sends, and would stop the sender while `results` is down.
    app = producer_factory(broker.url(0), broker.url(1))
    sender = Sender(app, "tasks.add", 800, rate=400)
    sender.start()
    time.sleep(0.7)
    results.kill()
    time.sleep(2.5)
    if acks_late:
        # Nothing is acked while results cannot be stored: the messages are held.
        assert broker.client().hlen("unacked") > 0
    results.start()
    ids = sender.finish(60)
    wait_all_succeeded(results.client(), ids, 30)
    wait_for(lambda: nothing_left(broker.client()), 30, "unacked to empty")
    ran_exactly_once(ids, worker, republished=sender.retried)
    log = worker.log()
    assert "could not store task result" not in log
    assert log.count("result backend redis://127.0.0.1") >= 1 and "connection restored" in log


def test_backend_that_closes_idle_connections(redis_factory, worker_factory, producer_factory):
    """Redis `timeout 1` drops the worker's idle backend connection; the next results are
    stored anyway (the link notices on use and reconnects)."""
    broker = redis_factory()
    results = redis_factory(extra=["--timeout", "1"])
    worker = worker_factory(worker_config(broker.url(0), results.url(0)))
    app = producer_factory(broker.url(0), results.url(0))
    first = send_many(app, "tasks.add", [(1, 1)] * 20)
    wait_all_succeeded(results.client(), first, 15)
    time.sleep(3.0)
    second = send_many(app, "tasks.add", [(2, 2)] * 20)
    wait_all_succeeded(results.client(), second, 15)
    assert "could not store task result" not in worker.log()
