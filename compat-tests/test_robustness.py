"""Broker-level robustness: priorities, bad messages, crashes and warm shutdown."""
import base64
import bisect
import datetime
import json
import threading
import time
import uuid

import pytest

from conftest import RESULT_DB
from helpers import CELERY_57, QUEUE_KEYS, raw_result, wait_drained, wait_for, wait_raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


def get_or_death(result, worker, timeout=30.0):
    """result.get(), but fail at once (not after `timeout`) if the worker process dies."""
    value = wait_for(lambda: result.ready() or not worker.alive(), timeout, f"result {result.id}")
    assert worker.alive(), f"worker died (exit code {worker.proc.poll()})"
    assert value
    return result.get(timeout=5)


# -- priorities ---------------------------------------------------------------------------

def redis_priority_step(priority):
    """kombu's Redis sub-queue step for a priority (steps 0, 3, 6, 9; 0 is served first)."""
    steps = [0, 3, 6, 9]
    return steps[bisect.bisect(steps, min(priority, 9)) - 1]


# Expects kombu's Redis order: priority sub-queues in steps, 0 served first (RabbitMQ serves
# the highest number first, the filesystem transport has no priorities).
@pytest.mark.broker("redis")
def test_priorities_on_max_priority_queue(app, workers, broker, backend, t):
    """Queue filled with no worker running; one slot, prefetch 1: order follows priority."""
    workers.stop()
    prios = [9, 0, 6, 3, 10, 5, 1, 8, 2, 7, 4, 0, 9, 3, 6]
    ids = [t.echo.apply_async((i, p), priority=p, serializer="json").id
           for i, p in enumerate(prios)]
    assert sum(broker.llen(k) for k in QUEUE_KEYS) == len(prios)
    workers.start({"worker_concurrency": 1, "worker_prefetch_multiplier": 1})
    done = {tid: json.loads(wait_raw_result(backend, tid))["date_done"] for tid in ids}
    ran = sorted(range(len(ids)), key=lambda i: datetime.datetime.fromisoformat(done[ids[i]]))
    expected = sorted(range(len(prios)), key=lambda i: (redis_priority_step(prios[i]), i))
    assert [prios[i] for i in ran] == [prios[i] for i in expected]
    assert ran == expected


# -- messages that must be dropped ------------------------------------------------------------

def _envelope(body, headers, content_type="application/json", body_encoding="base64"):
    return json.dumps({
        "body": body, "content-encoding": "utf-8", "content-type": content_type,
        "headers": headers,
        "properties": {"correlation_id": "c-1", "reply_to": "", "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": "default"},
                       "priority": 0, "body_encoding": body_encoding,
                       "delivery_tag": str(uuid.uuid4())}})


def _b64(data):
    return base64.b64encode(data).decode()


# Celery itself dies ("Unrecoverable error", exit) on these; rcelery must not. "5.5": only
# the 5.5 line dies (5.7 survives a JSON object that is not an envelope).
PY_CRASHES = "Celery's worker raises out of the Redis transport and exits on this input"
GARBAGE = [
    ("invalid-json", b"this is {not json", True),
    ("json-object-not-envelope", b'{"foo": 1}', "5.5"),
    ("json-array", b"[1, 2, 3]", True),
    ("undecodable-base64-body",
     _envelope("!!!not*base64", {"task": "tasks.add", "id": "garbage-b64"}).encode(), True),
    ("body-not-json", _envelope(_b64(b"garbage{"), {"task": "tasks.add", "id": "garbage-json"})
     .encode(), False),
    ("body-not-pickle", _envelope(_b64(b"\x80\x04garbage"),
                                  {"task": "tasks.add", "id": "garbage-pickle"},
                                  content_type="application/x-python-serialize").encode(), False),
    ("no-task-anywhere", _envelope(_b64(b'{"x": 1}'), {}).encode(), False),
]


# Raw bytes pushed onto the Redis list: garbage in kombu's Redis envelope layer.
@pytest.mark.broker("redis")
@pytest.mark.parametrize("raw, python_crashes", [g[1:] for g in GARBAGE],
                         ids=[g[0] for g in GARBAGE])
