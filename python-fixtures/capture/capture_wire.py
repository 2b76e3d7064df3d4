#!/usr/bin/env python
"""Capture golden wire data from the installed real Celery / kombu on a private redis-server.

1. Sends every case of capture/cases.py with the real producer (no worker running) and
   reads the raw envelopes with LRANGE -> golden/messages/<case>.json.
2. Runs a real Python worker (--pool=solo) over them and reads the raw
   celery-task-meta-* strings -> golden/results/<case>.json.
3. Repeats for result_extended=True and task_track_started=True (STARTED read mid-run).

Usage: python capture/capture_wire.py [--port 6392] [--out DIR]   (env CAPTURE_REDIS_PORT also works)
--out (default golden/) lets the older line (.venv-5.5) capture elsewhere: see golden-5.5/README.md.
See golden/README.md for the file format. Never edit the outputs by hand.
"""
import argparse
import base64
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(FIXTURES))

from harness import RedisServer, Worker, effective_config  # noqa: E402

GOLDEN = FIXTURES / "golden"  # --out replaces it
PASSWORD = "123456"
BROKER_DB, RESULT_DB = 3, 4


def configure_env(port):
    """Point the fixture project at the private server (before importing tasks.task)."""
    os.environ.update({"REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(port),
                       "REDIS_MQ_PASSWORD": PASSWORD, "REDIS_MQ_DB": str(BROKER_DB),
                       "CELERY_RESULT_BACKEND": f"redis://:{PASSWORD}@127.0.0.1:{port}/{RESULT_DB}"})
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("RCELERY_FIXTURE_CONFIG", None)


def producer_apps():
    """The deployment app (protocol 2) and a twin configured with task_protocol=1."""
    from celery import Celery
    from tasks.task import app
    import tasks.async_tasks  # noqa: F401  (registers send_mail for the producer)
    v1 = Celery("celery")
    v1.config_from_object("tasks.celery_config", silent=True, force=True)
    v1.conf.task_protocol = 1
    return app, v1


def queue_messages(broker):
    """{task_id: (queue_key, raw_envelope)} for every list key of the broker db."""
    found = {}
    for key in broker.keys("*"):
        if broker.type(key) != b"list":
            continue
        for raw in broker.lrange(key, 0, -1):
            env = json.loads(raw)
            tid = env["headers"].get("id")
            if tid is None:  # protocol 1: everything is in the body
                tid = decode_body(env)["id"]
            found[tid] = (key.decode("latin-1"), raw.decode("utf-8"))
    return found


def decode_body(env):
    """The envelope body as Python data (json or pickle)."""
    body = base64.b64decode(env["body"])
    if env["content-type"] == "application/json":
        return json.loads(body)
    return pickle.loads(body)


def describe_body(env):
    """A readable decoding of the envelope body, for humans (not used by tests)."""
    if env["content-type"] == "application/json":
        return decode_body(env)
    return {"python_repr": repr(decode_body(env))}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def send_and_capture(apps, broker, cases, versions):
    app, v1 = apps
    from capture.cases import send
    for case in cases:
        send(v1 if case.protocol == 1 else app, case)
    msgs = queue_messages(broker)
    for case in cases:
        key, raw = msgs[case.task_id]
        env = json.loads(raw)
        write_json(GOLDEN / "messages" / f"{case.name}.json", {
            "case": case.name, "task_id": case.task_id, "task": case.task, "note": case.note,
            "queue_key": key, "raw": raw, "versions": versions,
            "readable_body": describe_body(env)})
    return msgs


def wait_results(backend, cases, timeout=60):
    """Wait until every case that stores a result reached its final state."""
    deadline = time.monotonic() + timeout
    pending = {c.task_id for c in cases if c.expect_result}
    while pending and time.monotonic() < deadline:
        for tid in list(pending):
            raw = backend.get(f"celery-task-meta-{tid}")
            if raw and json.loads(raw)["status"] in ("SUCCESS", "FAILURE"):
                pending.discard(tid)
        time.sleep(0.05)
    if pending:
        raise RuntimeError(f"no final result for {sorted(pending)}")


