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
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(FIXTURES))

from harness import RedisServer, Worker, effective_config  # noqa: E402

OUT = FIXTURES / "golden" / "django_db"
PASSWORD = "123456"
PG = "postgresql://postgres@127.0.0.1:5432"
TABLES = ("taskresult", "groupresult", "chordcounter")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Every write to the three tables, in order (a trigger per table fills it).
LOG_DDL = """
CREATE TABLE capture_log (n BIGSERIAL PRIMARY KEY, tbl TEXT, op TEXT, row JSONB,
                          at TIMESTAMPTZ DEFAULT clock_timestamp());
CREATE FUNCTION capture_write() RETURNS trigger AS $$
BEGIN
  INSERT INTO capture_log (tbl, op, row) VALUES (TG_TABLE_NAME, TG_OP,
    to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END));
  RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


def migrate(env):
    """`manage.py migrate` into the database `env` names (Django owns the tables)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                   cwd=FIXTURES, env=env, check=True)


class Masker:
    """Replaces volatile values by stable placeholders, consistently within one case."""

    def __init__(self, hostname):
        self.ids = {}
        self.hostname = hostname

    def id(self, value):
        if value not in self.ids:
            self.ids[value] = f"<id:{len(self.ids)}>"
        return self.ids[value]

    def text(self, s):
        if s is None:
            return None
        s = UUID.sub(lambda u: self.id(u.group(0)), s)
        s = s.replace(self.hostname, "<hostname>")
        s = re.sub(r'"pid": \d+', '"pid": "<pid>"', s)
        s = re.sub(r'File "[^"]+", line \d+, in \S+', "<frame>", s)
        return s


def dates(row):
    """The row's dates as facts: set or NULL (they come from two clocks, Python's for
    `date_created`/`date_done` and the database's `NOW()` for `date_started`, so their order
    is not a fact)."""
    return {k: ("set" if row[k] else None)
            for k in ("date_created", "date_started", "date_done") if k in row}


def mask_row(tbl, row, m):
    row = dict(row)
    row.pop("id", None)
    facts = dates(row)
    for k in ("date_created", "date_started", "date_done"):
        row.pop(k, None)
    for k, v in list(row.items()):
        if isinstance(v, str):
            row[k] = m.text(v)
    row.update(facts)
    return row


def read_log(db, after):
    import psycopg2
    conn = psycopg2.connect(f"{PG}/{db}")
    try:
        cur = conn.cursor()
        cur.execute("SELECT n, tbl, op, row FROM capture_log WHERE n > %s ORDER BY n", (after,))
        return cur.fetchall()
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
        migrate(dict(os.environ))
        conn = psycopg2.connect(f"{PG}/{name}")
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute(LOG_DDL)
        for t in TABLES:
            cur.execute(f"CREATE TRIGGER capture_{t} AFTER INSERT OR UPDATE OR DELETE ON "
                        f"django_celery_results_{t} FOR EACH ROW EXECUTE FUNCTION capture_write()")
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
                before = read_log(db, 0)
                after = before[-1][0] if before else 0
                fn()
                time.sleep(1.0)  # let trailing writes (chord counter deletion) land
                log = read_log(db, after)
                m = Masker(hostname)
                out = [{"table": tbl, "op": op, "row": mask_row(tbl, row, m)}
                       for _n, tbl, op, row in log]
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
