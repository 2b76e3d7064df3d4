"""kombu's filesystem transport and Celery's file:// result backend, both ways with real
Celery (issue 12 item 4): a Python producer sending to rcelery and reading results with
AsyncResult.get(); rcelery publishing to a real Python worker; two rcelery workers and a
Python worker on one folder, each message run exactly once; garbage files; and the embedded
default (no configuration at all).

These tests start their own workers on folders of their own (no Redis involved, beyond the
suite's autouse fixture)."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from celery import Celery

from harness.worker import rcelery_binary as _rcelery_binary
from helpers import wait_for

# Folders and workers of their own whatever RCELERY_TEST_BROKER says: once, in the Redis run.
pytestmark = pytest.mark.own_broker

N_TASKS = 45
SUCCEEDED = re.compile(r"Task tasks\.add\[([0-9a-f-]{36})\] succeeded")

PY_APP = textwrap.dedent('''
    """A Celery app on the filesystem transport (settings from env FS_CONF)."""
    import json
    import os

    from celery import Celery

    app = Celery("fsapp")
    app.conf.update(json.loads(os.environ["FS_CONF"]))


    @app.task(name="tasks.add")
    def add(x, y):
        return x + y


    @app.task(name="tasks.fail")
    def fail(message="boom", exc_type="ValueError"):
        raise ValueError(message)
''')


def rcelery_binary():
    """The binary, as an absolute path (these tests run it from their own folders)."""
    return os.path.abspath(_rcelery_binary())


def settings(root):
    """Celery settings for a filesystem broker and file:// backend under `root`."""
    queue = root / "queue"
    for d in ("queue", "processed", "control", "results"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(root / "processed"),
            "control_folder": str(root / "control"),
            "polling_interval": 0.1,
        },
        "result_backend": f"file://{root / 'results'}",
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
    }


def toml_for(conf):
    opts = conf["broker_transport_options"]
    lines = [f'broker_url = "{conf["broker_url"]}"', f'result_backend = "{conf["result_backend"]}"',
             'task_serializer = "json"']
    if conf.get("task_acks_late"):
        lines.append("task_acks_late = true")
    lines += ["", "[broker_transport_options]"]
    for k, v in opts.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def clean_env():
    env = dict(os.environ)
    for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RCELERY_FIXTURE_CONFIG",
                "DJANGO_SETTINGS_MODULE"):
        env.pop(var, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["C_FORCE_ROOT"] = "1"
    return env


class Proc:
    """A worker process with its log; stopped (group-wide) at the end of the test."""

    def __init__(self, cmd, cwd, log, env):
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=60.0):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            return "ready." in self.log()
        wait_for(ready, timeout, what=f"worker ready ({self.log_path})")
        return self

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(autouse=True)
def no_redis_backend_env(monkeypatch):
    """The suite's conftest points Celery at Redis through the environment, which Celery
    reads before the app's own settings: not here."""
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.stop()


def rcelery_worker(procs, root, conf, name, extra=()):
    toml = root / f"{name}.toml"
    toml.write_text(toml_for(conf))
    cmd = [rcelery_binary(), "worker", "-A", "tasks", "-Q", "celery", "-c", "2", "-l", "info",
           "-n", f"{name}@%h", "--config", str(toml), *extra]
    p = Proc(cmd, root, root / f"{name}.log", clean_env())
    procs.append(p)
    return p


def python_worker(procs, root, conf, name):
    (root / "fsapp.py").write_text(PY_APP)
    env = clean_env()
    env["FS_CONF"] = json.dumps(conf)
    env["PYTHONPATH"] = str(root)
    cmd = [sys.executable, "-m", "celery", "-A", "fsapp", "worker", "-Q", "celery", "-c", "2",
           "-P", "threads", "-l", "info", "-n", f"{name}@%h", "--without-mingle",
           "--without-gossip", "--without-heartbeat"]
    p = Proc(cmd, root, root / f"{name}.log", env)
    procs.append(p)
    return p


def producer(conf):
    app = Celery("producer", set_as_current=False)
    app.conf.update(conf)
    return app


def leftovers(root):
    """Task messages (and claims) still in the queue folder; a Python worker's own control
    messages (pidbox) are not counted."""
    return sorted(p.name for p in (root / "queue").iterdir()
                  if ".celery.msg" in p.name or "rcelery" in p.name or "." not in p.name)


