"""Remote control ("pidbox", issue 13): real Python clients (`app.control.inspect(...)`,
`app.control.*` and the `celery` command line) asking the worker under test, on every broker.
The same tests pass against a Python Celery worker (RCELERY_WORKER=python), which proves them.

Read from kombu 5.7's `pidbox.py` and Celery 5.7's `app/control.py` and `worker/control.py`.
"""
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness import Worker, effective_config

from helpers import eventually, reply_of

# Redis and RabbitMQ here; broadcast over the filesystem transport is tested in
# test_filesystem.py.
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]

FIXTURES = Path(__file__).resolve().parent.parent / "python-fixtures"
NODE = "w1@" + socket.gethostname()


def one(replies):
    """The reply of the worker under test."""
    return reply_of(NODE, replies)


def inspect(app, timeout=5.0):
    return app.control.inspect(destination=[NODE], timeout=timeout)


def test_ping_by_destination(worker, app):
    assert eventually(lambda: inspect(app).ping()) == {NODE: {"ok": "pong"}}
    assert one(app.control.ping(destination=[NODE], timeout=5.0)) == {"ok": "pong"}
    # Another node's name: nobody answers.
    assert not app.control.ping(destination=["nobody@nowhere"], timeout=0.5)


def test_pattern_and_broadcast(worker, app):
    eventually(lambda: inspect(app).ping())
    assert one(app.control.broadcast("ping", reply=True, timeout=1.5, pattern="w1@*",
                                     matcher="glob")) == {"ok": "pong"}
    assert not app.control.broadcast("ping", reply=True, timeout=0.5, pattern="x*",
                                     matcher="glob")
    assert one(app.control.ping(timeout=1.5)) == {"ok": "pong"}


def test_stats(worker, app):
    assert app.tasks["tasks.add"].delay(2, 3).get(timeout=30) == 5
    stats = one(eventually(lambda: inspect(app).stats()))
    assert stats["total"].get("tasks.add", 0) >= 1
    assert stats["pool"]["max-concurrency"] == 2
    assert isinstance(stats["pid"], int) and isinstance(stats["uptime"], int)
    assert int(stats["clock"]) > 0
    assert stats["prefetch_count"] >= 2
    broker = stats["broker"]
    assert "password" not in broker
    assert broker["transport"] in ("redis", "amqp", "pyamqp")
    assert isinstance(stats["rusage"], dict)


def test_registered_conf_active_queues_clock(worker, app):
    registered = one(eventually(lambda: inspect(app).registered()))
    assert "tasks.add" in registered
    assert "tasks.limited [rate_limit=2/s]" in registered
    assert not any(name.startswith("celery.") for name in registered)
    conf = one(inspect(app).conf())
    assert isinstance(conf, dict)
    assert "password" not in str(conf).lower() or "********" in str(conf)
    queues = one(inspect(app).active_queues())
    assert [q["name"] for q in queues] == ["default"]
    assert {"name", "exchange", "routing_key", "durable", "exclusive", "auto_delete"} <= set(queues[0])
    assert one(inspect(app).clock())["clock"] > 0
    hello = one(inspect(app).hello("other@" + socket.gethostname(), []))
    assert isinstance(hello["revoked"], list) and hello["clock"] > 0


def test_scheduled_active_and_query_task(workers, app, mq):
    workers.start({})
    try:
        assert eventually(lambda: inspect(app).ping())
        later = app.tasks["tasks.add"].apply_async((1, 2), countdown=120)
        running = app.tasks["tasks.sleep"].apply_async((3,))

        def scheduled():
            return [s for s in one(inspect(app).scheduled()) if s["request"]["id"] == later.id]

        entry = eventually(scheduled)
        assert entry, "the ETA request is listed as scheduled"
        assert entry[0]["eta"] and entry[0]["request"]["name"] == "tasks.add"

        def active():
            return [r for r in one(inspect(app).active()) if r["id"] == running.id]

        req = eventually(active)
        assert req and req[0]["name"] == "tasks.sleep" and list(req[0]["args"]) == [3]
        assert req[0]["hostname"] == NODE and req[0]["time_start"]
        found = one(inspect(app).query_task(later.id, running.id))
        assert found[later.id][0] == "scheduled"
        assert found[running.id][0] == "active"
        assert isinstance(one(inspect(app).reserved()), list)
        assert running.get(timeout=30) is not None or True
    finally:
        workers.stop()


