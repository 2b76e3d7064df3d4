"""Small helpers shared by the compat tests: waiting, raw results, goldens, normalisation."""
import json
import re
import socket
import time
from pathlib import Path

import celery
from harness.brokers import drained
from harness.wait import wait_for  # noqa: F401  (the suites import it from here)

GOLDEN = Path(__file__).resolve().parent.parent / "python-fixtures" / "golden"
# The older line's captures, where they differ (see python-fixtures/golden-5.5/README.md).
GOLDEN_55 = GOLDEN.parent / "golden-5.5"
# The installed Celery line, e.g. (5, 7): tests whose expected behaviour changed in 5.6/5.7
# select it by this (the Python worker and client are of this version).
CELERY_LINE = tuple(int(part) for part in celery.__version__.split(".")[:2])
CELERY_57 = CELERY_LINE >= (5, 6)
READY = ("SUCCESS", "FAILURE", "REVOKED")
QUEUE_KEYS = ["default", "default\x06\x163", "default\x06\x166", "default\x06\x169"]


def raw_result(backend, task_id):
    """The stored result string (or None)."""
    raw = backend.get(f"celery-task-meta-{task_id}")
    return raw.decode("utf-8") if raw is not None else None


def wait_raw_result(backend, task_id, states=READY, timeout=30.0):
    """Wait until the stored result of `task_id` is in one of `states`; return the raw string."""
    def probe():
        raw = raw_result(backend, task_id)
        return raw if raw is not None and json.loads(raw)["status"] in states else None
    return wait_for(probe, timeout, f"result of {task_id} in {states}")


def golden_file(sub, case):
    """`golden/<sub>/<case>.json`, or under Celery 5.5 its `golden-5.5/` twin if there is one."""
    if not CELERY_57 and (GOLDEN_55 / sub / f"{case}.json").exists():
        return GOLDEN_55 / sub / f"{case}.json"
    return GOLDEN / sub / f"{case}.json"


def golden_message(case):
    return json.loads(golden_file("messages", case).read_text())


def golden_result(case):
    return json.loads(golden_file("results", case).read_text())


def normalize(raw, mask_traceback=False, worker_name=None, extra_masks=()):
    """Mask the run-dependent parts of a stored result string.

    `date_done` is replaced (and checked to be ISO-8601 with a +08:00 offset, or null),
    `traceback` optionally, the `worker`/STARTED hostname replaced by `worker_name`, and
    any (old, new) literal pairs of `extra_masks` substituted.
    """
    m = re.search(r'"date_done": (null|"([^"]*)")', raw)
    assert m, f"no date_done in {raw}"
    if m.group(2) is not None:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+08:00", m.group(2)), \
            f"date_done {m.group(2)!r} is not ISO-8601 in the app timezone (+08:00)"
    raw = raw[:m.start()] + '"date_done": "<date_done>"' * (m.group(2) is not None) + \
        '"date_done": null' * (m.group(2) is None) + raw[m.end():]
    if mask_traceback:
        m = re.search(r'"traceback": ("(?:[^"\\]|\\.)*"|null)', raw)
        assert m, f"no traceback in {raw}"
        raw = raw[:m.start()] + '"traceback": "<traceback>"' + raw[m.end():]
    if worker_name:
        raw = re.sub(r'"(worker|hostname)": "w1@[^"]*"', rf'"\1": "{worker_name}"', raw)
    for old, new in extra_masks:
        raw = raw.replace(old, new)
    return raw


def local_worker_name():
    """What `-n w1@%h` expands to on this machine."""
    return f"w1@{socket.gethostname()}"


def queues_empty(mq, queues=("default",)):
    """True when no task message waits in `queues` and none is delivered and unacknowledged
    (`mq` is the suite's broker-neutral fixture, harness/brokers.py)."""
    return drained(mq, queues)


def wait_drained(mq, timeout=30.0):
    wait_for(lambda: queues_empty(mq), timeout, "queue and unacked to be empty")




def reply_of(node, replies):
    """The reply of `node` among a remote-control answer: `inspect` gives {node: reply},
    broadcasts [{node: reply}, ...]."""
    if isinstance(replies, list):
        replies = {k: v for r in replies for k, v in r.items()}
    assert replies and node in replies, replies
    return replies[node]


def eventually(fn, timeout=15.0):
    """`fn()` once it is truthy, else its last value after `timeout` (a worker applies a
    change just after replying; one still subscribing may not answer yet)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
