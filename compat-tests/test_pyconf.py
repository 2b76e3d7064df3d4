"""Settings read from the project's Celery app, as the Python worker sees them.

`rcelery -A tasks.task worker` in python-fixtures/ with no TOML file asks Python once (the
interpreter running this suite, through RCELERY_PYTHON) for the app's configuration:
`config_from_object('tasks.celery_config', silent=True, force=True)`, the broker URL built
from Django's REDIS_MQ_* settings, `Queue('default', Exchange('default', type='direct'),
routing_key='default', max_priority=10)`, pickle accepted, worker_concurrency=2.

These tests run the rcelery worker whatever RCELERY_WORKER says: they check how rcelery finds
its settings.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BROKER_DB, FIXTURES, PASSWORD, PORT, RESULT_DB
from harness import rcelery_binary

# About finding the settings: the broker URL these tests expect is the one the fixture app
# builds from Django's REDIS_MQ_* settings, i.e. the suite's Redis.
pytestmark = pytest.mark.broker("redis")

SECRET = "Hunter2Secret"


@pytest.fixture
def t(app):
    import tasks.task as tasks
    import tasks.async_tasks as async_tasks
    return tasks, async_tasks


@pytest.fixture
def quiet(workers):
    """No other worker consumes `default` while the test's own runs."""
    workers.stop()
    yield


