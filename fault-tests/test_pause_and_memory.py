"""A broker that stops answering (`CLIENT PAUSE` longer than the client's timeout) and one
that refuses writes (`maxmemory` reached): the worker waits, says so once, and goes on;
`unacked_mutex` is never left held by a call that timed out."""
import json
import time
import uuid

from conftest import ran_exactly_once, worker_config
from faultlib import nothing_left, send_many, wait_all_succeeded, wait_for


def plant_stale_unacked(broker, app, task_id):
    """A message a dead worker took long ago: in `unacked`, scored an hour back."""
    tag = str(uuid.uuid4())
    # Sent to a queue nobody consumes (the worker would race this test for `default`), then
    # planted as a message of `default`.
    staging = f"stale-{tag}"
    with app.producer_or_acquire() as producer:
        app.send_task("tasks.add", (20, 22), task_id=task_id, producer=producer, queue=staging)
    raw = broker.rpop(staging)
    envelope = json.loads(raw)
    envelope["properties"]["delivery_tag"] = tag
    envelope["properties"]["delivery_info"]["routing_key"] = "default"
    broker.hset("unacked", tag, json.dumps([envelope, "default", "default"]))
    broker.zadd("unacked_index", {tag: time.time() - 3600})
    return tag


def test_pause_longer_than_the_socket_timeout(redis_factory, worker_factory, producer_factory):
    server = redis_factory()
    conf = worker_config(server.url(0), server.url(1),
                         broker_transport_options={"socket_timeout": 1, "visibility_timeout": 5})
    worker = worker_factory(conf)
    app = producer_factory(server.url(0), server.url(1))
    before = send_many(app, "tasks.add", [(i, i) for i in range(50)])
    wait_all_succeeded(server.client(1), before, 15)
    # Three pauses of 3 s: every call in flight (fetch, BRPOP, a restore's `SET NX` on the
    # mutex) times out on the worker's side and runs on the server when the pause ends.
    for _ in range(3):
        server.pause(3)
        time.sleep(3.2)
    stale_id = str(uuid.uuid4())
    plant_stale_unacked(server.client(0), app, stale_id)
    after = send_many(app, "tasks.add", [(i, 2) for i in range(50)])
    # The stale message comes back through the restore, which needs the mutex: a mutex left
    # held by a timed-out call would hold it back for `unacked_mutex_expire` (300 s).
    wait_all_succeeded(server.client(1), after + [stale_id], 40)
    wait_for(lambda: nothing_left(server.client(0)), 30, "unacked to empty")
    ran_exactly_once(before + after + [stale_id], worker)
    assert worker.alive()


def test_maxmemory_refusals_wait_without_losing(redis_factory, worker_factory, producer_factory):
    server = redis_factory(extra=["--maxmemory-policy", "noeviction"])
    worker = worker_factory(worker_config(server.url(0), server.url(1)))
    app = producer_factory(server.url(0), server.url(1))
    ids = send_many(app, "tasks.sleep", [(0.05,)] * 200)
    admin = server.client(2)
    admin.set("filler", b"x" * (4 * 1024 * 1024))
    # Now past maxmemory: result writes (and with them the fetches that carry them) are
    # refused with OOM until memory is given back.
    admin.config_set("maxmemory", "1mb")
    time.sleep(3.0)
    assert worker.alive()
    admin.config_set("maxmemory", "0")
    admin.delete("filler")
    wait_all_succeeded(server.client(1), ids, 30)
    wait_for(lambda: nothing_left(server.client(0)), 30, "unacked to empty")
    ran_exactly_once(ids, worker)
    log = worker.log()
    assert "OOM" in log, "the worker never met the refusal"
    assert log.count("OOM") <= 3, "the refusal must be logged once (and at most every 30 s), not per attempt"
