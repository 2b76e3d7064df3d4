"""Side-by-side migration: a Python worker and rcelery on one broker.

These tests always run both kinds, whatever RCELERY_WORKER says: rcelery (the binary) and
the real Python Celery worker.
"""
import pytest
from celery import chain, chord

from harness import Worker, effective_config
from helpers import wait_drained, wait_for

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


@pytest.fixture
def pair(app, workers, tmp_path):
    """Starts the given (kind, queues, overrides) workers; stops them after the test."""
    workers.stop()
    started = []

    def start(kind, queues, name, overrides=None):
        w = Worker(effective_config(app, overrides or {}), tmp_path / name, kind=kind,
                   name=f"{name}@%h", queues=queues)
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def test_unknown_tasks_are_forwarded_to_the_python_worker(pair, t, backend):
    pair("rust", "default", "rc", {"rcelery_forward_unknown_tasks": "python"})
    pair("python", "python", "py")
    assert t.py_only.delay(7).get(timeout=30) == "python:7"
    assert t.add.delay(2, 3).get(timeout=30) == 5


def test_a_chain_crosses_from_rcelery_to_python(pair, t):
    pair("rust", "default", "rc", {"rcelery_forward_unknown_tasks": "python"})
    pair("python", "python", "py")
    assert chain(t.add.s(1, 2), t.py_only.s()).delay().get(timeout=30) == "python:3"


def test_without_forwarding_unknown_tasks_fail_not_registered(pair, t):
    pair("rust", "default", "rc")
    with pytest.raises(Exception) as info:
        t.py_only.delay(1).get(timeout=30)
    assert type(info.value).__name__ == "NotRegistered"


# Not on the filesystem transport: kombu's consumer moves a message file away and reads it
# without the lock kombu's producer holds while it writes (kombu/transport/filesystem.py,
# `_get`), so a Python worker consuming while this process publishes hundreds of messages
# can read an empty file and die on it ("Unrecoverable error"): a kombu race between two
# Python sides, not rcelery's (rcelery writes a whole file and renames it into place).
KOMBU_FS_RACE = pytest.mark.broker("redis", "amqp")


@KOMBU_FS_RACE
def test_python_and_rcelery_share_one_queue(pair, t, backend, mq):
    rc = pair("rust", "default", "rc", {"result_extended": True})
    py = pair("python", "default", "py", {"result_extended": True})
    results = [t.add.delay(i, i) for i in range(300)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(300)]
    workers_seen = {r.backend.get_task_meta(r.id)["worker"].split("@")[0] for r in results}
    assert workers_seen == {"rc", "py"}, f"only {workers_seen} took work"
    # Every task ran exactly once, on one of the two, and nothing is left unacked.
    wait_drained(mq)

    def runs():
        logs = rc.log() + py.log()
        return {r.id: logs.count(f"tasks.add[{r.id}] succeeded") for r in results}
    # rcelery writes its log in 50 ms batches: wait for every line before counting.
    wait_for(lambda: all(runs().values()), 10, "a succeeded line for every task")
    assert [i for i, n in runs().items() if n != 1] == []


@KOMBU_FS_RACE
def test_a_chord_split_between_python_and_rcelery_fires_once(pair, t):
    rc = pair("rust", "default", "rc", {"result_extended": True})
    py = pair("python", "default", "py", {"result_extended": True})
    header = [t.add.s(i, i) for i in range(200)]
    r = chord(header, t.xsum.s()).delay()
    assert r.get(timeout=60) == 2 * sum(range(200))
    runners = {t.add.AsyncResult(p.id).backend.get_task_meta(p.id)["worker"].split("@")[0]
               for p in r.parent.results}
    assert runners == {"rc", "py"}, f"only {runners} ran header parts"

    def body_runs():
        return sum(w.log().count(f"tasks.xsum[{r.id}] succeeded") for w in (rc, py))
    # rcelery writes its log in 50 ms batches: wait for the line before counting.
    wait_for(lambda: body_runs() >= 1, 10, "the body's succeeded line")
    assert body_runs() == 1
