"""Celery's SQLAlchemy result backend (`db+postgresql://`, `db+mysql+pymysql://`,
`db+sqlite:///`): the worker under test writes the rows real Celery writes, real Celery's
`AsyncResult` reads them, and the worker reads rows Python wrote.

PostgreSQL and MariaDB are the machine's own servers (scripts/compat-tests.sh makes sure they
run); every test gets a fresh database, dropped afterwards.
"""
import datetime
import json
import os
import sqlite3
import uuid

import pytest
from celery import Celery, chord, group

from helpers import wait_for

PG = os.environ.get("RCELERY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MYSQL = os.environ.get("RCELERY_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")


class Database:
    """One fresh database of a dialect, with a plain DB-API connection for checks."""

    def __init__(self, dialect, tmp_path):
        self.dialect = dialect
        self.name = f"rc_{uuid.uuid4().hex[:12]}"
        if dialect == "postgresql":
            import psycopg2
            self._admin = psycopg2.connect(f"{PG}/postgres")
            self._admin.autocommit = True
            self._admin.cursor().execute(f"CREATE DATABASE {self.name}")
            self.url = f"db+{PG}/{self.name}"
            self._connect = lambda: psycopg2.connect(f"{PG}/{self.name}")
        elif dialect == "mysql":
            import pymysql
            host = MYSQL.split("@", 1)[1].split(":")[0]
            self._admin = pymysql.connect(host=host, user="root", autocommit=True)
            self._admin.cursor().execute(f"CREATE DATABASE {self.name}")
            self.url = f"db+{MYSQL}/{self.name}"
            self._connect = lambda: pymysql.connect(host=host, user="root", database=self.name,
                                                    autocommit=True)
        else:
            path = tmp_path / f"{self.name}.sqlite"
            self._admin = None
            self.url = f"db+sqlite:///{path}"
            self._connect = lambda: sqlite3.connect(path)

    def query(self, sql, params=()):
        conn = self._connect()
        try:
            cur = conn.cursor()
            cur.execute(sql.replace("%s", "?") if self.dialect == "sqlite" else sql, params)
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def drop(self):
        if self._admin is None:
            return
        cur = self._admin.cursor()
        if self.dialect == "postgresql":
            cur.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        else:
            cur.execute(f"DROP DATABASE IF EXISTS {self.name}")
        self._admin.close()


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def db(request, tmp_path, monkeypatch, workers):
    database = Database(request.param, tmp_path)
    # The settings module (both workers) reads the backend from this variable.
    monkeypatch.setenv("CELERY_RESULT_BACKEND", database.url)
    yield database
    workers.stop()
    database.drop()


def start(workers, db, **overrides):
    """(Re)starts the worker under test with its results in `db`."""
    return workers.start({"result_backend": db.url, **overrides})


def client_for(app, db, **conf):
    """A producer app like the deployment's, with its results in `db`."""
    client = Celery("client", broker=app.conf.broker_url, backend=db.url)
    client.conf.update(
        task_default_queue="default", task_serializer="pickle",
        accept_content=["json", "pickle"], result_serializer="json",
        timezone="Asia/Shanghai",
        broker_transport_options=app.conf.broker_transport_options, **conf)
    return client


def row(db, task_id):
    rows = db.query(
        "SELECT status, result, traceback, children, name, args, kwargs, worker, retries,"
        " queue, date_done FROM celery_taskmeta WHERE task_id = %s", (task_id,))
    return rows[0] if rows else None


def as_bytes(value):
    return None if value is None else bytes(value)


def test_results_are_rows_as_celery_writes_them(app, db, workers):
    start(workers, db, result_extended=True)
    client = client_for(app, db, result_extended=True)
    ok = client.send_task("tasks.add", (2, 3))
    assert ok.get(timeout=30) == 5
    bad = client.send_task("tasks.fail", ("boom",))
    with pytest.raises(ValueError, match="boom"):
        bad.get(timeout=30)
    text = client.send_task("tasks.echo", ("邮件发送成功 OK",), {"n": 1})
    assert text.get(timeout=30) == {"args": ["邮件发送成功 OK"], "kwargs": {"n": 1}}

    status, result, tb, children, name, args, kwargs, worker, retries, queue, done = row(db, ok.id)
    assert (status, as_bytes(result), tb, children) == ("SUCCESS", b"5", None, None)
    assert (name, as_bytes(args), as_bytes(kwargs)) == ("tasks.add", b"[2, 3]", b"{}")
    assert (retries, queue) == (0, "default") and worker
    # PostgreSQL keeps the instant in its session time zone (UTC here); MySQL and SQLite keep
    # the app timezone's wall-clock time, as SQLAlchemy's drivers write an aware datetime.
    if isinstance(done, str):
        done = datetime.datetime.fromisoformat(done)
    zone = datetime.timezone.utc if db.dialect == "postgresql" else datetime.timezone(
        datetime.timedelta(hours=8))
    now = datetime.datetime.now(zone).replace(tzinfo=None)
    assert abs((now - done).total_seconds()) < 60, (done, now)

    status, result, tb, *_ = row(db, bad.id)
    assert status == "FAILURE"
    assert as_bytes(result) == (
        b'{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}')
    assert "ValueError: boom" in tb
    # kombu's JSON escapes what is not ASCII.
    assert as_bytes(row(db, text.id)[1]) == (
        json.dumps({"args": ["邮件发送成功 OK"], "kwargs": {"n": 1}}).encode())


def test_a_started_row_has_no_date_done_and_no_extended_fields(app, db, workers):
    start(workers, db, task_track_started=True)
    client = client_for(app, db)
    r = client.send_task("tasks.sleep", (3,))
    wait_for(lambda: client.backend.get_task_meta(r.id)["status"] == "STARTED", 20, "STARTED")
    status, result, _tb, _ch, name, args, *_rest, done = row(db, r.id)
    assert (status, name, args, done) == ("STARTED", None, None, None)
    assert b'"pid"' in as_bytes(result) and b'"hostname"' in as_bytes(result)
    r.get(timeout=30)
    assert row(db, r.id)[0] == "SUCCESS"


def test_a_success_is_never_overwritten(app, db, workers):
    start(workers, db)
    client = client_for(app, db)
    task_id = str(uuid.uuid4())
    client.backend.store_result(task_id, 42, "SUCCESS")
    # The same id runs again (a redelivery) and fails this time: the SUCCESS stays.
    client.send_task("tasks.fail", ("again",), task_id=task_id)
    probe = client.send_task("tasks.add", (1, 1))
    assert probe.get(timeout=30) == 2
    assert row(db, task_id)[0] == "SUCCESS"
    assert client.AsyncResult(task_id).get(timeout=5) == 42


def test_rows_python_wrote_are_read_by_the_worker(app, db, workers):
    """`celery.chord_unlock` joins a header whose results Python stored."""
    start(workers, db)
    client = client_for(app, db)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i, task_id in enumerate(ids):
        client.backend.store_result(task_id, i * 10, "SUCCESS")
    body = client.signature("tasks.xsum")
    body.freeze()
    client.tasks["celery.chord_unlock"].apply_async(
        (str(uuid.uuid4()), body), {"result": [((t, None), None) for t in ids]}, queue="default")
    assert client.AsyncResult(body.id).get(timeout=30) == 30


# In the RabbitMQ subset: chord_unlock goes back through the broker while the results are rows.
@pytest.mark.every_broker
def test_a_chord_is_joined_by_chord_unlock(app, db, workers):
    start(workers, db)
    client = client_for(app, db)
    t = lambda name: client.signature(name)  # noqa: E731
    r = chord(group(t("tasks.add").clone((i, i)) for i in range(10)), t("tasks.xsum")).delay()
    assert r.get(timeout=60) == 90


def test_a_group_saved_by_python_is_restored(app, db, workers):
    start(workers, db)
    client = client_for(app, db)
    res = group(client.signature("tasks.add").clone((i, 1)) for i in range(3)).apply_async()
    res.save()
    assert res.get(timeout=30) == [1, 2, 3]
    restored = client.GroupResult.restore(res.id)
    assert [r.id for r in restored.results] == [r.id for r in res.results]
    assert db.query("SELECT COUNT(*) FROM celery_tasksetmeta")[0][0] == 1


def test_backend_cleanup_deletes_expired_rows(app, db, workers):
    start(workers, db, result_expires=60)
    client = client_for(app, db, result_expires=60)
    fresh = client.send_task("tasks.add", (1, 2))
    old = client.send_task("tasks.add", (3, 4))
    assert fresh.get(timeout=30) == 3 and old.get(timeout=30) == 7
    db.query("UPDATE celery_taskmeta SET date_done = %s WHERE task_id = %s",
             (datetime.datetime(2000, 1, 1), old.id))
    done = client.send_task("celery.backend_cleanup")
    wait_for(lambda: row(db, old.id) is None, 30, "the expired row deleted")
    assert row(db, fresh.id)[0] == "SUCCESS"
    done.get(timeout=30)


def _columns(db):
    if db.dialect == "sqlite":
        return sorted(tuple(r[1:4]) for t in ("celery_taskmeta", "celery_tasksetmeta")
                      for r in db.query(f"PRAGMA table_info({t})"))
    schema = "current_schema()" if db.dialect == "postgresql" else "DATABASE()"
    return sorted(db.query(
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable"
        f" FROM information_schema.columns WHERE table_schema = {schema}"
        " AND table_name LIKE 'celery_%%'"))


def _indexes(db):
    if db.dialect == "postgresql":
        return sorted(db.query("SELECT indexname, indexdef FROM pg_indexes"
                               " WHERE tablename LIKE 'celery_%%'"))
    if db.dialect == "mysql":
        return sorted(db.query(
            "SELECT table_name, index_name, column_name, non_unique FROM"
            " information_schema.statistics WHERE table_schema = DATABASE()"))
    return sorted(db.query("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))


def test_tables_are_created_as_celery_creates_them(app, db, workers, tmp_path, monkeypatch):
    start(workers, db)
    client = client_for(app, db)
    assert client.send_task("tasks.add", (1, 1)).get(timeout=30) == 2
    made_by_worker = (_columns(db), _indexes(db))
    (tmp_path / "python").mkdir()
    python_made = Database(db.dialect, tmp_path / "python")
    try:
        # Celery reads the backend from this variable before its own setting.
        monkeypatch.setenv("CELERY_RESULT_BACKEND", python_made.url)
        client_for(app, python_made).backend.store_result(str(uuid.uuid4()), 1, "SUCCESS")
        assert made_by_worker == (_columns(python_made), _indexes(python_made))
    finally:
        python_made.drop()
