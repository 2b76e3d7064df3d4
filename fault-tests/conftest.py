"""Harness for the fault suite: real redis-servers that tests break, the rcelery worker under
test, and a real Python Celery producer.

Every test gets its own servers on free ports (`redis_factory`), its own worker(s)
(`worker_factory`) configured by a plain dict of Celery settings, and a Celery app
(`producer_factory`) that publishes with kombu exactly as a Django project does. Nothing is
mocked and nothing is skipped: a server that cannot be started fails the test.
"""
import gc
import itertools
import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-fixtures"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Worker, worker_kind  # noqa: E402

# Each test gives its worker the URLs in its config; nothing may come from the environment.
for _var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RCELERY_FIXTURE_CONFIG"):
    os.environ.pop(_var, None)
from servers import FaultyRedis, PrivateRabbit  # noqa: E402

_apps = itertools.count()


def worker_config(broker_url, backend_url, **overrides):
    """The settings the fault tests run with (the deployment's, JSON only), plus overrides."""
    conf = {
        "broker_url": broker_url,
        "result_backend": backend_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "default",
        "task_acks_late": True,
        "worker_prefetch_multiplier": 4,
        "worker_concurrency": 2,
        "result_expires": 3600,
        "result_extended": False,
        "task_track_started": False,
        "timezone": "UTC",
        "task_queues": [{"name": "default", "exchange": "default", "exchange_type": "direct",
                         "routing_key": "default"}],
        "broker_transport_options": {"visibility_timeout": 10},
    }
    bto = overrides.pop("broker_transport_options", {})
    conf["broker_transport_options"] = {**conf["broker_transport_options"], **bto}
    conf.update(overrides)
    return conf


@pytest.fixture
def redis_factory():
    """Starts FaultyRedis servers; all are stopped at the end of the test."""
    started = []

    def make(**kw):
        server = FaultyRedis(**kw).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def rabbit_node():
    """One private RabbitMQ node for the whole run (an Erlang VM takes seconds to boot);
    each test gets a vhost of its own on it (`rabbit`). Stopped at the end of the run."""
    node = PrivateRabbit().start()
    yield node
    node.stop()


@pytest.fixture
def rabbit(rabbit_node, request):
    """The private RabbitMQ node, its application running (a previous test may have stopped
    or killed it), with a new vhost named after the test in `rabbit.vhost` (left in place:
    the node and its data go at the end of the run)."""
    if rabbit_node.proc.poll() is not None:
        rabbit_node.start()
    elif not rabbit_node.app_running():
        rabbit_node.start_app()
    vhost = "t-" + re.sub(r"[^\w-]", "-", request.node.name)[:60]
    rabbit_node.vhost = rabbit_node.add_vhost(vhost)
    return rabbit_node


def python_worker_env(conf):
    """Environment for a Python Celery worker whose broker is not Redis: the fixtures'
    celery_config builds a Redis URL from REDIS_MQ_*, so the URL goes in with the variant
    settings (applied last)."""
    if conf["broker_url"].startswith(("redis://", "rediss://")):
        return {}
    python_only = {k: v for k, v in conf.items() if k not in ("result_backend", "task_queues")}
    return {"RCELERY_FIXTURE_CONFIG": json.dumps(python_only)}


@pytest.fixture
def worker_factory(tmp_path, request):
    """Starts workers (`Worker` from python-fixtures/harness): rcelery, or the real Python
    Celery worker with the same settings when env RCELERY_WORKER=python (or `kind="python"`),
    to check that a test states Celery's behaviour. Logs of a failing test are attached to
    its report."""
    started = []
    request.node._fault_workers = started

    def make(conf, wait_ready=True, **kw):
        kw.setdefault("kind", worker_kind())
        if kw["kind"] == "python":
            kw["extra_env"] = {**python_worker_env(conf), **kw.get("extra_env", {})}
        w = Worker(conf, tmp_path / f"worker{len(started) + 1}", **kw)
        started.append(w)
        w.start(wait_ready=wait_ready)
        return w

    yield make
    for w in started:
        if w.alive():
            w.kill()


@pytest.fixture
def producer_factory():
    """A Python Celery app publishing to `broker_url` and reading results from
    `backend_url`, with kombu's connection retry on (as Celery's defaults)."""
    apps = []

    def make(broker_url, backend_url):
        from celery import Celery
        app = Celery(f"faults{next(_apps)}", broker=broker_url, backend=backend_url)
        app.conf.update(task_default_queue="default", task_serializer="json",
                        result_serializer="json", accept_content=["json"],
                        broker_connection_retry=True,
                        task_publish_retry_policy={"max_retries": 100, "interval_start": 0.1,
                                                   "interval_step": 0.2, "interval_max": 1.0})
        apps.append(app)
        return app

    yield make
    # Let AsyncResult finalizers unsubscribe while the servers are still up.
    gc.collect()
    for app in apps:
        app.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for w in getattr(item, "_fault_workers", []) or []:
            report.sections.append((f"worker log {w.log_path}", w.log_tail(150)))
        rabbit = getattr(item, "funcargs", {}).get("rabbit")
        if rabbit is not None:
            report.sections.append((f"RabbitMQ {rabbit.node}", rabbit.diagnostics(rabbit.vhost)))


SUCCEEDED = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] succeeded")


def successes(*workers):
    """How many times each task id succeeded, over the logs of `workers`."""
    counts = {}
    for w in workers:
        for task_id in SUCCEEDED.findall(w.log()):
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def ran_exactly_once(ids, *workers, timeout=5.0, republished=()):
    """Asserts that each id succeeded exactly once over the workers' logs; ids in
    `republished` (a producer's retried publish may have put two copies on the queue) may
    have run twice. Log lines are written in batches (within 50 ms), so the last ones are
    waited for a little."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        counts = successes(*workers)
        never = [t for t in ids if t not in counts]
        if not never or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    twice = {t: c for t, c in counts.items() if c > (2 if t in republished else 1)}
    assert twice == {}, f"{len(twice)} task(s) ran more than once, e.g. {list(twice.items())[:3]}"
    assert never == [], f"{len(never)} task(s) never ran (by the worker logs), e.g. {never[:3]}"


def ran_at_least_once(ids, *workers, broken_links, window, timeout=5.0, republished=()):
    """AMQP's at-least-once, bounded: each id succeeded at least once over the workers' logs,
    and the repeats are no more than the broker can hand out again.

    RabbitMQ delivers a message again only when the channel it was delivered on closed before
    the message was acked (`redelivered` set). While a channel is open, at most `window`
    (the worker's basic.qos prefetch count) of its deliveries are unacked. So each broken
    channel (`broken_links`: outages, forced closes, killed workers) can cause at most `window`
    repeats in all, and one message at most one repeat per broken channel. A publish the
    producer retried (`republished`) may be on the queue twice: two messages of one id.
    Returns {id: repeats}."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        counts = successes(*workers)
        never = [t for t in ids if t not in counts]
        if not never or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert never == [], f"{len(never)} task(s) never ran (by the worker logs), e.g. {never[:3]}"
    copies = {t: 2 if t in republished else 1 for t in counts}
    repeats = {t: c - copies[t] for t, c in counts.items() if c > copies[t]}
    too_often = {t: r for t, r in repeats.items() if r > broken_links * copies[t]}
    assert too_often == {}, f"task(s) repeated more often than channels broke: {list(too_often.items())[:3]}"
    total = sum(repeats.values())
    assert total <= broken_links * window, \
        f"{total} repeated runs, more than {broken_links} broken channel(s) x prefetch {window} allow"
    return repeats