def test_python_producer_to_rcelery_worker(tmp_path, procs):
    conf = settings(tmp_path)
    rcelery_worker(procs, tmp_path, conf, "rs").wait_ready()
    app = producer(conf)
    r = app.send_task("tasks.add", (2, 3))
    assert r.get(timeout=30) == 5
    failed = app.send_task("tasks.fail", kwargs={"message": "nope"})
    with pytest.raises(Exception) as info:
        failed.get(timeout=30)
    assert type(info.value).__name__ == "ValueError" and "nope" in str(info.value)
    # Celery's file backend layout: one file per key, the key/value meta in JSON.
    meta = json.loads((tmp_path / "results" / f"celery-task-meta-{r.id}").read_bytes())
    assert meta["status"] == "SUCCESS" and meta["result"] == 5 and meta["task_id"] == r.id
    # The queue binding kombu's producers look up, in kombu's table format.
    table = json.loads((tmp_path / "control" / "celery.exchange").read_text())
    assert ["celery", "", "celery"] in table
    wait_for(lambda: leftovers(tmp_path) == [], 10, what="queue folder empty")


def test_rcelery_publishes_to_python_worker(tmp_path, procs):
    conf = settings(tmp_path)
    python_worker(procs, tmp_path, conf, "py").wait_ready()
    python_table = (tmp_path / "control" / "celery.exchange").read_bytes()
    assert json.loads(python_table) == [["celery", "", "celery"]]
    toml = tmp_path / "call.toml"
    toml.write_text(toml_for(conf))
    out = subprocess.run([rcelery_binary(), "call", "tasks.add", "--args", "[4, 5]", "--wait",
                          "--timeout", "30", "--config", str(toml)],
                         cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "9"
    # What the real Celery worker wrote and what rcelery writes have the same layout.
    written = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("celery-task-meta-")]
    assert len(written) == 1
    py_meta = json.loads(written[0].read_bytes())
    assert py_meta["status"] == "SUCCESS" and py_meta["result"] == 9
    procs[0].stop()
    rcelery_worker(procs, tmp_path, conf, "rs").wait_ready()
    # rcelery finds kombu's binding and adds no second copy of it.
    assert (tmp_path / "control" / "celery.exchange").read_bytes() == python_table
    r = producer(conf).send_task("tasks.add", (1, 1))
    assert r.get(timeout=30) == 2
    rs_meta = json.loads((tmp_path / "results" / f"celery-task-meta-{r.id}").read_bytes())
    assert list(rs_meta) == list(py_meta)


def test_three_workers_one_folder_each_task_once(tmp_path, procs):
    conf = settings(tmp_path)
    workers = [rcelery_worker(procs, tmp_path, conf, "rs1"),
               rcelery_worker(procs, tmp_path, conf, "rs2"),
               python_worker(procs, tmp_path, conf, "py")]
    for w in workers:
        w.wait_ready()
    app = producer(conf)
    results = [app.send_task("tasks.add", (i, i)) for i in range(N_TASKS)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(N_TASKS)]
    ids = {r.id for r in results}

    def runs():
        seen = {}
        for w in workers:
            for task_id in SUCCEEDED.findall(w.log()):
                seen.setdefault(task_id, []).append(w.log_path.stem)
        return seen

    wait_for(lambda: set(runs()) == ids, 10, what="every task logged")
    seen = runs()
    twice = {t: who for t, who in seen.items() if len(who) != 1}
    assert not twice, f"tasks run more than once: {twice}"
    by_worker = {}
    for who in seen.values():
        by_worker[who[0]] = by_worker.get(who[0], 0) + 1
    print(f"tasks per worker: {by_worker}")
    wait_for(lambda: leftovers(tmp_path) == [], 10, what="queue folder empty")


def test_garbage_files_do_not_stop_the_worker(tmp_path, procs):
    conf = settings(tmp_path)
    conf["broker_transport_options"]["rcelery_max_message_bytes"] = 4096
    queue = tmp_path / "queue"
    (queue / "1_aaaa.celery.msg").write_bytes(b"not json at all")
    (queue / "2_bbbb.celery.msg").write_bytes(b"")
    (queue / "3_cccc.celery.msg").write_bytes(b'{"body": 1}')
    (queue / "4_dddd.celery.msg").write_bytes(b"[" * 10000)
    (queue / "notes.txt").write_bytes(b"not a message")
    rs = rcelery_worker(procs, tmp_path, conf, "rs").wait_ready()
    r = producer(conf).send_task("tasks.add", (20, 22))
    assert r.get(timeout=30) == 42
    wait_for(lambda: leftovers(tmp_path) == [], 15, what="garbage taken away")
    assert (queue / "notes.txt").exists()
    assert rs.proc.poll() is None
    assert "Received and deleted unknown message" in rs.log()