def test_unknown_command_and_events_switch(worker, app):
    eventually(lambda: inspect(app).ping())
    reply = one(app.control.broadcast("no_such_command", reply=True, destination=[NODE],
                                      timeout=2.0))
    assert reply == {"error": "KeyError('no_such_command')"}
    # Celery's replies for a worker without -E.
    assert one(app.control.enable_events(destination=[NODE], reply=True, timeout=2.0)) == {
        "ok": "task events enabled"}
    assert one(app.control.disable_events(destination=[NODE], reply=True, timeout=2.0)) == {
        "ok": "task events disabled"}


def test_rate_and_time_limits(worker, app):
    eventually(lambda: inspect(app).ping())
    assert one(app.control.rate_limit("tasks.add", "100/s", destination=[NODE], reply=True,
                                      timeout=2.0)) == {"ok": "new rate limit set successfully"}
    assert one(app.control.rate_limit("tasks.add", "", destination=[NODE], reply=True,
                                      timeout=2.0)) == {"ok": "rate limit disabled successfully"}
    assert one(app.control.rate_limit("tasks.nope", "1/s", destination=[NODE], reply=True,
                                      timeout=2.0)) == {"error": "unknown task"}
    assert "error" in one(app.control.rate_limit("tasks.add", "fast", destination=[NODE],
                                                 reply=True, timeout=2.0))
    assert one(app.control.time_limit("tasks.add", soft=10, hard=20, destination=[NODE],
                                      reply=True, timeout=2.0)) == {
        "ok": "time limits set successfully"}
    assert app.tasks["tasks.add"].delay(1, 1).get(timeout=30) == 2


def celery_cli(*args, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "celery", "-A", "tasks.task", *args],
                          cwd=FIXTURES, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_celery_command_line(worker, app):
    eventually(lambda: inspect(app).ping())
    out = celery_cli("inspect", "ping", "-d", NODE, "-t", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert NODE in out.stdout and "pong" in out.stdout
    out = celery_cli("status", "-t", "1.5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert NODE in out.stdout and "node" in out.stdout and "online" in out.stdout


def test_a_mixed_cluster_answers_one_broadcast(worker, app, tmp_path):
    conf = effective_config(app, {})
    py_name = "py@" + socket.gethostname()
    python = Worker(conf, tmp_path / "py", kind="python", name="py@%h", queues="py",
                    pool="solo").start()
    try:
        def both():
            replies = app.control.ping(timeout=1.5)
            nodes = {k for r in replies for k in r}
            return nodes if {NODE, py_name} <= nodes else None

        assert eventually(both, timeout=30)
        stats = app.control.inspect(timeout=2.0).stats()
        assert {NODE, py_name} <= set(stats)
        assert all("pool" in s and "total" in s for s in stats.values())
    finally:
        python.stop()


def test_shutdown(workers, app):
    w = workers.start({})
    eventually(lambda: inspect(app).ping())
    app.control.shutdown(destination=[NODE])
    deadline = time.monotonic() + 30
    while w.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not w.alive(), w.log_tail()
    workers.stop()


def test_garbage_in_the_mailbox_is_skipped(worker, app):
    eventually(lambda: inspect(app).ping())
    mailbox = app.control.mailbox
    with app.producer_or_acquire() as producer:
        for body in ("not a command", {"method": 42}, {"arguments": []}):
            producer.publish(body, exchange=mailbox.exchange, routing_key="",
                             declare=[mailbox.exchange], serializer="json")
    assert eventually(lambda: inspect(app).ping()) == {NODE: {"ok": "pong"}}
    assert worker.alive()
