"""The `django-db` result backend (django-celery-results): the worker under test writes the
rows real Celery + django-celery-results write (golden/django_db/, captured by
python-fixtures/capture/capture_django_db.py), Django's ORM and `AsyncResult.get()` read them,
and a chord whose header runs on a Python worker and on the worker under test fires its body
once, through django-celery-results' `chordcounter` table.

Every test gets a fresh database migrated with `manage.py migrate` (Django owns the tables);
the worker under test gets it as a user gives it: `database_url` in its config (rcelery.toml;
the Python worker's Django reads the same DJANGO_DB_* variables the fixture project's
settings read), or, started with `-A`, from Django's `DATABASES`. This process's Django is
pointed at the same database for the ORM assertions.
"""
import json
import os
import uuid
from pathlib import Path

import pytest
from celery import Celery, chord, group

from conftest import FIXTURES
from harness import Worker, effective_config
from harness.django_db import install_log, masked_writes, migrate, read_log
from helpers import wait_for
from test_pyconf import Rcelery

PG = os.environ.get("RCELERY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MYSQL_HOST = os.environ.get("RCELERY_TEST_MYSQL_HOST", "127.0.0.1")
GOLDEN = FIXTURES / "golden" / "django_db"
HOSTNAME = f"w1@{os.uname().nodename}"


class DjangoDatabase:
    """One fresh database, migrated; `env` are the fixture project's DJANGO_DB_* variables
    for it, `url` the worker's `database_url`."""

    def __init__(self, engine, tmp_path):
        self.engine = engine
        self.name = f"rc_dj_{uuid.uuid4().hex[:12]}"
        self._admin = None
        if engine == "postgresql":
            import psycopg2
            self._admin = psycopg2.connect(f"{PG}/postgres")
            self._admin.autocommit = True
            self._admin.cursor().execute(f"CREATE DATABASE {self.name}")
            self.env = {"DJANGO_DB_ENGINE": "postgresql", "DJANGO_DB_NAME": self.name,
                        "DJANGO_DB_HOST": "127.0.0.1", "DJANGO_DB_PORT": "5432",
                        "DJANGO_DB_USER": "postgres", "DJANGO_DB_PASSWORD": ""}
            self.url = f"{PG}/{self.name}"
        elif engine == "mysql":
            import pymysql
            self._admin = pymysql.connect(host=MYSQL_HOST, user="root", autocommit=True)
            self._admin.cursor().execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
            self.env = {"DJANGO_DB_ENGINE": "mysql", "DJANGO_DB_NAME": self.name,
                        "DJANGO_DB_HOST": MYSQL_HOST, "DJANGO_DB_PORT": "3306",
                        "DJANGO_DB_USER": "root", "DJANGO_DB_PASSWORD": ""}
            self.url = f"mysql://root@{MYSQL_HOST}:3306/{self.name}"
        else:
            path = tmp_path / f"{self.name}.sqlite3"
            self.env = {"DJANGO_DB_ENGINE": "sqlite3", "DJANGO_SQLITE_PATH": str(path)}
            self.url = f"sqlite:///{path}"
        migrate(self.env)
        if engine == "postgresql":
            import psycopg2
            conn = psycopg2.connect(f"{PG}/{self.name}")
            install_log(conn)
            conn.close()

    def writes(self, task_id):
        """Every write to the task's row, masked as the goldens are (PostgreSQL only)."""
        import psycopg2
        conn = psycopg2.connect(f"{PG}/{self.name}")
        try:
            log = [entry for entry in read_log(conn)
                   if entry[3].get("task_id") == task_id]
        finally:
            conn.close()
        return normalized(masked_writes(log, HOSTNAME))

    def drop(self):
        if self._admin is None:
            return
        cur = self._admin.cursor()
        if self.engine == "postgresql":
            cur.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        else:
            cur.execute(f"DROP DATABASE IF EXISTS {self.name}")
        self._admin.close()


def normalized(writes):
    """Tracebacks cut to their last line (the frames are each worker's own)."""
    for w in writes:
        tb = w["row"].get("traceback")
        if tb:
            w["row"]["traceback"] = tb.strip().splitlines()[-1]
    return writes


def golden(case, task_index=0):
    """The golden writes of one task of `case` (the `task_index`th id the case names)."""
    data = json.loads((GOLDEN / f"{case}.json").read_text())
    wanted = f"<id:{task_index}>"
    return normalized([w for w in data["writes"] if w["row"].get("task_id") == wanted])


def point_django_at(db):
    """This process's Django on `db` (the ORM assertions); returns what to restore."""
    from django.conf import settings
    from django.db import connections
    default = settings.DATABASES["default"]
    saved = {k: default.get(k) for k in ("ENGINE", "NAME", "HOST", "PORT", "USER", "PASSWORD")}
    connections.close_all()
    env = db.env
    if db.engine == "sqlite":
        default.update(ENGINE="django.db.backends.sqlite3", NAME=env["DJANGO_SQLITE_PATH"],
                       HOST="", PORT="", USER="", PASSWORD="")
    else:
        if db.engine == "mysql":
            import pymysql
            pymysql.install_as_MySQLdb()
        default.update(ENGINE=f"django.db.backends.{env['DJANGO_DB_ENGINE']}",
                       NAME=env["DJANGO_DB_NAME"], HOST=env["DJANGO_DB_HOST"],
                       PORT=env["DJANGO_DB_PORT"], USER=env["DJANGO_DB_USER"],
                       PASSWORD=env["DJANGO_DB_PASSWORD"])
    forget_connection()
    return saved


def forget_connection():
    """Drops this thread's default connection object, so the next query opens a new one."""
    from django.db import connections
    try:
        del connections["default"]
    except AttributeError:
        pass


def restore_django(saved):
    from django.conf import settings
    from django.db import connections
    connections.close_all()
    settings.DATABASES["default"].update(saved)
    forget_connection()


@pytest.fixture
def djdb(request, tmp_path, monkeypatch, workers):
    db = DjangoDatabase(getattr(request, "param", "postgresql"), tmp_path)
    for key, value in db.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "django-db")
    saved = point_django_at(db)
    yield db
    workers.stop()
    restore_django(saved)
    db.drop()


