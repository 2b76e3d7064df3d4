"""Harness for the rcelery compatibility suite.

* a dedicated redis-server on env RCELERY_TEST_REDIS_PORT (default 6390), password 123456,
  no persistence; the suite fails (never skips) when it cannot start;
* every test starts from empty broker/result databases (db 3 / db 4);
* the worker under test is env RCELERY_WORKER=rust (default; the rcelery binary) or python
  (the real `celery -A tasks.task worker -Q default -c 2 -l info`), configured identically;
* `workers.ensure(overrides)` (re)starts the worker with variant settings; the worker's log
  is attached to the report of a failing test.
"""
import gc
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

from harness import RedisServer, Worker, effective_config, worker_kind  # noqa: E402

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
def app(redis_server):
    from tasks.task import app as celery_app
    import tasks.async_tasks  # noqa: F401  (registers send_mail on the producer side)
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
    return redis_server.client(BROKER_DB)


@pytest.fixture
def backend(redis_server):
    return redis_server.client(RESULT_DB)


@pytest.fixture(autouse=True)
def clean_redis(request, redis_server):
    """Flush everything before each test and re-declare the `default` queue binding."""
    redis_server.client().flushall()
    app = request.getfixturevalue("app")
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).declare()
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


def pytest_report_header(config):
    return f"rcelery compat: worker={worker_kind()} redis port={PORT}"
