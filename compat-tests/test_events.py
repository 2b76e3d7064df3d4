"""Monitoring events as Celery 5.7's worker sends them, read by Celery's own EventReceiver
(what `celery events` and Flower use): every type's exact fields, the task-event switch
(`worker_send_task_events`, `-E`), and worker events sent with or without it.

Passes against the Python worker (RCELERY_WORKER=python) and rcelery.
"""
import datetime
import uuid

import pytest

from events_helpers import EventLog, check_fields

# Events need a broadcast exchange: Redis (Pub/Sub) and RabbitMQ; kombu's filesystem
# transport has none.
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]


@pytest.fixture
def events(app):
    log = EventLog(app).start()
    yield log
    log.close()


def test_task_and_worker_events_have_celerys_fields(workers, app, events):
    import tasks.task as t
    worker = workers.start({"worker_send_task_events": True})
    online = events.wait("worker-online")
    check_fields(online)
    assert online["hostname"].startswith("w1@")
    assert online["freq"] == 2.0
    assert online["sw_ident"] in ("py-celery", "rcelery")
    assert len(online["loadavg"]) == 3

    ok = t.add.apply_async((2, 3), serializer="json")
    failed = t.fail.apply_async(("boom",), serializer="json")
    retried = t.flaky.apply_async((1,), serializer="json")
    rejected = t.reject.apply_async(("no",), serializer="json")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    expired = t.add.apply_async((1, 1), serializer="json", expires=past)
    assert ok.get(timeout=30) == 5

    received = events.wait("task-received", ok.id)
    check_fields(received)
    assert (received["name"], received["args"], received["kwargs"]) == ("tasks.add", "(2, 3)", "{}")
    assert (received["retries"], received["eta"], received["expires"]) == (0, None, None)
    assert received["root_id"] == ok.id and received["parent_id"] is None
    check_fields(events.wait("task-started", ok.id))
    succeeded = events.wait("task-succeeded", ok.id)
    check_fields(succeeded)
    assert succeeded["result"] == "5"
    assert isinstance(succeeded["runtime"], float) and succeeded["runtime"] >= 0

    fail = events.wait("task-failed", failed.id)
    check_fields(fail)
    assert fail["exception"].startswith("ValueError(") and "boom" in fail["exception"]
    assert "ValueError" in fail["traceback"]

    retry = events.wait("task-retried", retried.id)
    check_fields(retry)
    assert "ValueError" in retry["exception"]
    assert events.wait("task-succeeded", retried.id)["result"] == "1"

    reject = events.wait("task-rejected", rejected.id)
    check_fields(reject)
    assert reject["requeue"] is False

    revoked = events.wait("task-revoked", expired.id)
    check_fields(revoked)
    assert (revoked["expired"], revoked["terminated"], revoked["signum"]) == (True, False, None)

    beat = events.wait("worker-heartbeat", timeout=10)
    check_fields(beat)
    assert beat["processed"] >= 0 and beat["active"] >= 0

    assert worker.stop() == 0
    check_fields(events.wait("worker-offline"))
    # One Lamport clock per worker: it moves forward with each event sent.
    mine = [e for e in events.events if e["hostname"] == online["hostname"]]
    assert all(isinstance(e["clock"], int) for e in mine)


def test_without_task_events_only_worker_events_are_sent(workers, app, events):
    import tasks.task as t
    workers.start({"worker_send_task_events": False})
    events.wait("worker-online")
    r = t.add.apply_async((1, 2), serializer="json")
    assert r.get(timeout=30) == 3
    events.wait("worker-heartbeat", timeout=10)
    assert not [e for e in events.events if e["type"].startswith("task-")]


def test_task_sent_for_what_the_worker_publishes(workers, app, events):
    """`task_send_sent_event`: the worker's own publishes (here a retry) send `task-sent`."""
    import tasks.task as t
    workers.start({"task_send_sent_event": True})
    events.wait("worker-online")
    r = t.flaky.apply_async((1,), serializer="json")
    assert r.get(timeout=30) == 1
    sent = events.wait("task-sent", r.id)
    check_fields(sent)
    assert (sent["name"], sent["retries"]) == ("tasks.flaky", 1)
    assert sent["args"] == "(1,)"
