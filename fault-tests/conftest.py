"""Harness for the fault suite: real redis-servers that tests break, the rcelery worker under
test, and a real Python Celery producer.

Every test gets its own servers on free ports (`redis_factory`), its own worker(s)
(`worker_factory`) configured by a plain dict of Celery settings, and a Celery app
(`producer_factory`) that publishes with kombu exactly as a Django project does. Nothing is
mocked and nothing is skipped: a server that cannot be started fails the test.
"""
import gc
import itertools
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-fixtures"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Worker  # noqa: E402

# Each test gives its worker the URLs in its config; nothing may come from the environment.
for _var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RCELERY_FIXTURE_CONFIG"):
    os.environ.pop(_var, None)
from servers import FaultyRedis  # noqa: E402

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


@pytest.fixture
def worker_factory(tmp_path, request):
    """Starts rcelery workers (`Worker` from python-fixtures/harness); logs of a failing test
    are attached to its report."""
    started = []
    request.node._fault_workers = started

    def make(conf, wait_ready=True, **kw):
        kw.setdefault("kind", "rust")
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
