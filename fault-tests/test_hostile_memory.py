"""Hostile messages against a real worker: memory stays within the documented bound and is
given back, and the worker goes on.

Each case is generated here and pushed straight into the queue list as a kombu envelope (the
producer would need the same bytes). While the worker handles it, its resident memory is
sampled with psutil and its peak read from the kernel (`VmHWM`, reset before each case
through `/proc/PID/clear_refs`, so a short spike between samples is not missed).

The bound is the one docs/security-pickle.md ("Memory") promises for the whole worker path:
peak RSS growth above the RSS before the message <= K * message size + C. (The doc adds V
per extra copy of a task's arguments; these cases stay within K * M + C without it.) "Given back": within a few seconds of the message being
settled, RSS is back within RETAINED_BUFFERS * (largest message so far) + RETURN_SLACK of the
idle RSS: the decoders' memory is handed back, and a Redis connection that carried a message
or a result of 8 MiB or more is replaced by a fresh one, so its grown buffers go too (see the
doc). One message's worth is left as slack for the allocator.

On the suite's fixtures (conftest.py): a private redis-server on a free port, one rcelery
worker, a Python Celery producer. Run: `.venv/bin/python -m pytest fault-tests/test_hostile_memory.py`
(`-s` prints the measured table).
"""
import base64
import json
import pickle
import threading
import time
import uuid

import psutil
import pytest

from conftest import worker_config
from faultlib import wait_for

MIB = 1024 * 1024
# The documented bound (docs/security-pickle.md, "Memory"): K x message size + C.
BOUND_PER_MESSAGE_BYTE = 48
BOUND_CONSTANT = 64 * MIB
# After a message, RSS comes back to within RETAINED_BUFFERS x the largest message so far
# + RETURN_SLACK of the idle RSS.
RETAINED_BUFFERS = 1
RETURN_SLACK = 32 * MIB
# The worker's default `rcelery_max_message_bytes`.
DEFAULT_MAX_MESSAGE_BYTES = 64 * MIB

BROKER_DB, RESULT_DB = 5, 6


# -- the hostile messages ---------------------------------------------------------------------

def envelope(body, task, task_id, content_type):
    """A kombu Redis envelope around `body` (bytes), as Celery publishes a v2 task."""
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "binary",
        "content-type": content_type,
        "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id,
                    "parent_id": None, "group": None, "retries": 0, "eta": None,
                    "expires": None, "argsrepr": "(...)", "kwargsrepr": "{}"},
        "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": "default"},
                       "priority": 0, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4())},
    }).encode()


PICKLE = "application/x-python-serialize"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def deep_lists():
    """Lists nested 10M deep: 20 MB of pickle (`]` x 10M, then APPEND x 10M)."""
    n = 10_000_000
    return b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b".", PICKLE, "tasks.echo"


def many_empty_lists():
    """One list of 5M empty lists: 5 MB of pickle that expands ~50x when built."""
    n = 5_000_000
    return b"\x80\x04(" + b"]" * n + b"l.", PICKLE, "tasks.echo"


def json_ints():
    """`tasks.xsum` of 5M small ints in JSON (15 MB): legitimate, and must run."""
    numbers = [i % 10 for i in range(5_000_000)]
    body = json.dumps([[numbers], {}, EMBED]).encode()
    return body, "application/json", "tasks.xsum"


def big_echo():
    """`tasks.echo` of a 37 MB string (a 50 MB message): legitimate, and must run."""
    body = pickle.dumps((("x" * 37_000_000,), {}, EMBED), protocol=4)
    return body, PICKLE, "tasks.echo"


