"""Highly available brokers as Celery users run them: Redis Sentinel (a master, a replica and
three sentinels on loopback ports; the master is killed with -9 in the middle of the work and
the sentinels promote the replica), and a `redis://a;redis://b` fail-over list.

What is guaranteed, and asserted: the worker follows the new master (its log says where it
now is, the password masked), keeps consuming and storing, never wedges, and every task
published after the fail-over completes. What is not: Redis replicates asynchronously, so a
message, an ack or a result the old master took in its last instant before `kill -9` may
never have reached the replica; such tasks may be lost (or, for an ack, run again). That is
Redis replication, not the worker; the test reports how many of the tasks sent before the
fail-over ended without a result, and asserts nothing about them.
"""
import re
import time

import pytest

from conftest import worker_config
from faultlib import Sender, send_many, wait_all_succeeded, wait_for, states
from servers import Sentinel, port_in

PASSWORD = "S3cretPw"
SENTINEL_PASSWORD = "SentPw0rd"
MASTER = "mymaster"


def redis_port():
    return port_in(6450, 6499)


def sentinel_port():
    return port_in(26450, 26499)


def start_replicated_pair(redis_factory):
    """A master and its replica, both with `requirepass` (the replica authenticates to the
    master with `masterauth`, and keeps the same password once promoted)."""
    auth = ["--masterauth", PASSWORD]
    master = redis_factory(port=redis_port(), password=PASSWORD, extra=auth)
    replica = redis_factory(port=redis_port(), password=PASSWORD,
                            extra=auth + ["--replicaof", "127.0.0.1", str(master.port)])
    wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up",
             15, "the replica to sync")
    return master, replica


@pytest.fixture
def sentinel_factory():
    """Starts sentinels; stopped at the end of the test. Asked for before the producer, so
    they outlive its teardown (its result backend unsubscribes through them)."""
    started = []

    def make(master_port, requirepass=None):
        s = Sentinel(sentinel_port(), master_port, MASTER, quorum=2, auth_pass=PASSWORD,
                     requirepass=requirepass)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()


def start_sentinels(sentinel_factory, master_port, n=3, requirepass=None):
    sentinels = [sentinel_factory(master_port, requirepass) for _ in range(n)]
    # Each sentinel must know the others and the replica before a fail-over can happen.
    wait_for(lambda: all(int(s.master()["num-other-sentinels"]) == n - 1
                         and int(s.master()["num-slaves"]) == 1 for s in sentinels),
             20, "the sentinels to discover each other and the replica")
    return sentinels


def test_sentinel_failover_mid_run(redis_factory, sentinel_factory, worker_factory,
                                   producer_factory):
    """kill -9 of the master while a Celery producer sends through the same sentinels."""
    master, replica = start_replicated_pair(redis_factory)
    sentinels = start_sentinels(sentinel_factory, master.port)
    broker_url = ";".join(s.url(PASSWORD, 0) for s in sentinels)
    backend_url = ";".join(s.url(PASSWORD, 1) for s in sentinels)
    options = {"master_name": MASTER}
    worker = worker_factory(worker_config(
        broker_url, backend_url, broker_transport_options=options,
        result_backend_transport_options=options))
    banner = worker.log()
    assert f"127.0.0.1:{master.port}" in banner and PASSWORD not in banner, banner[-2000:]

    app = producer_factory(broker_url, backend_url)
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options
    sender = Sender(app, "tasks.add", 500, rate=50)
    sender.start()
    time.sleep(2.0)
    master.kill()
    promoted = wait_for(lambda: sentinels[0].master_port() == replica.port, 20,
                        "the sentinels to promote the replica")
    sent_before_failover = len(sender.ids)
    assert promoted
    ids = sender.finish(60)
    after = ids[sent_before_failover:]
    assert after, "the producer sent nothing after the fail-over"

    results = replica.client(db=1)
    wait_all_succeeded(results, after, 30)
    # The worker never wedges: a batch sent at the end runs too.
    last = send_many(app, "tasks.add", [(i, 1) for i in range(20)])
    wait_all_succeeded(results, last, 15)

    log = worker.log()
    assert worker.alive()
    moved = re.search(r"broker now connected to (\S+) .*\(was (\S+)", log)
    assert moved, f"no line saying where the broker went:\n{log[-3000:]}"
    assert f":{replica.port}/" in moved.group(1), moved.group(0)
    assert PASSWORD not in log, "the password leaked into the log"
    before = ids[:sent_before_failover]
    lost = [t for t, s in states(results, before).items() if s != "SUCCESS"]
    print(f"{len(before)} task(s) sent before the fail-over, {len(lost)} without a result "
          f"(lost with the old master's unreplicated writes); {len(after)} after it, all done")