def record_results(backend, cases, versions):
    for case in cases:
        key = f"celery-task-meta-{case.task_id}"
        raw = backend.get(key)
        out = {"case": case.name, "task_id": case.task_id, "key": key, "state": case.state,
               "raw": raw.decode("utf-8") if raw is not None else None,
               "ttl": backend.ttl(key) if raw is not None else None, "children": [],
               "versions": versions}
        if raw is not None:
            for (child_id, _), _ in json.loads(raw).get("children") or []:
                ckey = f"celery-task-meta-{child_id}"
                child = backend.get(ckey)
                out["children"].append({"task_id": child_id, "key": ckey,
                                        "raw": child.decode("utf-8") if child else None})
        write_json(GOLDEN / "results" / f"{case.name}.json", out)


def run_pass(apps, server, workdir, cases, overrides, versions):
    """Send `cases`, capture envelopes, run a solo worker with `overrides`, capture results."""
    broker, backend = server.client(BROKER_DB), server.client(RESULT_DB)
    server.client().flushall()
    send_and_capture(apps, broker, cases, versions)
    worker = Worker(effective_config(apps[0], overrides), workdir, kind="python", pool="solo")
    worker.start()
    try:
        wait_results(backend, cases)
        time.sleep(0.5)  # let ignore_result tasks finish too
    finally:
        rc = worker.stop()
    if rc != 0:
        raise RuntimeError(f"worker exit code {rc}:\n{worker.log_tail()}")
    record_results(backend, cases, versions)


def capture_started(apps, server, workdir, case, versions):
    """Catch the STARTED state of a running task (task_track_started=True)."""
    broker, backend = server.client(BROKER_DB), server.client(RESULT_DB)
    server.client().flushall()
    send_and_capture(apps, broker, [case], versions)
    worker = Worker(effective_config(apps[0], {"task_track_started": True}), workdir,
                    kind="python", pool="solo")
    worker.start()
    key = f"celery-task-meta-{case.task_id}"
    try:
        deadline = time.monotonic() + 30
        raw = None
        while time.monotonic() < deadline:
            raw = backend.get(key)
            if raw and json.loads(raw)["status"] == "STARTED":
                break
            time.sleep(0.005)
        else:
            raise RuntimeError("STARTED state never seen")
        write_json(GOLDEN / "results" / f"{case.name}.json", {
            "case": case.name, "task_id": case.task_id, "key": key, "state": "STARTED",
            "raw": raw.decode("utf-8"), "ttl": backend.ttl(key), "children": [],
            "versions": versions})
        wait_results(backend, [case])
    finally:
        worker.stop()


def main():
    global GOLDEN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CAPTURE_REDIS_PORT", 6392)))
    parser.add_argument("--out", type=Path, default=None, help="directory to write (golden/)")
    args = parser.parse_args()
    GOLDEN = (args.out or GOLDEN).resolve()
    for sub in ("messages", "results"):
        (GOLDEN / sub).mkdir(parents=True, exist_ok=True)
    configure_env(args.port)
    import celery
    import kombu
    versions = {"celery": celery.__version__, "kombu": kombu.__version__}
    for sub in ("messages", "results"):
        for old in (GOLDEN / sub).glob("*.json"):
            old.unlink()
    server = RedisServer(args.port, PASSWORD).start()
    try:
        from capture.cases import CASES, EXTENDED_CASES, STARTED_CASE
        apps = producer_apps()
        with tempfile.TemporaryDirectory(prefix="rcelery-capture-") as tmp:
            run_pass(apps, server, Path(tmp) / "plain", CASES, {}, versions)
            run_pass(apps, server, Path(tmp) / "extended", EXTENDED_CASES,
                     {"result_extended": True}, versions)
            capture_started(apps, server, Path(tmp) / "started", STARTED_CASE, versions)
    finally:
        server.stop()
    print(f"wrote {len(list((GOLDEN / 'messages').glob('*.json')))} messages, "
          f"{len(list((GOLDEN / 'results').glob('*.json')))} results to {GOLDEN}")


if __name__ == "__main__":
    main()
