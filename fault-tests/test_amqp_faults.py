"""The fault suite's reconnect, retry and lease guarantees on AMQP (a private RabbitMQ node,
`rabbit` in conftest.py): the broker application stopped and started while a real Python
producer sends, every connection closed by the server, the consumed queue deleted under the
worker, the node killed -9, the worker killed with messages unacked, no broker at start.

The rule for repeats (conftest.ran_at_least_once): AMQP is at-least-once. Only a message
unacked on a channel that broke comes again, and the broker never has more than the prefetch
count unacked on one channel; so every task must succeed, and repeats are bounded by
(broken channels) x (prefetch), one per broken channel for any one id. Results go to a
private Redis; the producer publishes with confirms, so a message it counts as sent is on
the broker (a retried publish may be there twice: `Sender.retried`).
"""
import re
import time

import pytest
from kombu import Exchange, Queue

from conftest import ran_at_least_once, successes, worker_config
from faultlib import Sender, send_many, wait_all_succeeded, wait_for
from servers import free_port

pytestmark = pytest.mark.amqp

CONCURRENCY = 2
PREFETCH = 4
WINDOW = CONCURRENCY * PREFETCH  # basic.qos prefetch_count of the worker's channel
# The worker is back within its reconnect backoff once the broker is (Celery's: 2 s steps up
# to 30 s; rcelery's: capped at 5 s), then drains what queued up meanwhile.
BACK_WITHIN = 45


def amqp_config(rabbit, backend_url, **overrides):
    """The fault suite's settings on the private node's test vhost, with the deployment's
    queue (x-max-priority 10, as tasks/celery_config.py declares it for the Python worker)."""
    overrides.setdefault("task_queues", [{"name": "default", "exchange": "default",
                                          "exchange_type": "direct", "routing_key": "default",
                                          "max_priority": 10}])
    return worker_config(rabbit.url(rabbit.vhost), backend_url, worker_concurrency=CONCURRENCY,
                         worker_prefetch_multiplier=PREFETCH, **overrides)


def amqp_producer(producer_factory, rabbit, backend_url):
    """A Celery producer on the test vhost declaring the same queue as the worker, with
    publisher confirms (a publish returns once the broker has the message)."""
    app = producer_factory(rabbit.url(rabbit.vhost), backend_url)
    app.conf.task_queues = (Queue("default", Exchange("default", type="direct"),
                                  routing_key="default", max_priority=10),)
    app.conf.broker_transport_options = {"confirm_publish": True}
    return app


def queue_empty(rabbit):
    """The default queue exists and holds nothing, ready or unacked."""
    return rabbit.queue_counts(rabbit.vhost).get("default") == (0, 0, 0)


def link_lines(worker):
    """(lines saying the broker link was lost, lines saying it is back) in the worker's log."""
    log = worker.log()
    if worker.kind == "python":
        return (len(re.findall(r"Connection to broker lost", log)),
                max(len(re.findall(r"Connected to amqp://", log)) - 1, 0))
    return (len(re.findall(r"broker \S+ unavailable", log)),
            len(re.findall(r"broker connection restored after", log)))


def assert_no_password(worker, rabbit):
    assert rabbit.password not in worker.log(), "the broker password leaked into the log"


@pytest.mark.parametrize("acks_late", [True, False], ids=["acks_late", "acks_early"])
def test_stop_app_start_app_while_a_producer_sends(rabbit, redis_factory, worker_factory,
                                                   producer_factory, acks_late):
    """`rabbitmqctl stop_app` / `start_app` twice while 2400 tasks are sent at ~300/s (the
    sending outlasts both outages): the queue is durable and the messages persistent, so
    everything queued survives; the worker and the producer reconnect; every task succeeds,
    repeats only as AMQP allows."""
    results = redis_factory()
    worker = worker_factory(amqp_config(rabbit, results.url(0), task_acks_late=acks_late))
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    sender = Sender(app, "tasks.add", 2400, rate=300)
    sender.start()
    outages = 2
    for _ in range(outages):
        time.sleep(0.6)
        rabbit.stop_app()
        time.sleep(1.0)
        rabbit.start_app()
    ids = sender.finish(90)
    wait_all_succeeded(results.client(0), ids, BACK_WITHIN)
    wait_for(lambda: queue_empty(rabbit), BACK_WITHIN, "the queue to drain, nothing unacked")
    ran_at_least_once(ids, worker, broken_links=outages, window=WINDOW, republished=sender.retried)
    wait_for(lambda: link_lines(worker)[1] >= 1, BACK_WITHIN, "a reconnect line in the log")
    assert link_lines(worker)[0] >= 1, "the loss of the connection is not in the log"
    assert worker.alive()
    assert_no_password(worker, rabbit)


