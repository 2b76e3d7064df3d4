#!/usr/bin/env python
"""Capture what real Celery / kombu write with the filesystem transport and the file://
result backend -> golden/filesystem/:

- message.msg, message.name: a task message file as kombu's producer writes it (Celery's
  send_task of tasks.add(2, 3), JSON) and its file name;
- celery.exchange: the exchange table kombu writes when Celery declares its default queue;
- result_success, result_failure: the result files a real Python worker (--pool=solo) writes
  for tasks.add(2, 3) and for a task raising ValueError('boom').

Usage: python capture/capture_filesystem.py [--out DIR]. Never edit the outputs by hand.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent
OUT = FIXTURES / "golden" / "filesystem"

APP = textwrap.dedent('''
    import json, os
    from celery import Celery
    app = Celery("capture")
    app.conf.update(json.loads(os.environ["FS_CONF"]))

    @app.task(name="tasks.add")
    def add(x, y):
        return x + y

    @app.task(name="tasks.fail")
    def fail(message="boom"):
        raise ValueError(message)
''')


def wait(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def without_machine_paths(raw, root):
    """The traceback's file names, with this machine's folders replaced by placeholders."""
    import celery
    site = str(Path(celery.__file__).resolve().parent.parent)
    text = raw.decode().replace(site, "<site-packages>").replace(str(root), "<root>")
    return text.encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE"):
        os.environ.pop(var, None)
    root = Path(tempfile.mkdtemp(prefix="capture-fs-"))
    for d in ("queue", "processed", "control", "results"):
        (root / d).mkdir()
    conf = {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": str(root / "queue"), "data_folder_out": str(root / "queue"),
            "processed_folder": str(root / "processed"), "control_folder": str(root / "control"),
            "polling_interval": 0.1,
        },
        "result_backend": f"file://{root / 'results'}",
        "task_serializer": "json", "accept_content": ["json"], "result_serializer": "json",
        "timezone": "Asia/Shanghai",
    }
    (root / "capture_app.py").write_text(APP)
    os.environ["FS_CONF"] = json.dumps(conf)
    sys.path.insert(0, str(root))
    from capture_app import app  # noqa: E402

    ok = app.send_task("tasks.add", (2, 3))
    files = wait(lambda: sorted((root / "queue").glob("*.celery.msg")), "the message file")
    (out / "message.name").write_text(files[0].name + "\n")
    shutil.copyfile(files[0], out / "message.msg")
    shutil.copyfile(root / "control" / "celery.exchange", out / "celery.exchange")
    failed = app.send_task("tasks.fail")
    env = dict(os.environ, PYTHONPATH=str(root), C_FORCE_ROOT="1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "capture_app", "worker", "--pool=solo",
         "-Q", "celery", "-l", "warning", "--without-mingle", "--without-gossip",
         "--without-heartbeat"], cwd=root, env=env)
    try:
        for result, name in ((ok, "result_success"), (failed, "result_failure")):
            path = root / "results" / f"celery-task-meta-{result.id}"
            wait(lambda: path.exists() and path.stat().st_size > 0, name)
            time.sleep(0.2)
            (out / name).write_bytes(without_machine_paths(path.read_bytes(), root))
    finally:
        worker.terminate()
        worker.wait(30)
    shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
