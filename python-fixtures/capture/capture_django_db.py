#!/usr/bin/env python
"""Capture how real Celery with django-celery-results (`result_backend = "django-db"`) fills
its tables: runs a real Python worker against a fresh PostgreSQL database migrated with
`manage.py migrate`, and records every write to `django_celery_results_taskresult`,
`_groupresult` and `_chordcounter` (a trigger copies each INSERT, UPDATE and DELETE into a
log table), for:

- success, failure, autoretry then success, `periodic_task_name` in the headers (as beat sends
  it), kwargs, with `result_extended` on and off, `task_track_started` on;
- a group saved with `.save()`, and a chord (its counter row created, decremented, deleted).

Volatile values are masked: task ids become `<id:N>` (numbered in order of appearance), dates
become `set` or NULL, the worker's hostname `<hostname>`, pids `<pid>`,
traceback lines with paths `<frame>`. Output: golden/django_db/<case>.json, a list of the
writes (operation + row) for each task; compat-tests/test_django_db_backend.py compares the
worker under test's rows with them.

Usage: python capture/capture_django_db.py [--port 6402]  (PostgreSQL at 127.0.0.1:5432,
user postgres, trust auth; a redis-server on PATH). Never edit the outputs by hand.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(FIXTURES))

from harness import RedisServer, Worker, effective_config  # noqa: E402
from harness.django_db import install_log, masked_writes, migrate, read_log  # noqa: E402

OUT = FIXTURES / "golden" / "django_db"
PASSWORD = "123456"
PG = "postgresql://postgres@127.0.0.1:5432"


def log_after(db, after):
    import psycopg2
    conn = psycopg2.connect(f"{PG}/{db}")
    try:
        return read_log(conn, after)
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("CAPTURE_REDIS_PORT", 6402)))
    args = parser.parse_args()

    import psycopg2
    name = f"rc_capture_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(f"{PG}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    server = RedisServer(args.port, PASSWORD).start()
    env_db = {"DJANGO_DB_ENGINE": "postgresql", "DJANGO_DB_NAME": name,
              "DJANGO_DB_HOST": "127.0.0.1", "DJANGO_DB_PORT": "5432",
              "DJANGO_DB_USER": "postgres", "DJANGO_DB_PASSWORD": ""}
    os.environ.update(env_db)
    os.environ.update({"REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(args.port),
                       "REDIS_MQ_PASSWORD": PASSWORD, "REDIS_MQ_DB": "3",
                       "CELERY_RESULT_BACKEND": "django-db"})
    os.environ.pop("RCELERY_FIXTURE_CONFIG", None)
    workdir = Path(tempfile.mkdtemp(prefix="capture-djdb-"))
    try:
        migrate(env_db)
        conn = psycopg2.connect(f"{PG}/{name}")
        install_log(conn)
        conn.close()
        capture(name, server, workdir)
    finally:
        server.stop()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def capture(db, server, workdir):
    from celery import chord, group
    from tasks.task import app
    import socket

    hostname = f"w1@{socket.gethostname()}"
    OUT.mkdir(parents=True, exist_ok=True)
    written = []

    def run(conf, cases):
        worker = Worker(effective_config(app, {"result_backend": "django-db", **conf}),
                        workdir / f"w{len(written)}", kind="python")
        worker.start()
        try:
            for case, fn in cases:
                before = log_after(db, 0)
                after = before[-1][0] if before else 0
                fn()
                time.sleep(1.0)  # let trailing writes (chord counter deletion) land
                out = masked_writes(log_after(db, after), hostname)
                path = OUT / f"{case}.json"
                path.write_text(json.dumps({"settings": conf, "writes": out}, indent=1,
                                           ensure_ascii=False, sort_keys=True) + "\n")
                written.append(path.name)
        finally:
            worker.stop()

    app.conf.result_backend = "django-db"

    def send(name, args=(), kwargs=None, **opts):
        return app.send_task(name, args, kwargs or {}, **opts)

    def ok():
        assert send("tasks.add", (2, 3)).get(timeout=30) == 5

    def kwargs():
        assert send("tasks.echo", ("邮件 OK",), {"n": 1}).get(timeout=30)

    def failure():
        r = send("tasks.fail", ("boom",))
        try:
            r.get(timeout=30)
        except ValueError:
            pass

    def retry():
        assert send("tasks.flaky", (1,)).get(timeout=30) == 1

    def periodic():
        assert send("tasks.add", (1, 1), headers={"periodic_task_name": "every-minute"}
                    ).get(timeout=30) == 2

    def started():
        assert send("tasks.sleep", (1,)).get(timeout=30) == 1

    def saved_group():
        res = group(app.signature("tasks.add").clone((i, 1)) for i in range(2)).apply_async()
        res.save()
        assert res.get(timeout=30) == [1, 2]

    def a_chord():
        header = group(app.signature("tasks.add").clone((i, i)) for i in range(2))
        assert chord(header, app.signature("tasks.xsum")).delay().get(timeout=30) == 2

    extended = {"result_extended": True, "task_track_started": True}
    run(extended, [("extended_success", ok), ("extended_kwargs", kwargs),
                   ("extended_failure", failure), ("extended_retry", retry),
                   ("extended_periodic", periodic), ("extended_started", started),
                   ("group_saved", saved_group), ("chord", a_chord)])
    plain = {"result_extended": False, "task_track_started": False}
    run(plain, [("plain_success", ok), ("plain_failure", failure),
                ("plain_periodic", periodic)])
    print("captured:", ", ".join(written))


if __name__ == "__main__":
    main()
