"""The broker connection heals: `CLIENT KILL`, restarts with and without AOF, a broker that is
not there at start. A real Python producer keeps sending through the faults; every task id
must end in exactly one SUCCESS and nothing may stay in `unacked`."""
import re
import time

import pytest

from conftest import ran_exactly_once, worker_config
from faultlib import Sender, nothing_left, send_many, wait_all_succeeded, wait_for

# Stated in docs/reliability.md: after the server is back, the worker fetches again within the
# reconnect backoff's cap (5 s); a fetch whose reply was lost comes back after the visibility
# timeout (here 10 s) plus one restore period (10 s).
BACK_WITHIN = 15
LOST_REPLY_BACK_WITHIN = 10 + 10 + 15


def outage_lines(worker):
    log = worker.log()
    return (len(re.findall(r"broker \S+ unavailable", log)),
            len(re.findall(r"broker connection restored after", log)))


def test_client_kill_while_a_producer_sends(redis_factory, worker_factory, producer_factory):
    """`CLIENT KILL TYPE normal` five times while 1500 tasks are sent and run: every
    connection of the worker (fetch, BRPOP, settle lane) is cut and made anew."""
    server = redis_factory()
    conf = worker_config(server.url(0), server.url(1))
    worker = worker_factory(conf)
    app = producer_factory(server.url(0), server.url(1))
    sender = Sender(app, "tasks.add", 1500, rate=500)
    sender.start()
    for _ in range(5):
        time.sleep(0.5)
        server.kill_clients()
    ids = sender.finish(60)
    wait_all_succeeded(server.client(1), ids, LOST_REPLY_BACK_WITHIN)
    wait_for(lambda: nothing_left(server.client(0)), LOST_REPLY_BACK_WITHIN, "unacked to empty")
    ran_exactly_once(ids, worker, republished=sender.retried)
    assert worker.alive()


def test_restart_without_persistence_then_new_work(redis_factory, worker_factory, producer_factory):
    """A broker restarted empty (no AOF): the worker reconnects, binds its queue again (kombu
    producers route through the binding), and runs what is sent afterwards. One line when
    the link goes, one when it is back."""
    broker = redis_factory()
    results = redis_factory()
    worker = worker_factory(worker_config(broker.url(0), results.url(0)))
    app = producer_factory(broker.url(0), results.url(0))
    first = send_many(app, "tasks.add", [(i, i) for i in range(200)])
    wait_all_succeeded(results.client(), first, 30)
    broker.restart(down_for=3.0)
    wait_for(lambda: outage_lines(worker)[1] >= 1, BACK_WITHIN, "the worker to reconnect")
    assert broker.client().smembers("_kombu.binding.default"), "the binding was not recorded again"
    second = send_many(app, "tasks.add", [(i, 1) for i in range(200)])
    wait_all_succeeded(results.client(), second, BACK_WITHIN)
    ran_exactly_once(first + second, worker)
    lost, back = outage_lines(worker)
    assert (lost, back) == (1, 1), f"expected one outage line each way, got {lost} lost / {back} back"


@pytest.mark.parametrize("kills", [2])
def test_restart_with_aof_while_tasks_run_and_a_producer_sends(redis_factory, worker_factory,
                                                                producer_factory, kills):
    """kill -9 of a broker with AOF (fsync always) in the middle of the work, results on the
    same server: what was queued or unacked survives, held messages are acked after the
    reconnect, results queued with their acks are written; each task runs exactly once."""
    server = redis_factory(aof=True)
    worker = worker_factory(worker_config(server.url(0), server.url(1), worker_concurrency=4))
    app = producer_factory(server.url(0), server.url(1))
    sender = Sender(app, "tasks.sleep", 1200, rate=300, args=lambda i: (0.005,))
    sender.start()
    for _ in range(kills):
        time.sleep(1.2)
        server.restart(down_for=1.0)
    ids = sender.finish(90)
    wait_all_succeeded(server.client(1), ids, LOST_REPLY_BACK_WITHIN)
    wait_for(lambda: nothing_left(server.client(0)), LOST_REPLY_BACK_WITHIN, "unacked to empty")
    ran_exactly_once(ids, worker, republished=sender.retried)


def test_no_broker_at_start(redis_factory, worker_factory, producer_factory):
    """broker_connection_retry_on_startup (Celery's default): the worker waits for the broker
    instead of exiting, then works."""
    from servers import FaultyRedis, free_port
    port = free_port()
    conf = worker_config(f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1")
    worker = worker_factory(conf, wait_ready=False)
    time.sleep(2.0)
    assert worker.alive(), f"the worker exited without a broker:\n{worker.log_tail()}"
    assert "ready." not in worker.log()
    server = FaultyRedis(port=port).start()
    try:
        worker.wait_ready(BACK_WITHIN)
        app = producer_factory(server.url(0), server.url(1))
        ids = send_many(app, "tasks.add", [(1, 2)] * 10)
        wait_all_succeeded(server.client(1), ids, 15)
        log = worker.log()
        assert len(re.findall(r"unavailable", log)) == 1, "one line for the missing broker, not one per attempt"
    finally:
        worker.kill()
        server.stop()


def test_retry_settings_are_honoured(worker_factory):
    """`broker_connection_retry_on_startup = false` exits at once with a clear error;
    `broker_connection_max_retries = 2` gives up after the third failed attempt."""
    from servers import free_port
    port = free_port()
    url = f"redis://:S3cretPw@127.0.0.1:{port}/0"
    no_retry = worker_factory(worker_config(url, url, broker_connection_retry_on_startup=False),
                              wait_ready=False)
    assert no_retry.proc.wait(30) != 0
    assert "gave up after 1 attempt" in no_retry.log()
    two = worker_factory(worker_config(url, url, broker_connection_max_retries=2), wait_ready=False)
    assert two.proc.wait(60) != 0
    assert "gave up after 3 attempt" in two.log()
    for w in (no_retry, two):
        assert "S3cretPw" not in w.log(), "the password leaked into the log"
