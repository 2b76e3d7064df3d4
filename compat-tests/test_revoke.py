"""Revoking tasks: a held ETA task revoked never runs, `terminate=True` ends a running task,
and `--statedb` keeps revoked ids across a restart. Each ends REVOKED in the backend, read by
a Python client as `AsyncResult.state`.

Read from Celery 5.7.0's source: `celery/worker/control.py` (`revoke`, `_revoke`),
`celery/worker/request.py` (`revoked`, `terminate`, `_announce_revoked`),
`celery/worker/state.py` (`revoked`, `Persistent`).
"""
import json
import uuid

import pytest
from celery.exceptions import TaskRevokedError

from helpers import wait_drained, wait_for, wait_raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`);
# Redis and RabbitMQ only: the filesystem transport has no broadcast (remote control).
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]

@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


def stored(backend, task_id, timeout=30.0):
    return json.loads(wait_raw_result(backend, task_id, timeout=timeout))


def test_a_held_eta_task_revoked_never_runs(worker, app, mq, backend, t):
    countdown = 12 if mq.kind == "amqp" else 3
    r = t.add.apply_async((1, 2), countdown=countdown)
    wait_for(lambda: mq.ready() == 0 and mq.unacked() == 1, 30, "the worker to hold the ETA task")
    app.control.revoke(r.id)
    wait_for(lambda: r.state == "REVOKED", 10, "the task to read REVOKED")
    # Discarded and acked (at once, or when its ETA comes), never run.
    wait_drained(mq, timeout=countdown + 30)
    meta = stored(backend, r.id)
    assert meta["status"] == "REVOKED"
    assert meta["result"]["exc_type"] == "TaskRevokedError"


def test_terminate_ends_a_running_task(worker, app, mq, t):
    r = t.sleep.delay(60)
    wait_for(lambda: mq.ready() == 0 and mq.unacked() == 1, 30, "the worker to take the task")
    r.revoke(terminate=True, signal="SIGKILL")
    with pytest.raises(TaskRevokedError):
        r.get(timeout=30)
    assert r.state == "REVOKED"
    wait_drained(mq)


def test_revoke_by_stamped_headers_discards_a_stamped_task(worker, app, mq, t):
    stamp = str(uuid.uuid4())
    replies = app.control.revoke_by_stamped_headers({"mystamp": stamp}, reply=True, limit=1,
                                                    timeout=10)
    assert [list(r.values())[0] for r in replies] == [
        {"ok": f"headers {{'mystamp': '{stamp}'}} flagged as revoked, but not terminated"}]
    r = t.add.apply_async((1, 2), stamped_headers=["mystamp"], mystamp=stamp)
    wait_for(lambda: r.state == "REVOKED", 15, "the stamped task to read REVOKED")
    assert t.add.delay(2, 2).get(timeout=30) == 4, "an unstamped task still runs"
    wait_drained(mq)


def test_statedb_keeps_revoked_ids_across_a_restart(workers, app, mq, backend, t, tmp_path):
    statedb = str(tmp_path / "worker.state")
    workers.start({}, extra_args=["--statedb", statedb])
    task_id = "revoked-before-restart"
    app.control.revoke(task_id)
    # 5.6+: the worker marks it REVOKED when the revoke reaches it.
    assert stored(backend, task_id, timeout=10)["status"] == "REVOKED"
    assert workers.stop() == 0
    backend.delete(f"celery-task-meta-{task_id}")
    workers.start({}, extra_args=["--statedb", statedb])
    t.add.apply_async((1, 2), task_id=task_id)
    assert stored(backend, task_id)["status"] == "REVOKED"
    wait_drained(mq)
    workers.stop()