class Rcelery:
    """One rcelery process started with a command line of the test's choosing."""

    def __init__(self, args, cwd, log_dir, env=None):
        self.log_path = Path(log_dir) / "rcelery.log"
        full_env = dict(os.environ)
        full_env.pop("CELERY_BROKER_URL", None)
        full_env.update({"RCELERY_PYTHON": sys.executable, "SEND_MAIL_SLEEP_SECONDS": "0"})
        full_env.update(env or {})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([os.path.abspath(rcelery_binary()), *args], cwd=cwd,
                                         env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"rcelery exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"rcelery not ready within {timeout}s:\n{self.log()}")

    def wait_exit(self, timeout=60.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"rcelery still running after {timeout}s:\n{self.log()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def started(tmp_path):
    procs = []

    def start(args, cwd=FIXTURES, env=None):
        proc = Rcelery(args, cwd, tmp_path, env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def banner_line(log, field):
    for line in log.splitlines():
        if f".> {field}:" in line:
            return line.split(f".> {field}:", 1)[1].strip()
    raise AssertionError(f"no {field} line in the banner:\n{log}")


def test_reads_the_celery_app_settings_and_runs_its_tasks(quiet, t, started):
    """No TOML: the app's own settings (Django-built broker URL, Queue object, pickle)."""
    tasks, async_tasks = t
    worker = started(["-A", "tasks.task", "worker", "-Q", "default", "-l", "info",
                      "-n", "pyconf@%h"]).wait_ready()
    log = worker.log()
    assert banner_line(log, "config").startswith("Celery app tasks.task (Python "), log
    assert banner_line(log, "transport") == f"redis://:**@127.0.0.1:{PORT}/{BROKER_DB}"
    assert banner_line(log, "results") == f"redis://:**@127.0.0.1:{PORT}/{RESULT_DB}"
    assert banner_line(log, "concurrency").startswith("2 "), "worker_concurrency = 2"
    assert "exchange=default(direct) key=default max_priority=10" in log
    assert PASSWORD not in log
    # The producer sends pickle (task_serializer): refused unless accept_content was read.
    add = tasks.add.delay(2, 3)
    assert add.get(timeout=30) == 5
    assert async_tasks.send_mail.delay("a@example.com").get(timeout=30) == "邮件发送成功 OK"
    high = tasks.echo.apply_async(("prio",), priority=9)
    assert high.get(timeout=30) == {"args": ["prio"], "kwargs": {}}
    assert worker.stop() == 0
    assert f"tasks.add[{add.id}] succeeded" in worker.log(), "this worker ran it"


def test_tasks_only_the_celery_app_has_are_listed(quiet, started):
    worker = started(["-A", "tasks.task", "worker", "-Q", "default", "-l", "info"]).wait_ready()
    log = worker.log()
    section = log.split("[tasks only in the Celery app: not run here]", 1)
    assert len(section) == 2, log
    assert "  . tasks.py_only" in section[1]
    assert "celery.chord_unlock" not in section[1]


def test_a_toml_file_given_wins_and_python_is_not_asked(quiet, t, started, tmp_path):
    tasks, _ = t
    toml = tmp_path / "mine.toml"
    toml.write_text(
        f'broker_url = "redis://:{PASSWORD}@127.0.0.1:{PORT}/{BROKER_DB}"\n'
        f'result_backend = "redis://:{PASSWORD}@127.0.0.1:{PORT}/{RESULT_DB}"\n'
        'accept_content = ["json", "pickle"]\nworker_concurrency = 3\n'
    )
    # A Python that cannot exist: asking it would fail the start.
    env = {"RCELERY_PYTHON": str(tmp_path / "no-such-python")}
    worker = started(["-A", "tasks.task", "worker", "-Q", "default", "-l", "info",
                      "--config", str(toml)],
                     env=env).wait_ready()
    log = worker.log()
    assert banner_line(log, "config") == str(toml)
    assert banner_line(log, "concurrency").startswith("3 ")
    assert "max_priority" not in log, "the queue comes from the TOML file (none declared)"
    assert tasks.add.delay(4, 5).get(timeout=30) == 9


def test_rcelery_toml_in_the_working_directory_wins(quiet, started, tmp_path):
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "rcelery.toml").write_text(
        f'broker_url = "redis://:{PASSWORD}@127.0.0.1:{PORT}/{BROKER_DB}"\nworker_concurrency = 1\n'
    )
    env = {"RCELERY_PYTHON": str(tmp_path / "no-such-python")}
    worker = started(["-A", "tasks.task", "worker", "-Q", "default", "-l", "info",
                      "--workdir", str(workdir)],
                     env=env).wait_ready()
    assert banner_line(worker.log(), "config") == "rcelery.toml"
    assert banner_line(worker.log(), "concurrency").startswith("1 ")


def test_the_built_in_demo_app_needs_no_python(quiet, started, tmp_path):
    """`-A tasks` where no tasks.py / tasks/ is: the compiled-in app, rcelery's defaults."""
    env = {"RCELERY_PYTHON": str(tmp_path / "no-such-python")}
    worker = started(["worker", "-A", "tasks", "-Q", "default", "-l", "info",
                      "-b", f"redis://:{PASSWORD}@127.0.0.1:{PORT}/{BROKER_DB}"],
                     cwd=tmp_path, env=env).wait_ready()
    assert banner_line(worker.log(), "config").startswith("defaults")


def test_an_import_error_is_clear_and_masks_passwords(redis_server, started, tmp_path):
    project = tmp_path / "broken"
    (project / "proj").mkdir(parents=True)
    (project / "proj" / "__init__.py").write_text("")
    (project / "proj" / "celery.py").write_text(
        "from celery import Celery\n"
        "app = Celery('proj')\n"
        f"raise ConnectionError('cannot reach redis://:{SECRET}@db.example:6379/0')\n"
    )
    worker = started(["-A", "proj.celery", "worker", "-Q", "default"], cwd=project)
    code = worker.wait_exit()
    log = worker.log()
    assert code != 0
    assert 'cannot load the Celery app "proj.celery"' in log, log
    assert "ConnectionError: cannot reach redis://:**@db.example:6379/0" in log, log
    assert 'proj/celery.py", line 3' in log, "the traceback's last lines are shown"
    assert SECRET not in log, log
    assert "ready." not in log


def test_a_missing_module_and_a_non_app_are_refused(redis_server, started, tmp_path):
    missing = started(["-A", "tasks.nothere", "worker"])
    assert missing.wait_exit() != 0
    assert "no module named 'tasks.nothere'" in missing.log(), missing.log()
    not_app = started(["-A", "tasks.task:add", "worker"])
    assert not_app.wait_exit() != 0
    assert "not a Celery app" in not_app.log(), not_app.log()


def test_a_missing_python_is_a_clear_error(redis_server, started, tmp_path):
    worker = started(["-A", "tasks.task", "worker"],
                     env={"RCELERY_PYTHON": str(tmp_path / "no-such-python")})
    assert worker.wait_exit() != 0
    assert "RCELERY_PYTHON=" in worker.log() and "is not an executable file" in worker.log()


def test_values_that_are_not_plain_data_are_converted_or_reported(quiet, t, started, tmp_path,
                                                                   backend):
    """timedelta -> seconds, sets/tuples -> lists, Queue objects in task_queues and routes;
    a router given as code and a crontab are left out with a note, not a failure."""
    tasks, _ = t
    project = tmp_path / "odd"
    (project / "proj").mkdir(parents=True)
    (project / "proj" / "__init__.py").write_text("from .celery import app\n")
    (project / "proj" / "celery.py").write_text(f"""
from datetime import timedelta
from celery import Celery
from celery.schedules import crontab
from kombu import Exchange, Queue

def router(name, args, kwargs, options, task=None, **kw):
    return None

app = Celery('proj')
app.conf.update(
    broker_url='redis://:{PASSWORD}@127.0.0.1:{PORT}/{BROKER_DB}',
    result_backend='redis://:{PASSWORD}@127.0.0.1:{PORT}/{RESULT_DB}',
    result_expires=timedelta(minutes=5),
    task_soft_time_limit=timedelta(seconds=2.5),
    accept_content={{'json', 'pickle'}},
    task_queues=(
        Queue('default', Exchange('default'), routing_key='default', max_priority=10),
        Queue('math', Exchange('m', type='direct'), routing_key='m',
              queue_arguments={{'x-max-priority': 4}}),
    ),
    task_routes=({{'tasks.mul': {{'queue': Queue('math')}}}}, router),
    beat_schedule={{'every-minute': {{'task': 'tasks.add', 'schedule': crontab(), 'args': (1, 2)}}}},
)
""")
    worker = started(["-A", "proj", "worker", "-l", "debug", "-n", "odd@%h"],
                     cwd=project).wait_ready()
    log = worker.log()
    assert banner_line(log, "config").startswith("Celery app proj ")
    assert "default          exchange=default(direct) key=default max_priority=10" in log, log
    assert "math             exchange=m(direct) key=m max_priority=4" in log, log
    result = tasks.add.delay(1, 2)
    assert result.get(timeout=30) == 3
    assert 0 < backend.ttl(f"celery-task-meta-{result.id}") <= 300, "result_expires = 5 min"
    worker.stop()
    log = worker.log()
    assert "task_routes[1]: a router given as code" in log, log
    assert '"beat_schedule"' in log and "crontab" in log, log
    assert PASSWORD not in log


def test_a_django_namespace_config_is_read(quiet, t, started, tmp_path):
    """`config_from_object('django.conf:settings', namespace='CELERY')`: CELERY_* Django
    settings, the timezone falling back to Django's TIME_ZONE."""
    tasks, _ = t
    project = tmp_path / "dj"
    (project / "site_").mkdir(parents=True)
    (project / "site_" / "__init__.py").write_text("")
    (project / "site_" / "settings.py").write_text(f"""
SECRET_KEY = 'x'
INSTALLED_APPS = []
DATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql', 'NAME': 'app',
                           'USER': 'postgres', 'PASSWORD': '{SECRET}', 'HOST': 'db',
                           'PORT': 5432}}}}
TIME_ZONE = 'Asia/Shanghai'
CELERY_BROKER_URL = 'redis://:{PASSWORD}@127.0.0.1:{PORT}/{BROKER_DB}'
CELERY_RESULT_BACKEND = 'redis://:{PASSWORD}@127.0.0.1:{PORT}/{RESULT_DB}'
CELERY_ACCEPT_CONTENT = ['json', 'pickle']
CELERY_WORKER_CONCURRENCY = 3
CELERY_RCELERY_RESULT_BUFFER = 77
""")
    (project / "site_" / "celery.py").write_text("""
import os
from celery import Celery
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_.settings')
app = Celery('site_')
app.config_from_object('django.conf:settings', namespace='CELERY')
""")
    env = {"CELERY_RESULT_BACKEND": "", "DJANGO_SETTINGS_MODULE": "site_.settings"}
    worker = started(["-A", "site_", "worker", "-Q", "default", "-l", "info"], cwd=project,
                     env=env).wait_ready()
    log = worker.log()
    assert banner_line(log, "transport") == f"redis://:**@127.0.0.1:{PORT}/{BROKER_DB}"
    assert banner_line(log, "results") == f"redis://:**@127.0.0.1:{PORT}/{RESULT_DB}"
    assert banner_line(log, "concurrency").startswith("3 ")
    result = tasks.add.delay(2, 2)
    assert result.get(timeout=30) == 4
    worker.stop()
    assert SECRET not in worker.log()
