"""Abandoned blocking threads never eat the pool, and a wedge is never silent (issue 10, item 6).

The scenario of the issue at a small scale: `-c 2` with a 0.2 s hard time limit, and 20
`tasks.block(2)` sent at once. Each one is failed with `TimeLimitExceeded` at 0.2 s while
its thread sleeps on; its slot stays taken until the thread returns, so the worker never
has more than 2 task threads, logs that it is wedged (with the task ids) while both slots
are held by abandoned threads, dumps its slots on SIGUSR1, and runs normal tasks again
once the threads have returned.

With `rcelery_restart_when_wedged` off, the worker waits for the threads; with it on (the
default), a pool that stays full of abandoned threads is restarted in place.
"""
import json
import os
import signal
import threading
import time

import psutil

from conftest import worker_config
from faultlib import nothing_left, send_many, wait_for

CONCURRENCY = 2
TIME_LIMIT = 0.2
BLOCK_SECONDS = 2
STUCK_TASKS = 20
# Threads of an idle worker (main/runtime, log flusher, ...) plus slack: never one per task.
OTHER_THREADS = 6


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


def log_lines(worker, text):
    return [line for line in worker.log().splitlines() if text in line]


def result_meta(backend, task_id):
    raw = backend.get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw is not None else None


def test_abandoned_threads_keep_their_slots_and_the_wedge_is_reported(redis_factory, worker_factory,
                                                                     producer_factory):
    server = redis_factory()
    worker = worker_factory(worker_config(
        server.url(0), server.url(1), worker_concurrency=CONCURRENCY, task_time_limit=TIME_LIMIT,
        rcelery_wedge_warn_after=1, rcelery_restart_when_wedged=False))
    app = producer_factory(server.url(0), server.url(1))
    backend, broker = server.client(1), server.client(0)
    sampler = ThreadSampler(worker.proc.pid)
    sampler.start()
    idle_threads = psutil.Process(worker.proc.pid).num_threads()

    stuck = send_many(app, "tasks.block", [(BLOCK_SECONDS,)] * STUCK_TASKS)

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
    normal = [app.AsyncResult(i) for i in send_many(app, "tasks.block", [(0.01,)] * 5)]
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


def test_a_pool_full_of_abandoned_threads_restarts_in_place(redis_factory, worker_factory, producer_factory):
    """`rcelery_restart_when_wedged` (default): every slot held by a thread that will not
    return for a long time; after `rcelery_wedge_warn_after` the worker restarts in place (same
    pid), which ends those threads, and runs the next tasks."""
    server = redis_factory()
    worker = worker_factory(worker_config(
        server.url(0), server.url(1), worker_concurrency=CONCURRENCY, task_time_limit=TIME_LIMIT,
        rcelery_wedge_warn_after=2))
    pid = worker.proc.pid
    app = producer_factory(server.url(0), server.url(1))
    stuck = send_many(app, "tasks.block", [(600,)] * CONCURRENCY)
    wait_for(lambda: "worker wedged" in worker.log(), 30, "the wedge error")
    wait_for(lambda: worker.log().count("ready.") >= 2, 30, "the restart in place")
    assert worker.alive() and worker.proc.pid == pid
    assert "restarting in place to end them" in worker.log()
    after = send_many(app, "tasks.add", [(1, 2)] * 5)
    for task_id in after:
        assert app.AsyncResult(task_id).get(timeout=30) == 3
    for task_id in stuck:
        meta = json.loads(server.client(1).get(f"celery-task-meta-{task_id}"))
        assert meta["result"]["exc_type"] == "TimeLimitExceeded", meta
    assert psutil.Process(pid).num_threads() <= CONCURRENCY + OTHER_THREADS
    wait_for(lambda: nothing_left(server.client(0)), 30, "an empty unacked hash")