def over_the_limit():
    """A well-formed message just over the default `rcelery_max_message_bytes`."""
    body = json.dumps([["y" * (DEFAULT_MAX_MESSAGE_BYTES * 3 // 4)], {}, EMBED]).encode()
    return body, "application/json", "tasks.echo"


# name, generator, what must become of it: "dropped" (acked, no result), "success", or
# "refused" (acked, FAILURE stored).
CASES = [
    ("deep-pickle", deep_lists, "dropped"),
    ("5M-empty-lists", many_empty_lists, "dropped"),
    ("json-5M-ints", json_ints, "success"),
    ("echo-50MB", big_echo, "success"),
    ("over-max-message-bytes", over_the_limit, "refused"),
]


# -- measuring the worker -----------------------------------------------------------------------

def rss(pid):
    return psutil.Process(pid).memory_info().rss


def reset_peak(pid):
    """Resets the kernel's peak-RSS counter of `pid` to its current RSS."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def kernel_peak(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


class Sampler:
    """Samples a process's RSS with psutil in a thread; `peak` is the largest seen."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        proc = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- the test -----------------------------------------------------------------------------------

def settled(broker):
    return broker.llen("default") == 0 and broker.hlen("unacked") == 0


def test_hostile_messages_stay_within_the_memory_bound(redis_factory, worker_factory, producer_factory):
    from kombu.exceptions import DecodeError

    server = redis_factory()
    broker_url, backend_url = server.url(BROKER_DB), server.url(RESULT_DB)
    # Prefetch 1, one slot: one hostile message in the worker at a time.
    worker = worker_factory(worker_config(
        broker_url, backend_url, accept_content=["json", "pickle"], worker_concurrency=1,
        worker_prefetch_multiplier=1))
    app = producer_factory(broker_url, backend_url)
    broker, backend = server.client(BROKER_DB), server.client(RESULT_DB)

    def call(name, args, serializer):
        return app.send_task(name, args, serializer=serializer)

    pid = worker.proc.pid
    # Warm up every path once (decode, run, store) so the idle figure includes its caches.
    assert call("tasks.add", (1, 2), "pickle").get(timeout=30) == 3
    assert call("tasks.echo", ("warm",), "json").get(timeout=30)
    time.sleep(1.0)
    idle = rss(pid)
    print(f"\nidle RSS {idle / MIB:.0f} MiB")
    print(f"{'case':<24}{'message':>10}{'peak growth':>13}{'bound':>9}{'after':>8}{'tolerance':>11}  (MiB)")
    rows, failures, largest = [], [], 0
    for name, make, fate in CASES:
        body, content_type, task = make()
        task_id = f"hostile-{name}-{uuid.uuid4()}"
        raw = envelope(body, task, task_id, content_type)
        del body
        before = rss(pid)
        reset_peak(pid)
        with Sampler(pid) as sampler:
            broker.lpush("default", raw)
            # One slot, prefetch 1: the next task is fetched only once this one is settled.
            sentinel = call("tasks.add", (len(rows), 1), "json")
            wait_for(lambda: sentinel.ready() or not worker.alive(), 120, f"{name} to be handled")
        assert worker.alive(), f"worker died on {name}: {worker.log_tail(30)}"
        assert sentinel.get(timeout=10) == len(rows) + 1
        wait_for(lambda: settled(broker), 30, f"{name} to be settled")
        peak = max(kernel_peak(pid), sampler.peak)
        largest = max(largest, len(raw))
        tolerance = RETAINED_BUFFERS * largest + RETURN_SLACK
        after = wait_for_return(pid, idle)
        growth, bound = peak - before, BOUND_PER_MESSAGE_BYTE * len(raw) + BOUND_CONSTANT
        rows.append((name, len(raw), growth, bound, after - idle, tolerance))
        print_row(*rows[-1])
        if growth > bound:
            failures.append(f"{name}: peak growth {growth / MIB:.0f} MiB > bound {bound / MIB:.0f} MiB")
        if after - idle > tolerance:
            failures.append(f"{name}: RSS stayed {(after - idle) / MIB:.0f} MiB above idle "
                            f"(tolerance {tolerance / MIB:.0f} MiB)")
        result = app.AsyncResult(task_id)
        if fate == "dropped":
            assert not backend.exists(f"celery-task-meta-{task_id}"), f"{name} stored a result"
        elif fate == "success":
            assert result.get(timeout=10) is not None, name
        else:
            with pytest.raises(DecodeError, match="rcelery_max_message_bytes"):
                result.get(timeout=10)
            refusal = [line for line in worker.log().splitlines() if task_id in line]
            assert any("rcelery_max_message_bytes" in line and f"{len(raw)} bytes" in line
                       for line in refusal), refusal
        del raw
    assert not failures, "; ".join(failures)
    # Still a working worker, with nothing left behind.
    assert call("tasks.add", (2, 3), "pickle").get(timeout=30) == 5
    wait_for(lambda: settled(broker), 30, "the queue and unacked to be empty")
    assert broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0
    assert worker.alive()


def wait_for_return(pid, idle, timeout=4.0):
    """RSS once it is back within RETURN_SLACK of `idle`, or after `timeout` (the trimmer
    hands freed memory back within about 3 s; what is left then stays)."""
    deadline = time.monotonic() + timeout
    while True:
        now = rss(pid)
        if now - idle <= RETURN_SLACK or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def print_row(name, size, growth, bound, after, tolerance):
    print(f"{name:<24}{size / MIB:>10.1f}{growth / MIB:>13.0f}{bound / MIB:>9.0f}{after / MIB:>8.0f}"
          f"{tolerance / MIB:>11.0f}")
