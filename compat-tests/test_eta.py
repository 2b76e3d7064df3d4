"""ETA and countdown: held without blocking other work, timezone-correct, never lost or
duplicated across a shutdown and restart."""
import datetime
import json
import time

import pytest

from conftest import RESULT_DB
from helpers import wait_drained, wait_for, wait_raw_result
from test_robustness import SuccessCounter

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker


def _t():
    import tasks.task as tasks
    return tasks


def test_eta_in_another_timezone_runs_on_time(worker, backend):
    t = _t()
    minus5 = datetime.timezone(datetime.timedelta(hours=-5))
    eta = datetime.datetime.now(minus5) + datetime.timedelta(seconds=2)
    r = t.add.apply_async((1, 2), eta=eta)
    quick = t.add.delay(3, 4)
    assert quick.get(timeout=30) == 7, "a held ETA task must not block others"
    assert r.get(timeout=30) == 3
    done = datetime.datetime.fromisoformat(json.loads(wait_raw_result(backend, r.id))["date_done"])
    assert done >= eta


def test_eta_tasks_survive_a_restart_exactly_once(app, workers, redis_server, mq):
    t = _t()
    n = 30
    # The worker must be seen holding all n before the ETA comes; asking RabbitMQ for its
    # unacknowledged count (rabbitmqctl) takes a second or more, so the ETA is later there.
    countdown = 12 if mq.kind == "amqp" else 4
    workers.stop()
    counter = SuccessCounter(redis_server.client(RESULT_DB))
    counter.start()
    try:
        workers.start({})
        ids = [t.add.apply_async((i, i), countdown=countdown).id for i in range(n)]
        wait_for(lambda: mq.ready() == 0 and mq.unacked() == n, 30,
                 "the worker to hold every ETA message")
        assert workers.stop() == 0
        assert counter.distinct() == 0, "nothing may run before its ETA"
        # (RabbitMQ requeues them as it sees the connection close: a moment after the exit.)
        wait_for(lambda: mq.unacked() == 0 and mq.ready() == n, 10,
                 "held ETA messages to go back to the queue at shutdown")
        workers.start({})
        wait_for(lambda: counter.distinct() == n, 60, "every ETA task to run")
        wait_drained(mq)
        time.sleep(1.0)
    finally:
        counter.stop()
    assert set(counter.counts) == set(ids)
    assert {tid: c for tid, c in counter.counts.items() if c != 1} == {}
