"""`amqps://` on a real RabbitMQ TLS listener (the private node's, with a throw-away CA): the
worker verifies the server's certificate with `broker_use_ssl`'s `ca_certs`, as py-amqp does,
and works over it; a server signed by another CA is refused with a clear error, the password
masked. The same tests pass on the Python worker (`RCELERY_WORKER=python`)."""
import pytest
from kombu import Exchange, Queue

from conftest import worker_config
from faultlib import send_many, wait_all_succeeded
from harness.tls import make_certs

pytestmark = pytest.mark.amqp

# The deployment's queue (x-max-priority 10, as tasks/celery_config.py declares it for the
# Python worker).
QUEUES = [{"name": "default", "exchange": "default", "exchange_type": "direct",
           "routing_key": "default", "max_priority": 10}]


def tls_settings(ca):
    """broker_use_ssl as Celery users write it for py-amqp (`ssl.CERT_REQUIRED` is 2)."""
    return {"ca_certs": str(ca), "cert_reqs": 2}


def test_amqps_verifies_the_server_and_runs_tasks(rabbit, redis_factory, worker_factory,
                                                  producer_factory):
    results = redis_factory()
    url = rabbit.url(rabbit.vhost, tls=True)
    worker = worker_factory(worker_config(url, results.url(0), task_queues=QUEUES,
                                          broker_use_ssl=tls_settings(rabbit.tls_ca)))
    app = producer_factory(url, results.url(0))
    app.conf.broker_use_ssl = tls_settings(rabbit.tls_ca)
    app.conf.task_queues = (Queue("default", Exchange("default", type="direct"),
                                  routing_key="default", max_priority=10),)
    ids = send_many(app, "tasks.add", [(i, i) for i in range(20)])
    wait_all_succeeded(results.client(0), ids, 30)
    # Every connection of the test's vhost (the worker's and the producer's) is TLS
    # (`list_connections` lists the whole node's, whatever `-p` says).
    listed = rabbit.ctl("list_connections", "vhost", "ssl", "--no-table-headers",
                        "-q").stdout.splitlines()
    ours = [line.split("\t")[1] for line in listed if line.split("\t")[0] == rabbit.vhost]
    assert ours and set(ours) == {"true"}, listed
    assert rabbit.password not in worker.log()


def test_amqps_refuses_a_server_signed_by_another_ca(rabbit, redis_factory, worker_factory,
                                                     tmp_path):
    results = redis_factory()
    other_ca, _, _ = make_certs(tmp_path)
    conf = worker_config(rabbit.url(rabbit.vhost, tls=True), results.url(0), task_queues=QUEUES,
                         broker_use_ssl=tls_settings(other_ca),
                         broker_connection_retry_on_startup=False)
    worker = worker_factory(conf, wait_ready=False)
    assert worker.proc.wait(60) != 0
    log = worker.log()
    if worker.kind == "rust":
        # Celery says only that it gave up; rcelery says why.
        assert "certificate" in log.lower(), f"the log does not say why:\n{log[-3000:]}"
    assert rabbit.password not in log
