"""Harness for the rcelery compatibility suite.

* a dedicated redis-server on env RCELERY_TEST_REDIS_PORT (default 6390), password 123456,
  no persistence; the suite fails (never skips) when it cannot start;
* the broker is env RCELERY_TEST_BROKER=redis (default; db 3 of that server) | amqp (a vhost
  of this run's own on the machine's RabbitMQ) | filesystem (folders of this run's own), see
  harness/brokers.py; the result backend is Redis db 4 on every broker;
* tests marked `broker("redis", ...)` run on the brokers named only, tests marked
  `own_broker` (they start brokers of their own) only in the default Redis run: the others
  are deselected, not skipped, and the run says how many;
* every test starts from an empty broker and result database, the fixture queues declared;
* the worker under test is env RCELERY_WORKER=rust (default; the rcelery binary) or python
  (the real `celery -A tasks.task worker -Q default -c 2 -l info`), configured identically;
* `workers.ensure(overrides)` (re)starts the worker with variant settings; the worker's log
  is attached to the report of a failing test.
"""
import gc
import json
import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "python-fixtures"
sys.path.insert(0, str(FIXTURES))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PORT = int(os.environ.get("RCELERY_TEST_REDIS_PORT", "6390"))
PASSWORD = "123456"
BROKER_DB, RESULT_DB = 3, 4

# The producer side (this process) reads the same settings module as the Python worker.
os.environ.update({
    "REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(PORT), "REDIS_MQ_PASSWORD": PASSWORD,
    "REDIS_MQ_DB": str(BROKER_DB),
    "CELERY_RESULT_BACKEND": f"redis://:{PASSWORD}@127.0.0.1:{PORT}/{RESULT_DB}",
})
for _var in ("CELERY_BROKER_URL", "RCELERY_FIXTURE_CONFIG"):
    os.environ.pop(_var, None)

from harness import (RedisServer, Worker, broker_kind, effective_config, make_broker,  # noqa: E402
                     worker_kind)

BROKER_KIND = broker_kind()
# The broker under test; a Redis one needs the server, made in the redis_server fixture.
_BROKER = None if BROKER_KIND == "redis" else make_broker(BROKER_KIND)
if _BROKER is not None:
    # The producer (this process) and the Python worker read these in tasks/celery_config.py.
    os.environ["RCELERY_TEST_BROKER_URL"] = _BROKER.url
    if _BROKER.transport_options:
        os.environ["RCELERY_TEST_BROKER_OPTIONS"] = json.dumps(_BROKER.transport_options)
else:
    os.environ.pop("RCELERY_TEST_BROKER_URL", None)
    os.environ.pop("RCELERY_TEST_BROKER_OPTIONS", None)

_MANAGER = None