def test_failover_list_first_down_then_moves_on(redis_factory, worker_factory, producer_factory):
    """`broker_url = "redis://a;redis://b"`: `a` is down at start, so the worker connects to
    `b` (the banner says so); then `a` comes up and `b` is killed: the worker moves on to `a`
    (round-robin wraps around) and runs what a Celery producer with the same list sends."""
    a_port = redis_port()
    b = redis_factory(port=redis_port())
    results = redis_factory(port=redis_port())
    broker_url = f"redis://127.0.0.1:{a_port}/0;redis://127.0.0.1:{b.port}/0"
    worker = worker_factory(worker_config(broker_url, results.url(0)))
    transport = re.search(r"transport:\s+(.*)", worker.log())
    assert transport and f"127.0.0.1:{b.port}/0" in transport.group(1), worker.log()[-2000:]

    app = producer_factory(broker_url, results.url(0))
    first = send_many(app, "tasks.add", [(i, i) for i in range(50)])
    wait_all_succeeded(results.client(), first, 15)

    a = redis_factory(port=a_port)
    b.kill()
    second = send_many(app, "tasks.add", [(i, 2) for i in range(50)])
    wait_all_succeeded(results.client(), second, 20)
    assert a.client().smembers("_kombu.binding.default"), "the worker did not bind its queue on a"
    log = worker.log()
    assert re.search(rf"broker now connected to redis://127.0.0.1:{a_port}/0 \(was redis://127.0.0.1:{b.port}/0\)", log), log[-3000:]
    assert worker.alive()


def test_sentinel_planned_failover_old_master_stays_up(redis_factory, sentinel_factory,
                                                       worker_factory, producer_factory):
    """`SENTINEL FAILOVER`: the old master stays up as a replica, so the worker's connections
    to it are not cut by a dead server; its writes are refused (`READONLY`) or its
    connections closed, and it must ask the sentinels again and follow the new master. The
    sentinels here have a password of their own, given in `sentinel_kwargs` (the URL's is
    the master's)."""
    master, replica = start_replicated_pair(redis_factory)
    sentinels = start_sentinels(sentinel_factory, master.port, requirepass=SENTINEL_PASSWORD)
    broker_url = ";".join(s.url(PASSWORD, 0) for s in sentinels)
    backend_url = ";".join(s.url(PASSWORD, 1) for s in sentinels)
    options = {"master_name": MASTER, "sentinel_kwargs": {"password": SENTINEL_PASSWORD}}
    worker = worker_factory(worker_config(
        broker_url, backend_url, broker_transport_options=options,
        result_backend_transport_options=options))
    app = producer_factory(broker_url, backend_url)
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options
    first = send_many(app, "tasks.add", [(i, i) for i in range(50)])
    wait_all_succeeded(master.client(db=1), first, 15)

    sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER)
    wait_for(lambda: all(s.master_port() == replica.port for s in sentinels)
             and master.client().info("replication")["role"] == "slave", 20,
             "the replica to be promoted and the old master to follow it")
    second = send_many(app, "tasks.add", [(i, 3) for i in range(50)])
    wait_all_succeeded(replica.client(db=1), second, 30)
    log = worker.log()
    assert re.search(rf"broker now connected to redis://:\*\*@127.0.0.1:{replica.port}/0", log), log[-3000:]
    assert PASSWORD not in log and SENTINEL_PASSWORD not in log, "a password leaked into the log"
    assert worker.alive()


def test_failover_list_is_tried_whole_before_giving_up(redis_factory, worker_factory):
    """`broker_connection_retry_on_startup = false`: one round of the list, not one URL. The
    second URL up: the worker starts there; both down: it gives up after trying both, with
    every password masked."""
    dead = redis_port()
    alive = redis_factory(port=redis_port())
    url = f"redis://:{PASSWORD}@127.0.0.1:{dead}/0;redis://127.0.0.1:{alive.port}/0"
    conf = worker_config(url, alive.url(1), broker_connection_retry_on_startup=False)
    worker_factory(conf)
    down = f"redis://:{PASSWORD}@127.0.0.1:{dead}/0;redis://:{PASSWORD}@127.0.0.1:{redis_port()}/0"
    gone = worker_factory(worker_config(down, alive.url(1), broker_connection_retry_on_startup=False),
                          wait_ready=False)
    assert gone.proc.wait(30) != 0
    log = gone.log()
    assert "gave up after 2 attempt" in log, log[-2000:]
    assert PASSWORD not in log, "the password leaked into the log"