def test_server_closes_every_connection(rabbit, redis_factory, worker_factory, producer_factory):
    """`rabbitmqctl close_all_connections` (connection.close 320 CONNECTION_FORCED) three times
    while tasks are sent and run: the worker says so, reconnects, and loses nothing."""
    results = redis_factory()
    worker = worker_factory(amqp_config(rabbit, results.url(0)))
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    sender = Sender(app, "tasks.add", 600, rate=300)
    sender.start()
    closes = 3
    for _ in range(closes):
        time.sleep(0.5)
        rabbit.close_all_connections("rcelery fault test", rabbit.vhost)
    ids = sender.finish(60)
    wait_all_succeeded(results.client(0), ids, BACK_WITHIN)
    wait_for(lambda: queue_empty(rabbit), BACK_WITHIN, "the queue to drain, nothing unacked")
    ran_at_least_once(ids, worker, broken_links=closes, window=WINDOW, republished=sender.retried)
    wait_for(lambda: link_lines(worker)[1] >= 1, BACK_WITHIN, "a reconnect line in the log")
    assert link_lines(worker)[0] >= 1, "the loss of the connection is not in the log"
    assert worker.alive()
    assert_no_password(worker, rabbit)


def test_node_killed_while_a_producer_sends(rabbit, redis_factory, worker_factory,
                                            producer_factory):
    """kill -9 of the RabbitMQ node (no clean shutdown) while 400 tasks are sent, then the node
    starts again from its disk: every confirmed message is there, the worker and the producer
    reconnect, every task succeeds. No bound on repeats here: acks the node took but had not
    yet written down are forgotten with it, and those messages come again (the broker's
    at-least-once, not the worker's)."""
    results = redis_factory()
    worker = worker_factory(amqp_config(rabbit, results.url(0), task_acks_late=True))
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    sender = Sender(app, "tasks.add", 400, rate=200)
    sender.start()
    time.sleep(0.8)
    rabbit.restart(down_for=1.0)
    ids = sender.finish(90)
    wait_all_succeeded(results.client(0), ids, BACK_WITHIN)
    wait_for(lambda: queue_empty(rabbit), BACK_WITHIN, "the queue to drain, nothing unacked")
    counts = successes(worker)
    assert [t for t in ids if t not in counts] == [], "a task never ran (by the worker log)"
    wait_for(lambda: link_lines(worker)[1] >= 1, BACK_WITHIN, "a reconnect line in the log")
    assert worker.alive()
    assert_no_password(worker, rabbit)


def test_consumed_queue_deleted_under_the_worker(rabbit, redis_factory, worker_factory,
                                                 producer_factory):
    """The queue the worker consumes from is deleted while tasks run (an operator's
    `rabbitmqctl delete_queue`): RabbitMQ cancels the consumer (basic.cancel). Celery treats
    that as a lost connection: it connects again, declares the queue again and consumes.
    What was in the deleted queue is gone with it (the operator's act); what is sent once the
    queue is back runs, and the worker never wedges or exits."""
    results = redis_factory()
    worker = worker_factory(amqp_config(rabbit, results.url(0)))
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    before = send_many(app, "tasks.sleep", [(0.2,)] * 20)
    wait_for(lambda: len(successes(worker)) >= 2, 30, "the first tasks to run")
    rabbit.delete_queue("default", rabbit.vhost)
    wait_for(lambda: "default" in rabbit.queue_counts(rabbit.vhost), BACK_WITHIN,
             "the worker to declare its queue again")
    after = send_many(app, "tasks.add", [(i, i) for i in range(100)])
    wait_all_succeeded(results.client(0), after, BACK_WITHIN)
    wait_for(lambda: queue_empty(rabbit), BACK_WITHIN, "the queue to drain, nothing unacked")
    counts = successes(worker)
    assert all(counts.get(t, 0) == 1 for t in after), "a task sent after the deletion ran twice"
    assert all(counts.get(t, 0) <= 2 for t in before)
    assert worker.alive()


