"""Mingle and gossip in a mixed cluster: a real Python Celery worker knows a revoked task id
and has moved its Lamport clock on; an rcelery worker started next learns both from it at
start (mingle: `hello` broadcast, replies for one second) and refuses the revoked task, and
an rcelery worker without mingle still moves its clock past the Python worker's from its
heartbeat events (gossip).

Read from Celery 5.7's `worker/consumer/mingle.py`, `worker/consumer/gossip.py` and the
`hello` command in `worker/control.py`.
"""
import socket
import uuid

import pytest
from celery.app.control import Control

from harness import Worker, effective_config
from helpers import wait_for

# Redis and RabbitMQ: the filesystem transport cannot broadcast (mingle is skipped there).
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]

HOST = socket.gethostname()
PY = "pymingle@" + HOST
RUST = "rsmingle@" + HOST
QUEUE = "mingle_q"


def clock_of(control, node):
    replies = control.inspect(destination=[node], timeout=3.0).clock() or {}
    return replies.get(node, {}).get("clock")


@pytest.fixture(scope="module")
def python_worker(app, tmp_path_factory):
    conf = effective_config(app, {})
    w = Worker(conf, tmp_path_factory.mktemp("pymingle"), kind="python", name="pymingle@%h",
               queues="pymingle_q", pool="solo").start()
    yield w
    w.stop()


def start_rust(app, tmp_path, *flags):
    conf = effective_config(app, {})
    return Worker(conf, tmp_path / "rs", kind="rust", name="rsmingle@%h", queues=QUEUE,
                  extra_args=list(flags), mingle="--without-mingle" not in flags).start()


def bump_python_clock(app, times=40):
    """Each `hello` moves the Python worker's clock one tick on; returns its value after."""
    inspect = app.control.inspect(destination=[PY], timeout=3.0)
    for _ in range(times):
        assert inspect.hello("probe@" + HOST, None) is not None
    return clock_of(app.control, PY)


def test_a_starting_worker_learns_revoked_ids_and_the_clock(python_worker, app, tmp_path):
    task_id = str(uuid.uuid4())
    replies = app.control.revoke(task_id, destination=[PY], reply=True, timeout=5)
    assert replies and PY in replies[0], replies
    py_clock = bump_python_clock(app)
    assert py_clock and py_clock >= 40
    # Without gossip, only mingle can have told it the Python worker's clock.
    rust = start_rust(app, tmp_path, "--without-gossip")
    try:
        assert "mingle: sync complete" in rust.log(), rust.log_tail()
        # A control of its own: its clock header says nothing of the Python worker's clock.
        fresh = Control(app)
        rust_clock = clock_of(fresh, RUST)
        assert rust_clock is not None and rust_clock > py_clock, (rust_clock, py_clock)
        r = app.send_task("tasks.add", (1, 2), task_id=task_id, queue=QUEUE)
        wait_for(lambda: r.state == "REVOKED", 15, "the revoked task to read REVOKED")
        # It still runs what is not revoked.
        assert app.send_task("tasks.add", (2, 3), queue=QUEUE).get(timeout=15) == 5
        # The Python worker answered the rcelery worker's hello.
        wait_for(lambda: f"sync with {RUST}" in python_worker.log(), 5,
                 "the Python worker to log the rcelery worker's hello")
    finally:
        rust.stop()


def test_gossip_moves_the_clock_past_other_workers_events(python_worker, app, tmp_path):
    py_clock = bump_python_clock(app)
    rust = start_rust(app, tmp_path, "--without-mingle")
    try:
        assert "mingle:" not in rust.log(), rust.log_tail()
        fresh = Control(app)
        # The Python worker's next heartbeat (every 2 s) carries a clock past py_clock.
        wait_for(lambda: (clock_of(fresh, RUST) or 0) > py_clock, 10,
                 "the rcelery worker's clock to pass the Python worker's")
    finally:
        rust.stop()
