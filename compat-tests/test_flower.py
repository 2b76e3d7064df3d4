"""Flower, the Celery monitor, watching the worker under test: a real Flower (pinned in
python-fixtures/requirements.txt) on this run's broker sees the worker online through its
heartbeats and lists its tasks with their state, arguments and runtime, from the worker's
task events alone. A screenshot of Flower's tasks page (headless Chromium, installed by
scripts/setup-browser.sh when missing) is left in $RCELERY_ARTEFACTS (default
target/artefacts/).

Passes against the Python worker (RCELERY_WORKER=python) and rcelery.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from harness.worker import FIXTURES, REPO
from helpers import wait_for

# Events need a broadcast exchange: Redis (Pub/Sub) and RabbitMQ; kombu's filesystem
# transport has none.
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode())


@pytest.fixture
def flower(mq, tmp_path):
    port = free_port()
    log = open(tmp_path / "flower.log", "wb")
    # Flower 2 refuses its API without authentication unless told to serve it openly.
    env = dict(os.environ, PYTHONUNBUFFERED="1", FLOWER_UNAUTHENTICATED_API="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "--broker", mq.url, "flower",
         "--address=127.0.0.1", f"--port={port}", "--persistent=False"],
        cwd=FIXTURES, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base), 30,
                 "Flower to answer", retry_errors=True)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _up(base):
    with urllib.request.urlopen(f"{base}/healthcheck", timeout=2) as r:
        return r.status == 200


def screenshot(url, name):
    """A PNG of `url` in headless Chromium; fails loudly when Chromium cannot be had."""
    setup = subprocess.run(["bash", str(REPO / "scripts" / "setup-browser.sh")],
                           capture_output=True, text=True)
    assert setup.returncode == 0, f"cannot install chromium: {setup.stderr}"
    chromium = shutil.which("chromium")
    assert chromium, "chromium not on PATH after scripts/setup-browser.sh"
    out_dir = Path(os.environ.get("RCELERY_ARTEFACTS") or REPO / "target" / "artefacts")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / name
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,900",
             "--virtual-time-budget=5000", f"--screenshot={out}", url],
            capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and out.exists() and out.stat().st_size > 0, \
        f"chromium screenshot failed ({run.returncode}): {run.stderr[-2000:]}"
    return out


def test_flower_sees_the_worker_and_its_tasks(workers, app, mq, kind, flower):
    import tasks.task as t
    workers.start({"worker_send_task_events": True})
    ok = t.add.apply_async((4, 5), serializer="json")
    failed = t.fail.apply_async(("boom",), serializer="json")
    assert ok.get(timeout=30) == 9

    def worker_online():
        status = get_json(f"{flower}/api/workers?status=true")
        return [name for name, alive in status.items() if name.startswith("w1@") and alive]
    online = wait_for(worker_online, 30, "Flower to see the worker online")

    def both_done():
        tasks = get_json(f"{flower}/api/tasks")
        a, b = tasks.get(ok.id), tasks.get(failed.id)
        if a and b and a.get("state") == "SUCCESS" and b.get("state") == "FAILURE":
            return a, b
        return None
    a, b = wait_for(both_done, 30, "Flower to list both tasks as done")
    assert (a["name"], a["args"], a["kwargs"], a["result"]) == ("tasks.add", "(4, 5)", "{}", "9")
    assert isinstance(a["runtime"], float) and a["runtime"] >= 0
    assert a["worker"] == online[0]
    assert b["name"] == "tasks.fail" and "boom" in b["exception"]

    shot = screenshot(f"{flower}/tasks", f"flower-tasks-{kind}-{mq.kind}.png")
    assert shot.stat().st_size > 10_000, "the screenshot looks empty"