def test_garbage_is_dropped_and_worker_continues(request, app, workers, broker, mq, backend, kind, t,
                                                 raw, python_crashes):
    if python_crashes == "5.5":
        python_crashes = not CELERY_57
    if kind == "python" and python_crashes:
        request.applymarker(pytest.mark.xfail(strict=True, reason=PY_CRASHES))
    worker = workers.ensure({})
    broker.lpush("default", raw)
    r = t.add.apply_async((1, 2), serializer="json")
    assert get_or_death(r, worker) == 3
    wait_drained(mq)
    assert worker.alive()
    assert backend.keys("celery-task-meta-garbage*") == []


def test_pickle_rejected_by_json_only_worker(app, workers, mq, backend, t):
    worker = workers.ensure({"accept_content": ["json"]})
    bad = t.add.apply_async((1, 1), serializer="pickle")
    good = t.add.apply_async((2, 2), serializer="json")
    assert get_or_death(good, worker) == 4
    wait_drained(mq)
    assert raw_result(backend, bad.id) is None
    assert worker.alive()


# -- crashes and shutdown -----------------------------------------------------------------

# kombu's Redis `unacked` hash and visibility timeout (RabbitMQ redelivers on the
# connection's close instead).
@pytest.mark.broker("redis")
@pytest.mark.slow
def test_kill9_during_acks_late_task_then_short_visibility_timeout(app, workers, broker, mq, t):
    workers.ensure({})
    r = t.sleep.apply_async((3,), serializer="json")
    wait_for(lambda: broker.hlen("unacked") == 1 and broker.llen("default") == 0, 30,
             "the task to be delivered")
    time.sleep(0.5)
    workers.kill()
    assert not r.ready()
    assert broker.hlen("unacked") == 1, "acks_late message must stay unacked after kill -9"
    (_, delivered_at), = broker.zrange("unacked_index", 0, -1, withscores=True)
    wait_for(lambda: time.time() > delivered_at + 3, 10, "the visibility timeout to pass")
    worker = workers.start({"broker_transport_options": {"visibility_timeout": 2}})
    assert get_or_death(r, worker, 60) == 3
    wait_drained(mq)


class SuccessCounter(threading.Thread):
    """Counts SUCCESS publications per task id on `celery-task-meta-*` and deletes the key.

    Deleting the key defeats the backend's "never overwrite SUCCESS" guard, so a second
    execution of the same task id shows up as a second publication.
    """

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("celery-task-meta-*")
        self.counts = {}
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "pmessage":
                meta = json.loads(msg["data"])
                if meta["status"] == "SUCCESS":
                    self.counts[meta["task_id"]] = self.counts.get(meta["task_id"], 0) + 1
                    self.client.delete(msg["channel"])

    def distinct(self):
        return len(self.counts)

    def stop(self):
        self.halt.set()
        self.join(5)
        self.pubsub.close()


@pytest.mark.slow
def test_sigterm_with_1000_tasks_then_restart(app, workers, redis_server, mq, t):
    n = 1000
    workers.stop()
    counter = SuccessCounter(redis_server.client(RESULT_DB))
    counter.start()
    try:
        with app.producer_or_acquire() as producer:
            ids = [t.sleep.apply_async((0.01,), producer=producer).id for _ in range(n)]
        workers.start({})
        wait_for(lambda: counter.distinct() >= 100, 60, "100 tasks to finish")
        assert workers.stop() == 0, "warm shutdown must exit 0"
        assert mq.unacked() == 0, "prefetched messages must be given back"
        wait_for(lambda: counter.distinct() + mq.ready() == n, 10,
                 "finished + queued to account for every task")
        workers.start({})
        wait_for(lambda: counter.distinct() == n, 120, "all tasks to finish")
        wait_drained(mq)
        time.sleep(1.0)  # a late duplicate would publish now
    finally:
        counter.stop()
    assert set(counter.counts) == set(ids)
    assert {tid: c for tid, c in counter.counts.items() if c != 1} == {}