def start(workers, db, **overrides):
    """(Re)starts the worker under test with its results in `db` (`database_url`)."""
    return workers.start({"result_backend": "django-db", "database_url": db.url, **overrides})


def client_for(app, **conf):
    """A producer app like the deployment's, with django-db results (this process's Django)."""
    client = Celery("client", broker=app.conf.broker_url, backend="django-db")
    client.conf.update(
        task_default_queue="default", task_serializer="pickle",
        accept_content=["json", "pickle"], result_serializer="json",
        timezone="Asia/Shanghai",
        broker_transport_options=app.conf.broker_transport_options, **conf)
    return client


EXTENDED = {"result_extended": True, "task_track_started": True}


def test_rows_are_written_as_django_celery_results_writes_them(app, djdb, workers):
    """Each write (STARTED, RETRY, SUCCESS, FAILURE) equals the golden one, column by column."""
    from django_celery_results.models import TaskResult

    start(workers, djdb, **EXTENDED)
    client = client_for(app, **EXTENDED)
    ok = client.send_task("tasks.add", (2, 3))
    assert ok.get(timeout=30) == 5
    kw = client.send_task("tasks.echo", ("邮件 OK",), {"n": 1})
    assert kw.get(timeout=30) == {"args": ["邮件 OK"], "kwargs": {"n": 1}}
    bad = client.send_task("tasks.fail", ("boom",))
    with pytest.raises(ValueError, match="boom"):
        bad.get(timeout=30)
    beat = client.send_task("tasks.add", (1, 1), headers={"periodic_task_name": "every-minute"})
    assert beat.get(timeout=30) == 2
    retried = client.send_task("tasks.flaky", (1,))
    assert retried.get(timeout=30) == 1

    assert djdb.writes(ok.id) == golden("extended_success")
    assert djdb.writes(kw.id) == golden("extended_kwargs")
    assert djdb.writes(bad.id) == golden("extended_failure")
    assert djdb.writes(beat.id) == golden("extended_periodic")
    # The retried attempt may start before the first one stores RETRY (both workers): the
    # same writes, in either order.
    in_any_order = lambda ws: sorted(json.dumps(w, sort_keys=True) for w in ws)  # noqa: E731
    assert in_any_order(djdb.writes(retried.id)) == in_any_order(golden("extended_retry"))

    # Through Django's ORM, as the admin shows them.
    row = TaskResult.objects.get(task_id=ok.id)
    assert (row.status, row.task_name, row.result, row.worker) == (
        "SUCCESS", "tasks.add", "5", HOSTNAME)
    assert row.date_started is not None and row.date_done >= row.date_created
    assert TaskResult.objects.get(task_id=beat.id).periodic_task_name == "every-minute"
    failed = TaskResult.objects.get(task_id=bad.id)
    assert failed.status == "FAILURE" and "ValueError: boom" in failed.traceback
    extended = client.backend.get_task_meta(ok.id)
    assert (extended["task_name"], extended["args"], extended["worker"]) == (
        "tasks.add", "(2, 3)", HOSTNAME)


