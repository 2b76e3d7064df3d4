"""`rcelery inspect`, `rcelery control` and `rcelery status`: rcelery's own client of remote
control, against the worker under test (a Python worker or an rcelery one), printing as
Celery's `celery inspect` / `control` / `status` do (`celery/bin/control.py`)."""
import json
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from harness import effective_config, rcelery_binary, to_toml
from helpers import wait_raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`);
# Redis and RabbitMQ only: the filesystem transport has no broadcast (remote control).
pytestmark = [pytest.mark.every_broker, pytest.mark.broker("redis", "amqp")]

NODE = f"w1@{socket.gethostname()}"


def rcelery_cli(app, *args, timeout=60):
    """An rcelery client command with the suite's settings (its broker) in a TOML file."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "rcelery.toml"
        config.write_text(to_toml(effective_config(app)))
        cmd = [str(rcelery_binary()), "--config", str(config), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_inspect_ping(app, worker):
    done = rcelery_cli(app, "inspect", "ping", "-d", NODE, "-t", "10")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"->  {NODE}: OK", "        pong", "", "1 node online."]


def test_status_and_json(app, worker):
    done = rcelery_cli(app, "status", "-t", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"->  {NODE}: OK", "", "1 node online."]
    done = rcelery_cli(app, "inspect", "ping", "-j", "-d", NODE, "-t", "10")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {NODE: {"ok": "pong"}}


def test_control_revoke(app, worker, backend):
    task_id = str(uuid.uuid4())
    done = rcelery_cli(app, "control", "revoke", task_id, "-d", NODE, "-t", "10")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"->  {NODE}: OK", f"        tasks {{'{task_id}'}} flagged as revoked", "", "1 node online."]
    assert json.loads(wait_raw_result(backend, task_id, timeout=10))["status"] == "REVOKED"


def test_no_reply_exits_69(app, worker):
    done = rcelery_cli(app, "inspect", "ping", "-d", "nobody@nowhere", "-t", "0.5")
    assert done.returncode == 69
    assert "No nodes replied within time constraint" in done.stderr


def test_an_unknown_command_is_refused(app):
    done = rcelery_cli(app, "inspect", "nope")
    assert done.returncode == 2
    assert "Command nope not recognized. Available inspect commands:" in done.stderr
