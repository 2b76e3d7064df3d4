"""Run the worker under test: the rcelery binary or a real Python Celery worker.

Both get the same settings: rcelery through a generated rcelery.toml, Python Celery
through tasks/celery_config.py (broker from REDIS_MQ_*, or RCELERY_TEST_BROKER_URL when it
is not Redis, backend from
CELERY_RESULT_BACKEND, variants from RCELERY_FIXTURE_CONFIG as JSON).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import to_toml

FIXTURES = Path(__file__).resolve().parent.parent
REPO = FIXTURES.parent


def worker_kind():
    """'rust' (default) or 'python', from env RCELERY_WORKER."""
    kind = os.environ.get("RCELERY_WORKER", "rust").strip().lower()
    if kind not in ("rust", "python"):
        raise RuntimeError(f"RCELERY_WORKER must be 'python' or 'rust', not {kind!r}")
    return kind


def rcelery_binary():
    """Path of the rcelery binary: env RCELERY_BIN, else target/release/rcelery (built if missing)."""
    explicit = os.environ.get("RCELERY_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"RCELERY_BIN={explicit} is not an executable file")
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    binary = target / "release" / "rcelery"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    if not binary.exists():
        raise RuntimeError(f"cargo build --release did not produce {binary}")
    return str(binary)


class Worker:
    """One worker process (group). `conf` is an effective config (see config.effective_config)."""

    def __init__(self, conf, workdir, kind=None, pool=None, name="w1@%h", queues="default",
                 extra_env=None, extra_args=None, mingle=False):
        self.conf = conf
        self.kind = kind or worker_kind()
        self.pool = pool  # python only: None (prefork) or "solo"
        self.name = name
        self.queues = queues
        self.workdir = Path(workdir)
        self.extra_env = dict(extra_env or {})
        # Worker options both kinds take the same way (e.g. `--statedb PATH`).
        self.extra_args = list(extra_args or [])
        # An rcelery worker starts without mingle unless asked: mingle waits a second for
        # neighbours at every start, and the suites start hundreds of workers; test_mingle.py
        # asks for it.
        self.mingle = mingle
        self.proc = None
        self.log_path = None
        self.returncode = None

    # -- command lines ---------------------------------------------------------------------
    def command(self):
        conc = str(self.conf["worker_concurrency"])
        if self.kind == "rust":
            toml_path = self.workdir / "rcelery.toml"
            toml_path.write_text(to_toml(self.conf))
            no_mingle = [] if self.mingle else ["--without-mingle"]
            return [rcelery_binary(), "worker", "-A", "tasks", "-Q", self.queues, "-c", conc,
                    "-l", "info", "-n", self.name, "--config", str(toml_path), *no_mingle,
                    *self.extra_args]
        cmd = [sys.executable, "-m", "celery", "-A", "tasks.task", "worker", "-Q", self.queues,
               "-c", conc, "-l", "info", "-n", self.name]
        if self.pool:
            cmd.append(f"--pool={self.pool}")
        return cmd + self.extra_args

    def environment(self):
        env = dict(os.environ)
        env.pop("CELERY_BROKER_URL", None)
        env.update({"PYTHONUNBUFFERED": "1", "SEND_MAIL_SLEEP_SECONDS": "0"})
        if self.kind == "python":
            from urllib.parse import urlsplit
            broker_url = self.conf["broker_url"]
            python_only = {k: v for k, v in self.conf.items()
                           if k not in ("broker_url", "result_backend", "task_queues")}
            env.pop("RCELERY_TEST_BROKER_URL", None)
            env.pop("RCELERY_TEST_BROKER_OPTIONS", None)
            if broker_url.startswith(("redis://", "rediss://")):
                # The deployment's way: the URL built from Django's REDIS_MQ_* settings.
                u = urlsplit(broker_url)
                env.update({
                    "REDIS_MQ_HOST": u.hostname, "REDIS_MQ_PORT": str(u.port or 6379),
                    "REDIS_MQ_PASSWORD": u.password or "", "REDIS_MQ_DB": u.path.strip("/") or "0",
                })
            else:  # RabbitMQ, filesystem://: the URL as it is (the options go below)
                env["RCELERY_TEST_BROKER_URL"] = broker_url
            env.update({
                "CELERY_RESULT_BACKEND": self.conf["result_backend"],
                "RCELERY_FIXTURE_CONFIG": json.dumps(python_only),
                # Celery refuses to run as root while accepting pickle unless told so.
                "C_FORCE_ROOT": "1",
            })
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
        env.update(self.extra_env)
        return env

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout=60.0, wait_ready=True):
        """Start the worker and wait for its 'ready.' line; raise with the log if it never comes."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.workdir.glob("worker-*.log")))
        self.log_path = self.workdir / f"worker-{n + 1}.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=FIXTURES, env=self.environment(),
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        self.returncode = None
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} worker exited with {self.proc.returncode} before "
                                   f"ready; log:\n{self.log_tail()}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.kind} worker not ready within {timeout}s; log:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60.0):
        """Warm shutdown: SIGTERM the main process, SIGKILL the group after `timeout`. Returns rc."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        """kill -9 the whole process group (main process and pool children)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.returncode = self.proc.returncode

    def _reap_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stray pool children, if any
        except (ProcessLookupError, PermissionError):
            pass

    # -- logs ------------------------------------------------------------------------------
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_tail(self, lines=150):
        return "\n".join(self.log().splitlines()[-lines:])