def test_without_result_extended_the_request_columns_stay_null(app, djdb, workers):
    start(workers, djdb, result_extended=False, task_track_started=False)
    client = client_for(app)
    ok = client.send_task("tasks.add", (2, 3))
    assert ok.get(timeout=30) == 5
    bad = client.send_task("tasks.fail", ("boom",))
    with pytest.raises(ValueError, match="boom"):
        bad.get(timeout=30)
    beat = client.send_task("tasks.add", (1, 1), headers={"periodic_task_name": "every-minute"})
    assert beat.get(timeout=30) == 2
    assert djdb.writes(ok.id) == golden("plain_success")
    # No traceback either: django-celery-results clears it without result_extended.
    assert djdb.writes(bad.id) == golden("plain_failure")
    assert djdb.writes(beat.id) == golden("plain_periodic")


def test_a_started_row_has_its_date_started(app, djdb, workers):
    from django_celery_results.models import TaskResult

    start(workers, djdb, **EXTENDED)
    client = client_for(app)
    r = client.send_task("tasks.sleep", (1,))
    running = wait_for(lambda: TaskResult.objects.filter(task_id=r.id, status="STARTED").first(),
                       20, "a STARTED row")
    assert running.date_started is not None and running.date_done is not None
    assert json.loads(running.result)["hostname"] == HOSTNAME
    assert r.get(timeout=30) == 1
    done = TaskResult.objects.get(task_id=r.id)
    assert (done.status, done.date_started) == ("SUCCESS", running.date_started)
    assert djdb.writes(r.id) == golden("extended_started")


def test_a_success_is_never_overwritten(app, djdb, workers):
    from django_celery_results.models import TaskResult

    start(workers, djdb, task_track_started=True)
    client = client_for(app)
    task_id = str(uuid.uuid4())
    client.backend.store_result(task_id, 42, "SUCCESS")
    # The same id runs again (a redelivery) and fails this time.
    client.send_task("tasks.fail", ("again",), task_id=task_id)
    assert client.send_task("tasks.add", (1, 1)).get(timeout=30) == 2
    wait_for(lambda: "again" in workers.current.log(), 10, "the rerun")
    if workers.current.kind == "rust":
        # Celery's key-value backends' guard; django-celery-results itself would overwrite.
        assert TaskResult.objects.get(task_id=task_id).status == "SUCCESS"


# In the RabbitMQ subset: the body is sent through the broker once the chord counter says so.
@pytest.mark.every_broker
def test_a_saved_group_and_a_chord_through_the_chord_counter(app, djdb, workers):
    from django_celery_results.models import ChordCounter, GroupResult

    start(workers, djdb, **EXTENDED)
    client = client_for(app)
    res = group(client.signature("tasks.add").clone((i, 1)) for i in range(2)).apply_async()
    res.save()
    assert res.get(timeout=30) == [1, 2]
    assert GroupResult.objects.get(group_id=res.id).result
    assert [r.id for r in client.GroupResult.restore(res.id).results] == [r.id for r in res.results]

    header = group(client.signature("tasks.add").clone((i, i)) for i in range(2))
    body = chord(header, client.signature("tasks.xsum")).delay()
    assert body.get(timeout=30) == 2
    wait_for(lambda: not ChordCounter.objects.exists(), 10, "the chord counter deleted")
    # The counter's life as in golden/django_db/chord.json: created by the client with the
    # header's size, counted down, deleted at zero by the part that completes it.
    assert counter_writes(djdb) == counter_writes_in_golden()

    # A chord the worker applies itself (a group in the middle of a chain).
    add = client.signature("tasks.add")
    steps = add.clone((1, 1)) | group(add.clone((1,)), add.clone((2,))) | \
        client.signature("tasks.xsum")
    assert steps.delay().get(timeout=30) == 7


def counter_writes(db):
    import psycopg2
    conn = psycopg2.connect(f"{PG}/{db.name}")
    try:
        return [(op, row["count"]) for _n, tbl, op, row in read_log(conn)
                if tbl == "django_celery_results_chordcounter"]
    finally:
        conn.close()