def test_worker_killed_with_unacked_messages(rabbit, redis_factory, worker_factory,
                                             producer_factory):
    """kill -9 of a worker with `task_acks_late` while tasks run: RabbitMQ requeues what the
    dead connection held unacked, and a second worker runs it. Nothing is lost; repeats only
    among the first worker's prefetch window."""
    results = redis_factory()
    conf = amqp_config(rabbit, results.url(0), task_acks_late=True)
    first = worker_factory(conf)
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    ids = send_many(app, "tasks.sleep", [(0.1,)] * 60)
    wait_for(lambda: len(successes(first)) >= 6, 30, "the first worker to run some tasks")
    first.kill()
    second = worker_factory(conf, name="w2@%h")
    wait_all_succeeded(results.client(0), ids, BACK_WITHIN)
    wait_for(lambda: queue_empty(rabbit), BACK_WITHIN, "the queue to drain, nothing unacked")
    # Every task ran: the results say so. rcelery writes its log in 50 ms batches, so the killed
    # worker's last lines may be gone with it; the logs still bound the repeats.
    logged = successes(first, second)
    ran_at_least_once([t for t in ids if t in logged], first, second, broken_links=1,
                      window=WINDOW)
    assert second.alive()


def test_no_broker_at_start_then_it_comes(rabbit, redis_factory, worker_factory, producer_factory):
    """broker_connection_retry_on_startup (Celery's default): the broker application is down
    when the worker starts; the worker waits instead of exiting, connects when it is up, and
    works. The password never shows in the log."""
    results = redis_factory()
    rabbit.stop_app()
    worker = worker_factory(amqp_config(rabbit, results.url(0)), wait_ready=False)
    time.sleep(3.0)
    assert worker.alive(), f"the worker exited without a broker:\n{worker.log_tail()}"
    assert "ready." not in worker.log()
    rabbit.start_app()
    worker.wait_ready(BACK_WITHIN)
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    ids = send_many(app, "tasks.add", [(1, 2)] * 10)
    wait_all_succeeded(results.client(0), ids, 30)
    assert_no_password(worker, rabbit)


def test_no_retry_on_startup_exits_with_a_masked_error(rabbit, redis_factory, worker_factory):
    """`broker_connection_retry_on_startup = False` and no broker: the worker exits non-zero
    at once, naming the broker with its password masked."""
    results = redis_factory()
    rabbit.stop_app()
    worker = worker_factory(amqp_config(rabbit, results.url(0),
                                        broker_connection_retry_on_startup=False),
                            wait_ready=False)
    assert worker.proc.wait(60) != 0
    log = worker.log()
    assert f"127.0.0.1:{rabbit.port}" in log, f"the log does not name the broker:\n{log[-2000:]}"
    assert_no_password(worker, rabbit)


def test_failover_list_moves_on_to_the_next_node(rabbit, redis_factory, worker_factory,
                                                  producer_factory):
    """`broker_url = "amqp://h1;amqp://h2"` (kombu's fail-over list): nothing answers at the
    first URL, so the worker moves on to the second at once and works there; the log names the
    URL that failed, password masked."""
    results = redis_factory()
    real = rabbit.url(rabbit.vhost)
    dead_port = free_port()
    dead = real.replace(f"127.0.0.1:{rabbit.port}/", f"127.0.0.1:{dead_port}/")
    conf = amqp_config(rabbit, results.url(0))
    conf["broker_url"] = f"{dead};{real}"
    worker = worker_factory(conf, wait_ready=False)
    worker.wait_ready(BACK_WITHIN)
    app = amqp_producer(producer_factory, rabbit, results.url(0))
    ids = send_many(app, "tasks.add", [(2, 2)] * 10)
    wait_all_succeeded(results.client(0), ids, 30)
    assert f"127.0.0.1:{dead_port}" in worker.log(), worker.log_tail()
    assert_no_password(worker, rabbit)
