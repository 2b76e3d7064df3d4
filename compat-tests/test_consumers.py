"""Remote control's `add_consumer` / `cancel_consumer`: real Python clients
(`app.control.add_consumer(...)`, `cancel_consumer(...)`, `inspect().active_queues()`) change
the queues the worker under test consumes while it runs, on Redis and RabbitMQ. The same
test passes against a Python Celery worker (RCELERY_WORKER=python), which proves it.

Read from Celery 5.7's `worker/control.py` (`add_consumer`, `cancel_consumer`) and
`worker/consumer/consumer.py` (`add_task_queue`, `cancel_task_queue`).
"""
import socket

import pytest

from helpers import eventually, reply_of

# Redis and RabbitMQ here; broadcast over the filesystem transport is tested in
# test_filesystem.py.
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]

NODE = "w1@" + socket.gethostname()
EXTRA = "consumers_extra"


def one(replies):
    """The reply of the worker under test."""
    return reply_of(NODE, replies)


def consumed(app):
    reply = app.control.inspect(destination=[NODE], timeout=5.0).active_queues() or {}
    return reply.get(NODE)


def test_add_consumer_then_cancel_consumer(workers, app, mq):
    workers.start({})
    try:
        assert [q["name"] for q in eventually(lambda: consumed(app))] == ["default"]

        added = app.control.add_consumer(EXTRA, destination=[NODE], reply=True, timeout=5.0)
        assert one(added) == {"ok": f"add consumer {EXTRA}"}
        queues = eventually(lambda: [q for q in consumed(app) if q["name"] == EXTRA])
        assert [q["name"] for q in consumed(app)] == ["default", EXTRA]
        # Declared as Celery declares a queue it does not know: its own direct exchange,
        # bound with its own name.
        assert queues[0]["exchange"]["name"] == EXTRA
        assert queues[0]["exchange"]["type"] == "direct"
        assert queues[0]["routing_key"] == EXTRA
        assert queues[0]["durable"] is True and queues[0]["auto_delete"] is False
        # Celery 5.7 gives the same answer when the queue is consumed already.
        again = app.control.add_consumer(EXTRA, destination=[NODE], reply=True, timeout=5.0)
        assert one(again) == {"ok": f"add consumer {EXTRA}"}
        assert [q["name"] for q in consumed(app)] == ["default", EXTRA]

        assert app.tasks["tasks.add"].apply_async((2, 3), queue=EXTRA).get(timeout=15) == 5

        cancelled = app.control.cancel_consumer(EXTRA, destination=[NODE], reply=True,
                                                timeout=5.0)
        assert one(cancelled) == {"ok": f"no longer consuming from {EXTRA}"}
        assert eventually(lambda: [q["name"] for q in consumed(app)] == ["default"])

        # Sent to the cancelled queue first, then to the one still consumed: once the second
        # has run, the first is still waiting in its queue.
        left = app.tasks["tasks.add"].apply_async((1, 1), queue=EXTRA)
        assert app.tasks["tasks.add"].apply_async((4, 4), queue="default").get(timeout=15) == 8
        assert mq.ready(EXTRA) == 1
        assert left.state == "PENDING"

        # Cancelling a queue that is not consumed answers the same.
        none = app.control.cancel_consumer("consumers_never", destination=[NODE], reply=True,
                                           timeout=5.0)
        assert one(none) == {"ok": "no longer consuming from consumers_never"}
        assert [q["name"] for q in consumed(app)] == ["default"]
    finally:
        # The next test gets a worker consuming exactly what the settings say.
        workers.stop()