def counter_writes_in_golden():
    data = json.loads((GOLDEN / "chord.json").read_text())
    return [(w["op"], w["row"]["count"]) for w in data["writes"]
            if w["table"] == "django_celery_results_chordcounter"]


def test_a_chord_split_between_python_and_the_worker_fires_once(app, djdb, workers, tmp_path):
    from django_celery_results.models import ChordCounter

    start(workers, djdb)
    conf = effective_config(app, {"result_backend": "django-db"})
    python = Worker(conf, tmp_path / "py", kind="python", name="py@%h", queues="py")
    python.start()
    try:
        client = client_for(app)
        add = client.signature("tasks.add")
        header = group([add.clone((1, 1)).set(queue="py"), add.clone((2, 2)),
                        add.clone((3, 3)).set(queue="py"), add.clone((4, 4))])
        body = client.signature("tasks.xsum").set(queue="default")
        result = chord(header, body).delay()
        assert result.get(timeout=60) == 20
        wait_for(lambda: not ChordCounter.objects.exists(), 10, "the chord counter deleted")
    finally:
        python.stop()
    logs = workers.current.log() + python.log()
    assert logs.count(f"[{result.id}] received") == 1, "the body was sent once"
    # Each worker ran its part of the header.
    assert "tasks.add[" in python.log() and "tasks.add[" in workers.current.log()


@pytest.mark.parametrize("djdb", ["mysql", "sqlite"], indirect=True)
def test_mariadb_and_sqlite(app, djdb, workers):
    from django_celery_results.models import ChordCounter, TaskResult

    start(workers, djdb, **EXTENDED)
    client = client_for(app)
    ok = client.send_task("tasks.add", (2, 3))
    assert ok.get(timeout=30) == 5
    row = TaskResult.objects.get(task_id=ok.id)
    assert (row.status, row.task_args, row.worker) == ("SUCCESS", '"(2, 3)"', HOSTNAME)
    assert row.date_started is not None
    bad = client.send_task("tasks.fail", ("boom",))
    with pytest.raises(ValueError, match="boom"):
        bad.get(timeout=30)
    header = group(client.signature("tasks.add").clone((i, i)) for i in range(3))
    assert chord(header, client.signature("tasks.xsum")).delay().get(timeout=30) == 6
    wait_for(lambda: not ChordCounter.objects.exists(), 10, "the chord counter deleted")


def test_the_database_comes_from_djangos_settings_with_dash_a(app, djdb, workers, tmp_path):
    """rcelery -A tasks.task (no TOML): Django's DATABASES['default'] is the database."""
    from django_celery_results.models import TaskResult

    workers.stop()
    env = {**djdb.env, "CELERY_RESULT_BACKEND": "django-db", "DJANGO_DB_PASSWORD": "Hunter2"}
    # PostgreSQL's trust auth accepts any password: it only has to stay out of the log.
    proc = Rcelery(["-A", "tasks.task", "worker", "-Q", "default", "-l", "debug", "-n", "w1@%h"],
                   FIXTURES, tmp_path, env).wait_ready()
    try:
        client = client_for(app)
        ok = client.send_task("tasks.add", (2, 3))
        assert ok.get(timeout=30) == 5
        assert TaskResult.objects.get(task_id=ok.id).status == "SUCCESS"
    finally:
        proc.stop()
    log = proc.log()
    assert "results:     django-db (postgresql://" in log, log
    assert "Hunter2" not in log


def test_missing_tables_fail_the_start(app, djdb, workers, tmp_path):
    """rcelery does not create Django's tables: it asks for `manage.py migrate`."""
    import psycopg2
    workers.stop()
    conn = psycopg2.connect(f"{PG}/{djdb.name}")
    conn.autocommit = True
    conn.cursor().execute("DROP TABLE django_celery_results_chordcounter")
    conn.close()
    config = tmp_path / "rcelery.toml"
    config.write_text(f'broker_url = "{app.conf.broker_url}"\n'
                      f'result_backend = "django-db"\ndatabase_url = "{djdb.url}"\n')
    proc = Rcelery(["worker", "-A", "tasks", "-Q", "default", "--config", str(config)],
                   FIXTURES, tmp_path, {})
    assert proc.wait_exit(60) != 0
    assert "manage.py migrate" in proc.log(), proc.log()
