"""`pool_grow` / `pool_shrink` by remote control: real Python clients
(`app.control.pool_grow(n, reply=True)`) resizing the worker under test, on Redis and
RabbitMQ. The same test passes against a Python Celery worker (RCELERY_WORKER=python, prefork
pool), which proves the replies and the prefetch count.

Read from Celery 5.7's `worker/control.py` (`pool_grow`/`pool_shrink`), `worker/consumer/`
(`_update_prefetch_count`, `prefetch_count` in `stats`) and billiard's `Pool.grow`/`shrink`.
"""
import socket

import pytest

from helpers import eventually, reply_of

# Redis and RabbitMQ here; broadcast over the filesystem transport is tested in
# test_filesystem.py.
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]

NODE = "w1@" + socket.gethostname()


def one(replies):
    """The reply of the worker under test."""
    return reply_of(NODE, replies)


def stats(app):
    return one(app.control.inspect(destination=[NODE], timeout=5.0).stats())


def pool_size(app, kind):
    """How many slots/processes the worker reports. rcelery: `max-concurrency`. Python's
    prefork pool keeps its start `-c` there (billiard's grow does not touch `limit`): its
    process list tells the size."""
    pool = stats(app)["pool"]
    return pool["max-concurrency"] if kind == "rust" else len(pool["processes"])


def server_prefetch(mq):
    """RabbitMQ: the prefetch count the server holds for the worker's consuming channels
    (global QoS, or per consumer), the largest one (the pidbox's channel has none)."""
    done = mq.ctl("list_channels", "-q", "-p", mq.vhost, "--no-table-headers", "consumer_count",
                  "prefetch_count", "global_prefetch_count")
    rows = [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
    return max((max(int(r[1]), int(r[2])) for r in rows if int(r[0]) > 0), default=None)


def prefetch_is(app, mq, count):
    """`stats` reports `count`, and on RabbitMQ `basic_qos` set it on the server."""
    if stats(app)["prefetch_count"] != count:
        return False
    return mq.kind != "amqp" or eventually(lambda: server_prefetch(mq) == count, timeout=10)


def control(app, command, n):
    return one(getattr(app.control, command)(n, destination=[NODE], reply=True, timeout=5.0))


def test_grow_runs_more_tasks_at_once_and_shrink_takes_it_back(workers, app, kind, mq):
    workers.start({"worker_concurrency": 1, "task_track_started": True})
    assert eventually(lambda: app.control.inspect(destination=[NODE], timeout=1.0).ping())
    assert prefetch_is(app, mq, 4)  # -c 1 x worker_prefetch_multiplier 4

    assert control(app, "pool_grow", 1) == {"ok": "pool will grow"}
    assert eventually(lambda: pool_size(app, kind) == 2)
    assert prefetch_is(app, mq, 8)

    # Two blocking tasks sent after the grow: both run at once on a pool started with -c 1.
    first = app.tasks["tasks.block"].apply_async((3,))
    second = app.tasks["tasks.block"].apply_async((3,))
    both = eventually(lambda: first.state == "STARTED" and second.state == "STARTED", timeout=10)
    assert both, (first.state, second.state)
    assert first.get(timeout=30) == 3 and second.get(timeout=30) == 3

    assert control(app, "pool_shrink", 1) == {"ok": "pool will shrink"}
    assert eventually(lambda: pool_size(app, kind) == 1)
    assert prefetch_is(app, mq, 4)

    if kind == "rust":
        # rcelery keeps one slot (billiard's pool would shrink to no process at all and run
        # nothing): docs/compatibility.md.
        reply = control(app, "pool_shrink", 1)
        assert reply == {"error": "ValueError(\"Can't shrink the pool below one slot\")"}
        assert stats(app)["pool"]["max-concurrency"] == 1
    assert app.tasks["tasks.add"].delay(2, 3).get(timeout=30) == 5
    workers.stop()