def test_no_configuration_uses_the_embedded_default(tmp_path, procs):
    env = clean_env()
    rs = Proc([rcelery_binary(), "worker", "-l", "info"], tmp_path, tmp_path / "default.log", env)
    procs.append(rs)
    rs.wait_ready()
    log = rs.log()
    assert "filesystem://" in log and "embedded default" in log
    assert "file://.rcelery/results" in log
    out = subprocess.run([rcelery_binary(), "call", "tasks.add", "--args", "[1, 2]", "--wait",
                          "--timeout", "30"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + rs.log()
    assert out.stdout.strip() == "3"
    assert (tmp_path / ".rcelery" / "results").is_dir()
    # The README's Python producer, on the same folder (relative to the working directory).
    snippet = textwrap.dedent('''
        from celery import Celery
        app = Celery(broker="filesystem://", backend="file://.rcelery/results")
        app.conf.broker_transport_options = {
            "data_folder_in": ".rcelery/queue", "data_folder_out": ".rcelery/queue",
            "processed_folder": ".rcelery/processed", "control_folder": ".rcelery/control",
        }
        print(app.send_task("tasks.add", (20, 22)).get(timeout=30))
    ''')
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def test_a_crashed_workers_message_stays_claimed_and_can_be_given_back(tmp_path, procs):
    """kill -9 mid-task (acks_late): the message is neither lost nor run by another worker;
    renaming the claimed file back (docs/compatibility.md) delivers it again."""
    conf = settings(tmp_path)
    conf["task_acks_late"] = True
    first = rcelery_worker(procs, tmp_path, conf, "rs1").wait_ready()
    app = producer(conf)
    r = app.send_task("tasks.sleep", (60,))
    wait_for(lambda: f"tasks.sleep[{r.id}] received" in first.log(), 30, what="task received")
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    claimed = [p for p in (tmp_path / "queue").iterdir() if p.name.endswith(".rcelery-claimed")]
    assert len(claimed) == 1 and ".celery.msg" in claimed[0].name
    second = rcelery_worker(procs, tmp_path, conf, "rs2").wait_ready()
    done = app.send_task("tasks.add", (1, 2))
    assert done.get(timeout=30) == 3
    assert r.id not in second.log() and claimed[0].exists()
    # The documented recovery: drop the suffix.
    claimed[0].rename(claimed[0].with_name(claimed[0].name.removesuffix(".rcelery-claimed")))
    wait_for(lambda: f"tasks.sleep[{r.id}] received" in second.log(), 30, what="given back")
    os.killpg(second.proc.pid, signal.SIGKILL)
    second.proc.wait()


def test_remote_control_over_the_folder(tmp_path, procs):
    """kombu ≥ 5.3's filesystem fanout: Celery's `inspect`/`control` reach an rcelery and a
    Python worker on one folder, each answers once; `rcelery inspect ping` does the same."""
    conf = settings(tmp_path)
    rcelery_worker(procs, tmp_path, conf, "rs").wait_ready()
    python_worker(procs, tmp_path, conf, "py").wait_ready()
    app = producer(conf)
    want = {f"rs@{os.uname().nodename}", f"py@{os.uname().nodename}"}

    def everyone_answers():
        replies = app.control.inspect(timeout=2.0).ping() or {}
        return set(replies) == want and all(r == {"ok": "pong"} for r in replies.values())
    wait_for(everyone_answers, 30, what="both workers answer ping")
    reply = app.control.inspect(destination=[f"rs@{os.uname().nodename}"], timeout=2.0).registered()
    assert "tasks.add" in reply[f"rs@{os.uname().nodename}"]
    (tmp_path / "rs.toml").write_text(toml_for(conf))
    out = subprocess.run([rcelery_binary(), "inspect", "ping", "--config", str(tmp_path / "rs.toml"),
                          "--timeout", "2"], cwd=tmp_path, env=clean_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "rs@" in out.stdout and "py@" in out.stdout and "pong" in out.stdout
    table = json.loads((tmp_path / "control" / "celery.pidbox.exchange").read_text())
    assert {q for _, _, q in table} == {f"{n}.celery.pidbox" for n in want}
