"""Time limits and rate limits, as a Python producer and client see them (Celery 5.5.3:
`celery/worker/request.py` on_timeout, billiard's pool timers, kombu's TokenBucket).

What Celery stores, checked against a real Python worker (RCELERY_WORKER=python):
* uncaught soft limit: FAILURE {"exc_type": "SoftTimeLimitExceeded", "exc_message": [],
  "exc_module": "billiard.exceptions"} with a traceback;
* hard limit: FAILURE {"exc_type": "TimeLimitExceeded", "exc_message": [<limit as sent>],
  "exc_module": "billiard.exceptions"} and traceback null.
"""
import datetime
import json
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from helpers import raw_result, wait_drained, wait_for, wait_raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker

SOFT_META = {"exc_type": "SoftTimeLimitExceeded", "exc_message": [],
             "exc_module": "billiard.exceptions"}
SOFT_TB_END = "billiard.exceptions.SoftTimeLimitExceeded: SoftTimeLimitExceeded()\n"


def hard_meta(limit):
    return {"exc_type": "TimeLimitExceeded", "exc_message": [limit],
            "exc_module": "billiard.exceptions"}


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


def stored(backend, task_id, timeout=30.0):
    return json.loads(wait_raw_result(backend, task_id, timeout=timeout))


def done_at(meta):
    return datetime.datetime.fromisoformat(meta["date_done"])


def wait_log(worker, text, timeout=10.0):
    wait_for(lambda: text in worker.log(), timeout, f"worker log line {text!r}")


# -- soft limit ---------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["sleep", "block"])
def test_uncaught_soft_limit_fails_the_task(worker, backend, mq, t, task):
    """tasks.sleep is async in rcelery, tasks.block blocking: neither asks about its soft
    limit, so both end at it, as Celery's uncaught SoftTimeLimitExceeded ends them."""
    sent = time.monotonic()
    r = getattr(t, task).apply_async((10,), soft_time_limit=1)
    meta = stored(backend, r.id)
    assert time.monotonic() - sent < 8, "the task was not ended at its soft limit"
    assert meta["status"] == "FAILURE"
    assert meta["result"] == SOFT_META
    assert meta["traceback"].endswith(SOFT_TB_END)
    with pytest.raises(SoftTimeLimitExceeded) as info:
        r.get(timeout=5)
    assert info.value.args == ()
    wait_log(worker, f"Soft time limit (1s) exceeded for tasks.{task}[{r.id}]")
    wait_drained(mq)  # acks_late: acked after the failure was stored


@pytest.mark.parametrize("task", ["sleep_soft", "block_soft"])
def test_a_task_can_handle_its_soft_limit(worker, t, task):
    sent = time.monotonic()
    r = getattr(t, task).apply_async((10,), soft_time_limit=1, time_limit=5)
    assert r.get(timeout=30) == "soft"
    assert time.monotonic() - sent < 5


def test_without_reaching_the_limits_the_result_stands(worker, t):
    assert t.sleep.apply_async((0.2,), soft_time_limit=5, time_limit=10).get(timeout=30) == 0.2
    assert t.block.apply_async((0.2,), soft_time_limit=5, time_limit=10).get(timeout=30) == 0.2


def test_soft_limit_before_hard_limit(worker, backend, t):
    """Both limits: the soft one fires first; a blocking task that ignores it ends there."""
    caught = t.sleep_soft.apply_async((10,), soft_time_limit=1, time_limit=2)
    ignored = t.block.apply_async((10,), soft_time_limit=1, time_limit=2)
    assert caught.get(timeout=30) == "soft"
    meta = stored(backend, ignored.id)
    assert meta["status"] == "FAILURE" and meta["result"] == SOFT_META


# -- hard limit ---------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["sleep", "sleep_soft", "block", "block_soft"])
def test_hard_limit_fails_the_task(worker, backend, mq, t, task):
    sent = time.monotonic()
    r = getattr(t, task).apply_async((10,), time_limit=1)
    meta = stored(backend, r.id)
    assert time.monotonic() - sent < 8, "the task was not ended at its hard limit"
    assert meta["status"] == "FAILURE"
    assert meta["result"] == hard_meta(1)
    assert meta["traceback"] is None
    with pytest.raises(TimeLimitExceeded) as info:
        r.get(timeout=5)
    assert info.value.args == (1,)
    wait_log(worker, f"Hard time limit (1s) exceeded for tasks.{task}[{r.id}]")
    wait_drained(mq)  # acks_late: acked after the failure (acks_on_failure_or_timeout)


