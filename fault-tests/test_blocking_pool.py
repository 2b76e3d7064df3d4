"""Abandoned blocking threads never eat the pool, and a wedge is never silent (issue 10, item 6).

The scenario of the issue at a small scale: `-c 2` with a 0.2 s hard time limit, and 20
`tasks.block(2)` sent at once. Each one is failed with `TimeLimitExceeded` at 0.2 s while
its thread sleeps on; its slot stays taken until the thread returns, so the worker never
has more than 2 task threads, logs that it is wedged (with the task ids) while both slots
are held by abandoned threads, dumps its slots on SIGUSR1, and runs normal tasks again
once the threads have returned.

Self-contained: a private redis-server (env RCELERY_FAULT_REDIS_PORT, else a free port) and
the rcelery binary (built if missing; env RCELERY_BIN to use another).
"""
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "python-fixtures"
sys.path.insert(0, str(FIXTURES))

PASSWORD = "123456"
BROKER_DB, RESULT_DB = 3, 4
CONCURRENCY = 2
TIME_LIMIT = 0.2
BLOCK_SECONDS = 2
STUCK_TASKS = 20
# Threads of an idle worker (main/runtime, log flusher, ...) plus slack: never one per task.
OTHER_THREADS = 6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = int(os.environ.get("RCELERY_FAULT_REDIS_PORT") or free_port())

# The producer side (this process) reads the same settings module as the workers.
os.environ.update({
    "REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(PORT), "REDIS_MQ_PASSWORD": PASSWORD,
    "REDIS_MQ_DB": str(BROKER_DB),
    "CELERY_RESULT_BACKEND": f"redis://:{PASSWORD}@127.0.0.1:{PORT}/{RESULT_DB}",
})
for _var in ("CELERY_BROKER_URL", "RCELERY_FIXTURE_CONFIG"):
    os.environ.pop(_var, None)

from harness import RedisServer, Worker, effective_config  # noqa: E402


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll `predicate` until truthy (returns its value); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ThreadSampler(threading.Thread):
    """Samples the thread count of a process every few milliseconds; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, self.proc.num_threads())
            except psutil.Error:
                return
            time.sleep(0.01)

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer(PORT, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(redis_server):
    from tasks.task import app as celery_app
    redis_server.client().flushall()
    with celery_app.connection_for_write() as conn:
        for queue in celery_app.amqp.queues.values():
            queue(conn.default_channel).declare()
    yield celery_app
    # Let AsyncResult finalizers unsubscribe while the server is still up.
    gc.collect()


@pytest.fixture(scope="module")
def worker(app, tmp_path_factory):
    conf = effective_config(app, {
        "worker_concurrency": CONCURRENCY,
        "task_time_limit": TIME_LIMIT,
        "rcelery_wedge_warn_after": 1,
    })
    w = Worker(conf, tmp_path_factory.mktemp("blocking-pool"), kind="rust")
    w.start()
    yield w
    w.stop()


def log_lines(worker, text):
    return [line for line in worker.log().splitlines() if text in line]


def result_meta(backend, task_id):
    raw = backend.get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw is not None else None


def test_abandoned_threads_keep_their_slots_and_the_wedge_is_reported(worker, redis_server):
    import tasks.task as tasks
    backend = redis_server.client(RESULT_DB)
    broker = redis_server.client(BROKER_DB)
    sampler = ThreadSampler(worker.proc.pid)
    sampler.start()
    idle_threads = psutil.Process(worker.proc.pid).num_threads()

    stuck = [tasks.block.delay(BLOCK_SECONDS).id for _ in range(STUCK_TASKS)]

    # Both slots held by abandoned threads: an error naming the tasks.
    wedged = wait_for(lambda: log_lines(worker, "worker wedged"), 30, "the wedge error")
    named = [i for i in stuck if i in wedged[0]]
    assert len(named) == CONCURRENCY, wedged[0]

    # SIGUSR1 dumps the slots: both held by abandoned threads, with their ids and names.
    def dumped_abandoned():
        os.kill(worker.proc.pid, signal.SIGUSR1)
        time.sleep(0.2)
        return log_lines(worker, f"SIGUSR1: {CONCURRENCY} of {CONCURRENCY} slots busy "
                                 f"({CONCURRENCY} held by abandoned threads)")
    wait_for(dumped_abandoned, 30, "a SIGUSR1 dump of two abandoned slots")
    slot_lines = log_lines(worker, "abandoned at its hard time limit, thread still running")
    dumped = [line for line in slot_lines if "slot " in line and "tasks.block[" in line]
    assert dumped, worker.log_tail(40)
    assert all(any(i in line for i in stuck) for line in dumped), dumped

    # Normal tasks sent while wedged run once the abandoned threads have returned.
    normal = [tasks.block.delay(0.01) for _ in range(5)]
    for r in normal:
        assert r.get(timeout=STUCK_TASKS * BLOCK_SECONDS + 30) == 0.01

    for task_id in stuck:
        meta = wait_for(lambda: result_meta(backend, task_id), 30, f"the result of {task_id}")
        assert meta["status"] == "FAILURE", meta
        assert meta["result"]["exc_type"] == "TimeLimitExceeded", meta
    peak = sampler.stop()
    print(f"peak {peak} threads for -c {CONCURRENCY} (idle: {idle_threads})")
    assert peak <= CONCURRENCY + OTHER_THREADS, \
        f"{peak} threads for -c {CONCURRENCY} (idle: {idle_threads})"

    wait_for(lambda: log_lines(worker, "slots no longer wedged"), 30, "the recovery line")
    wait_for(lambda: broker.hlen("unacked") == 0, 30, "an empty unacked hash")
    assert worker.alive()
