"""The deployment under test, built from its own parts.

* its services: a private redis-server with `requirepass`, and one fresh PostgreSQL database
  that holds Django's tables (`manage.py migrate`: django_celery_beat, django_celery_results,
  users) and Celery's result tables (`db+postgresql://`), as the deployment points both at
  its PostgreSQL;
* its environment: the variables python-fixtures/djproject/settings.py and
  tasks/celery_config.py read (REDIS_MQ_*, CELERY_RESULT_BACKEND, DJANGO_DB_*), plus, through
  RCELERY_FIXTURE_CONFIG, the deployment's settings the fixture config leaves at Celery's
  defaults (`result_expires=60`, `worker_max_tasks_per_child=100`, ...);
* its processes, started by their own command lines in the project directory: a worker line
  `celery -A tasks.task worker ...` runs with `celery` replaced by `rcelery` (env
  RCELERY_WORKER=rust, the default) or as is (RCELERY_WORKER=python); `celery beat` is always
  the real one.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "python-fixtures"
sys.path.insert(0, str(FIXTURES))

from harness import RedisServer, rcelery_binary, worker_kind  # noqa: E402
from harness.wait import wait_for  # noqa: E402,F401

# The machine's PostgreSQL (trust authentication: the password below is sent and ignored,
# which lets the test check that no log shows it).
PG = urlsplit(os.environ.get("RCELERY_TEST_PG", "postgresql://postgres@127.0.0.1:5432"))
PG_PASSWORD = "Pg-Deploy-Secret-7"
REDIS_PASSWORD = "Redis-Deploy-123456"
REDIS_PORT = int(os.environ.get("RCELERY_TEST_REDIS_PORT", "6390"))
BROKER_DB = 3

# What the deployment's Celery settings have and tasks/celery_config.py does not (the fixture
# keeps Celery's defaults there for the rest of the suites).
DEPLOYMENT_ONLY = {
    "result_expires": 60,
    "worker_max_tasks_per_child": 100,
    "worker_disable_rate_limits": True,
    "beat_scheduler": "django_celery_beat.schedulers:DatabaseScheduler",
}


class Database:
    """A fresh PostgreSQL database, dropped at the end."""

    def __init__(self):
        import psycopg2

        self.name = f"rcdeploy_{uuid.uuid4().hex[:12]}"
        self.host, self.port, self.user = PG.hostname, PG.port or 5432, PG.username or "postgres"
        self._admin = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                       dbname="postgres")
        self._admin.autocommit = True
        self._admin.cursor().execute(f"CREATE DATABASE {self.name}")

    def result_backend(self):
        """The deployment's result backend URL (with the password it writes)."""
        return (f"db+postgresql://{self.user}:{PG_PASSWORD}@{self.host}:{self.port}/"
                f"{self.name}")

    def query(self, sql, params=()):
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                dbname=self.name)
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def drop(self):
        self._admin.cursor().execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self._admin.close()


def environment(database):
    """The deployment's environment: Redis coordinates, result backend, Django database."""
    return {
        "REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(REDIS_PORT),
        "REDIS_MQ_PASSWORD": REDIS_PASSWORD, "REDIS_MQ_DB": str(BROKER_DB),
        "CELERY_RESULT_BACKEND": database.result_backend(),
        "DJANGO_DB_ENGINE": "postgresql", "DJANGO_DB_NAME": database.name,
        "DJANGO_DB_HOST": database.host, "DJANGO_DB_PORT": str(database.port),
        "DJANGO_DB_USER": database.user, "DJANGO_DB_PASSWORD": PG_PASSWORD,
        "RCELERY_FIXTURE_CONFIG": json.dumps(DEPLOYMENT_ONLY),
        "DJANGO_SETTINGS_MODULE": "djproject.settings",
    }


def worker_argv(line):
    """A deployment's worker command line (`celery -A ... worker ...`) as the worker under
    test runs it: `celery` replaced by `rcelery`, or the real `celery` of this Python."""
    argv = shlex.split(line)
    assert argv[0] == "celery", line
    if worker_kind() == "rust":
        return [os.path.abspath(rcelery_binary()), *argv[1:]]
    return [sys.executable, "-m", "celery", *argv[1:]]


class Process:
    """One process of the deployment, its output in a log file."""

    def __init__(self, argv, env, log_path, cwd=FIXTURES):
        self.argv, self.log_path = argv, Path(log_path)
        full = dict(os.environ)
        full.pop("CELERY_BROKER_URL", None)
        full.update(env)
        full.update({
            "PYTHONUNBUFFERED": "1",
            # The deployment's send_mail sleeps 5 s; 1 s here.
            "SEND_MAIL_SLEEP_SECONDS": "1",
            # rcelery asks this Python for the Celery app's settings.
            "RCELERY_PYTHON": sys.executable,
            # Celery refuses to run as root while accepting pickle unless told so.
            "C_FORCE_ROOT": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURES),
                                                        os.environ.get("PYTHONPATH")])),
        })
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=full, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_log(self, text, timeout=90.0):
        """Wait until `text` is in the log; fail at once if the process exits first."""
        def seen():
            if text in self.log():
                return True
            assert self.alive(), (f"{self.argv[:4]} exited with {self.proc.returncode} "
                                  f"before {text!r}:\n{self.log()[-5000:]}")
            return False
        try:
            wait_for(seen, timeout, f"{text!r} in {self.log_path.name}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.log()[-5000:]}") from None
        return self

    def stop(self, timeout=60.0):
        """Warm stop (SIGTERM), then SIGKILL of the process group; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # pool children, if any are left
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        return self.proc.returncode


def start_redis():
    return RedisServer(REDIS_PORT, REDIS_PASSWORD).start()


def migrate(env, log_path):
    """`python manage.py migrate` in the project directory; fail loudly with its output."""
    full = dict(os.environ)
    full.update(env)
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], cwd=FIXTURES,
                          env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300)
    Path(log_path).write_bytes(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py migrate failed ({done.returncode}):\n"
                           f"{done.stdout.decode(errors='replace')}")
