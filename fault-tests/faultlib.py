"""Small helpers of the fault tests: waiting, reading results by task id, sending in bulk."""
import json
import threading
import time

from harness.wait import wait_for as shared_wait_for

QUEUE_KEYS = ["default", "default\x06\x163", "default\x06\x166", "default\x06\x169"]


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll `predicate` until truthy (returns its value); fail after `timeout` seconds. An
    exception from it (a server being restarted) counts as not yet."""
    return shared_wait_for(predicate, timeout, what, interval, retry_errors=True)


def states(backend, ids):
    """{task_id: status or None} read from the Redis result keys, in batches."""
    out = {}
    ids = list(ids)
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        raw = backend.mget([f"celery-task-meta-{t}" for t in chunk])
        for t, r in zip(chunk, raw):
            out[t] = json.loads(r)["status"] if r is not None else None
    return out


def missing(backend, ids, state="SUCCESS"):
    """The ids whose stored status is not `state`."""
    return [t for t, s in states(backend, ids).items() if s != state]


def wait_all_succeeded(backend, ids, timeout):
    """Wait until every id's result says SUCCESS; on failure, say how many did not."""
    left = list(ids)

    def probe():
        nonlocal left
        left = missing(backend, left)
        return not left
    try:
        wait_for(probe, timeout, "every task to succeed", interval=0.25)
    except AssertionError:
        raise AssertionError(f"{len(left)} of {len(ids)} tasks never succeeded, e.g. {left[:5]}")


def nothing_left(broker):
    """True when no message is in the queue, its priority lists, or `unacked`."""
    return all(broker.llen(k) == 0 for k in QUEUE_KEYS) and broker.hlen("unacked") == 0


def send_many(app, name, args_list, **options):
    """Publish one task per args tuple on one producer; returns the ids in order."""
    ids = []
    with app.producer_or_acquire() as producer:
        for args in args_list:
            ids.append(app.send_task(name, args, producer=producer, **options).id)
    return ids


class Sender(threading.Thread):
    """Publishes `count` tasks in the background at about `rate` per second, retrying each
    publish through broker outages as kombu does (the producer side must survive too).

    A publish that kombu had to retry may have reached the broker before its connection
    broke, so the retry can put a second copy of the message on the queue: that is the
    producer's at-least-once, not the worker's. Such ids are collected in `retried`.
    """

    def __init__(self, app, name, count, rate, args=lambda i: (i, i)):
        super().__init__(daemon=True)
        self.app, self.name, self.count, self.rate, self.args = app, name, count, rate, args
        self.ids = []
        self.retried = set()
        self.error = None
        self._failed_attempt = False

    def _on_publish_error(self, exc, interval):
        self._failed_attempt = True

    def run(self):
        policy = dict(self.app.conf.task_publish_retry_policy or {})
        policy["errback"] = self._on_publish_error
        try:
            start = time.monotonic()
            for i in range(self.count):
                self._failed_attempt = False
                task_id = self.app.send_task(self.name, self.args(i), retry=True, retry_policy=policy).id
                self.ids.append(task_id)
                if self._failed_attempt:
                    self.retried.add(task_id)
                due = start + (i + 1) / self.rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except Exception as e:  # reported by the test
            self.error = e

    def finish(self, timeout):
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish sending"
        assert self.error is None, f"the producer failed: {self.error!r}"
        assert len(self.ids) == self.count
        return self.ids