class WorkerManager:
    """Keeps one worker running with a given set of setting overrides."""

    def __init__(self, app, workdir):
        self.app = app
        self.workdir = Path(workdir)
        self.current = None
        self.overrides = None
        self.started = []  # every Worker started, for log reporting

    def ensure(self, overrides=None, **kw):
        """Make sure a worker with exactly `overrides` runs; restart it otherwise."""
        overrides = dict(overrides or {})
        if self.current and self.current.alive() and self.overrides == overrides and not kw:
            return self.current
        return self.start(overrides, **kw)

    def start(self, overrides=None, **kw):
        """Stop any running worker, start a new one (waits for 'ready.')."""
        self.stop()
        self.overrides = dict(overrides or {})
        conf = effective_config(self.app, self.overrides)
        self.current = Worker(conf, self.workdir / f"w{len(self.started) + 1}", **kw)
        self.started.append(self.current)
        self.current.start()
        return self.current

    def stop(self, timeout=60.0):
        """Warm-stop the current worker; returns its exit code (None if none ran)."""
        worker, self.current = self.current, None
        return worker.stop(timeout) if worker else None

    def kill(self):
        """kill -9 the current worker's whole process group."""
        worker, self.current = self.current, None
        if worker:
            worker.kill()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer(PORT, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mq(redis_server):
    """The broker under test (harness/brokers.py): `kind`, `url`, `ready(queue)`,
    `unacked()`; broker-neutral, so tests that count messages run on every broker."""
    global _BROKER
    if _BROKER is None:
        _BROKER = make_broker("redis", redis_server, BROKER_DB)
    _BROKER.start()
    yield _BROKER
    _BROKER.stop()


@pytest.fixture(scope="session")
def app(redis_server, mq):
    from tasks.task import app as celery_app
    import tasks.async_tasks  # noqa: F401  (registers send_mail on the producer side)
    assert celery_app.conf.broker_url == mq.url, (celery_app.conf.broker_url, mq.url)
    mq.app = celery_app
    yield celery_app
    # Let AsyncResult finalizers unsubscribe while the server is still up.
    gc.collect()


@pytest.fixture(scope="session")
def workers(app, tmp_path_factory):
    global _MANAGER
    _MANAGER = WorkerManager(app, tmp_path_factory.mktemp("workers"))
    yield _MANAGER
    _MANAGER.stop()


@pytest.fixture
def broker(redis_server):
    """The Redis broker database itself, for tests about kombu's Redis layout (they are
    marked `broker("redis")`); broker-neutral tests use `mq`."""
    if BROKER_KIND != "redis":
        raise RuntimeError("this test reads Redis keys: mark it @pytest.mark.broker('redis') "
                           "or use the broker-neutral `mq` fixture")
    return redis_server.client(BROKER_DB)


@pytest.fixture
def backend(redis_server):
    return redis_server.client(RESULT_DB)


@pytest.fixture(autouse=True)
def clean_redis(request, redis_server):
    """Flush the Redis server (results), empty the broker and declare the fixture queues."""
    redis_server.client().flushall()
    request.getfixturevalue("app")
    request.getfixturevalue("mq").clean()
    if _MANAGER is not None:
        request.node._workers_before = len(_MANAGER.started)


@pytest.fixture
def worker(workers):
    """The default worker (settings exactly as tasks/celery_config.py)."""
    return workers.ensure({})


@pytest.fixture(scope="session")
def kind():
    return worker_kind()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _MANAGER is not None:
        first = max(getattr(item, "_workers_before", 1) - 1, 0)
        for w in _MANAGER.started[first:]:
            report.sections.append((f"{w.kind} worker log {w.log_path}", w.log_tail(200)))


def pytest_configure(config):
    config.addinivalue_line("markers", "broker(*kinds): runs on these brokers only (redis, "
                            "amqp, filesystem); deselected on the others")
    config.addinivalue_line("markers", "own_broker: starts brokers of its own, whatever "
                            "RCELERY_TEST_BROKER says: runs in the Redis run only")
    config.addinivalue_line("markers", "every_broker: the representative subset CI runs on "
                            "RabbitMQ (`-m every_broker`); every applicable test runs without -m")


def applies(item, kind=BROKER_KIND):
    """Whether `item` runs on broker `kind` (see the markers above)."""
    if item.get_closest_marker("own_broker") is not None:
        return kind == "redis"
    marker = item.get_closest_marker("broker")
    return marker is None or kind in marker.args


_DESELECTED = []


def pytest_collection_modifyitems(config, items):
    """Deselect (not skip) the tests that do not apply to this run's broker."""
    keep = [item for item in items if applies(item)]
    gone = [item for item in items if not applies(item)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = keep
        _DESELECTED.extend(gone)


def pytest_terminal_summary(terminalreporter):
    if _DESELECTED:
        terminalreporter.write_line(f"rcelery compat: {len(_DESELECTED)} tests deselected as not "
                                    f"applying to broker {BROKER_KIND}")


def pytest_report_header(config):
    return (f"rcelery compat: worker={worker_kind()} broker={BROKER_KIND} "
            f"redis port={PORT}")