def test_hard_limit_is_stored_as_sent(worker, backend, t):
    r = t.sleep.apply_async((10,), time_limit=1.5)
    assert stored(backend, r.id)["result"] == hard_meta(1.5)


def test_after_a_hard_limit_in_every_slot_the_worker_goes_on(worker, t, kind):
    """Both slots (-c 2) end in a hard limit: both tasks fail at the limit, and the worker
    goes on. Celery kills and replaces the pool processes, so at once; rcelery abandons the
    blocking threads and hands their slots out again when they return, saying meanwhile that
    it is wedged (docs/compatibility.md)."""
    stuck = [t.block.apply_async((4,), time_limit=1) for _ in range(2)]
    for r in stuck:
        with pytest.raises(TimeLimitExceeded):
            r.get(timeout=30)
    assert t.add.delay(2, 3).get(timeout=30) == 5
    if kind == "rust":
        wedged = [line for line in worker.log().splitlines() if "worker wedged" in line]
        assert any(stuck[0].id in line and stuck[1].id in line for line in wedged), wedged


@pytest.mark.slow
def test_worker_time_limits_from_settings(workers, backend, t):
    workers.ensure({"task_time_limit": 2, "task_soft_time_limit": 1})
    r = t.sleep_soft.delay(10)
    assert r.get(timeout=30) == "soft"
    r = t.block_soft.delay(10)
    assert r.get(timeout=30) == "soft"
    # The message's own limits win over the worker's.
    assert t.sleep.apply_async((2.5,), time_limit=5, soft_time_limit=4).get(timeout=30) == 2.5
    # A task that handles its soft limit and then overruns meets the worker's hard limit.
    r = t.sleep.apply_async((10,), soft_time_limit=5)
    assert stored(backend, r.id)["result"] == hard_meta(2)


# -- rate limits --------------------------------------------------------------------------

def drain_times(backend, results):
    metas = [stored(backend, r.id) for r in results]
    assert all(m["status"] == "SUCCESS" for m in metas), metas
    return sorted(done_at(m) for m in metas)


def test_rate_limited_task_is_spaced_out(worker, backend, t):
    """tasks.limited has rate_limit="2/s": kombu's bucket (capacity 1) lets at most two pass
    at once after an idle period, then one every 0.5 s. Other tasks are not held up."""
    limited = [t.limited.delay(i) for i in range(6)]
    fast = [t.add.delay(i, i) for i in range(3)]
    times = drain_times(backend, limited)
    span = (times[-1] - times[0]).total_seconds()
    assert span >= 1.5, f"6 tasks at 2/s finished within {span:.2f}s"
    assert span < 10
    fast_done = drain_times(backend, fast)
    assert fast_done[-1] < times[-1], "add waited behind the rate limit"
    assert [r.get(timeout=5) for r in limited] == list(range(6))


@pytest.mark.slow
def test_waiting_for_a_rate_limit_keeps_the_message_unacked(workers, mq, backend, t):
    """Early ack happens when a task starts; a rate-limited request waiting for its token has
    not started, so its message stays delivered and unacknowledged."""
    workers.ensure({"task_acks_late": False})
    limited = [t.limited.delay(i) for i in range(6)]
    wait_for(lambda: raw_result(backend, limited[0].id), 10, "first limited task")
    time.sleep(0.3)
    assert mq.unacked() >= 2
    drain_times(backend, limited)
    wait_drained(mq)


@pytest.mark.slow
def test_worker_disable_rate_limits(workers, backend, t):
    workers.ensure({"worker_disable_rate_limits": True})
    times = drain_times(backend, [t.limited.delay(i) for i in range(6)])
    # At its 2/s limit the six would span at least 2 s (two at once, then one per 0.5 s).
    assert (times[-1] - times[0]).total_seconds() < 1.5


@pytest.mark.slow
def test_task_default_rate_limit(workers, backend, t):
    workers.ensure({"task_default_rate_limit": "4/s"})
    times = drain_times(backend, [t.add.delay(i, i) for i in range(6)])
    span = (times[-1] - times[0]).total_seconds()
    assert span >= 0.7, f"6 tasks at 4/s finished within {span:.2f}s"
