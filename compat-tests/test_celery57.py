"""Worker behaviour that changed in Celery 5.6/5.7, checked against the real Celery installed
(RCELERY_WORKER=python) and rcelery, which follows 5.7. Where the installed Celery is of the
older line (5.5), the Python worker's expected behaviour is 5.5's.

Read from Celery 5.7.0's source: `celery/worker/request.py` (`Request.__init__` ignore_result,
`on_failure` for `Reject`, `on_timeout`), `celery/app/task.py` (`get_actual_ignore_result`),
`celery/worker/control.py` (`revoke` storing REVOKED).
"""
import json
import uuid

import pytest

from helpers import CELERY_57, raw_result, wait_drained, wait_raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


def stored(backend, task_id, timeout=30.0):
    return json.loads(wait_raw_result(backend, task_id, timeout=timeout))


def new_behaviour(kind):
    """rcelery follows 5.7 whichever Celery its peers run; a Python worker its own version."""
    return kind == "rust" or CELERY_57


def settle(app, mq):
    """Let every message already sent be handled (a marker task after them, then empty queues)."""
    assert app.tasks["tasks.add"].apply_async((1, 1), serializer="json").get(timeout=30) == 2
    wait_drained(mq)


def test_a_message_ignore_result_true_overrides_the_task(worker, app, mq, backend, t):
    r = t.add.apply_async((2, 3), ignore_result=True)
    settle(app, mq)
    assert raw_result(backend, r.id) is None


def test_a_message_ignore_result_false_overrides_the_task(worker, kind, app, mq, backend, t):
    """`tasks.noop` has `ignore_result=True`; the message's explicit False wins in 5.6+."""
    r = t.noop.apply_async((1,), ignore_result=False)
    settle(app, mq)
    if new_behaviour(kind):
        meta = stored(backend, r.id)
        assert (meta["status"], meta["result"]) == ("SUCCESS", None)
    else:
        assert raw_result(backend, r.id) is None


def test_a_null_ignore_result_header_leaves_it_to_the_task(worker, app, mq, backend):
    """`send_task` sends `ignore_result: null` in 5.7: the task's own setting decides."""
    ignored = app.send_task("tasks.noop", args=(1,), queue="default")
    kept = app.send_task("tasks.add", args=(1, 2), queue="default")
    assert kept.get(timeout=30) == 3
    settle(app, mq)
    assert raw_result(backend, ignored.id) is None


def test_reject_without_requeue_stores_failure_and_runs_errbacks(worker, kind, app, mq,
                                                                 backend, t):
    errback_id = str(uuid.uuid4())
    r = t.reject.apply_async(("nope",), link_error=t.limited.s().set(task_id=errback_id))
    settle(app, mq)
    if new_behaviour(kind):
        meta = stored(backend, r.id)
        assert meta["status"] == "FAILURE"
        assert meta["result"] == {"exc_type": "Reject", "exc_message": ["nope", False],
                                  "exc_module": "celery.exceptions"}
        assert meta["traceback"] is None
        assert stored(backend, errback_id)["result"] == r.id
    else:
        assert raw_result(backend, r.id) is None
    wait_drained(mq)  # rejected: gone from the queue and from `unacked`


def test_a_hard_time_limit_runs_the_errbacks(worker, backend, t):
    errback_id = str(uuid.uuid4())
    r = t.sleep.apply_async((5,), time_limit=1, link_error=t.limited.s().set(task_id=errback_id))
    meta = stored(backend, r.id)
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "TimeLimitExceeded"
    assert stored(backend, errback_id)["result"] == r.id


@pytest.mark.broker("redis", "amqp")  # the filesystem transport has no broadcast
def test_revoke_stores_revoked(worker, kind, app, mq, backend, t):
    """5.6+: a worker receiving `revoke` for a task it does not run marks it REVOKED
    (5.5 only remembered the id and discarded the task when it came)."""
    if kind != "rust" and not CELERY_57:
        pytest.fail("5.5 stores nothing at revoke time: this test is for 5.6+ only "
                    "(the 5.5 run does not include this file)")
    task_id = str(uuid.uuid4())
    app.control.revoke(task_id)
    meta = stored(backend, task_id, timeout=10)
    assert meta["status"] == "REVOKED"
    # The task then arrives: it is discarded, the state stays REVOKED.
    t.add.apply_async((1, 2), task_id=task_id)
    settle(app, mq)
    assert stored(backend, task_id)["status"] == "REVOKED"
