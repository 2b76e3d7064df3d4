"""The whole deployment as one test (issue 11 item 8).

One run of the deployment described in docs/migration.md ("From Celery to rcelery in one
word"), module-scoped, its checks split into the tests below (they run in file order and
share the run):

* Redis with `requirepass`; the broker URL built by tasks/celery_config.py from Django's
  REDIS_MQ_* settings; results in `db+postgresql://` in the same fresh PostgreSQL database as
  Django's own tables (`manage.py migrate`);
* the deployment's settings as tasks/celery_config.py writes them (pickle tasks, JSON results,
  `max_priority=10` queue, `task_create_missing_queues`, prefetch 4, `acks_late`,
  `timezone="Asia/Shanghai"`) plus the ones it leaves out (`result_expires=60`,
  `worker_max_tasks_per_child=100`, ..., see deployment.DEPLOYMENT_ONLY);
* the worker started by the deployment's own line with `celery` replaced by `rcelery`:
  `rcelery -A tasks.task worker -Q default,ex --loglevel=debug`. The deployment's line says
  `-Q default`; its `apply_async(..., queue='ex', countdown=10)` needs a worker on `ex`, and
  the deployment's way to have one is to name it in `-Q`, so the line here is
  `-Q default,ex`. Its two other lines (`--pool=solo -l info`, `-P eventlet -l info -c 2`)
  start and run a task at the end;
* the real `celery -A tasks.task beat -S django_celery_beat.schedulers:DatabaseScheduler`
  firing an interval and a crontab periodic task created through the ORM.

With RCELERY_WORKER=python the same lines start the real Celery worker, and every assertion
holds for it too.

The failure half of item 8 (refused database credentials are a clear start-up error with the
password masked; a PostgreSQL crash mid-run loses no result) is
fault-tests/test_database_faults.py.
"""
import datetime
import json
import os
import sys
import time
import uuid

import pytest

import deployment
from deployment import (BROKER_DB, PG_PASSWORD, REDIS_PASSWORD, Database, Process, environment,
                        migrate, start_redis, wait_for, worker_argv, worker_kind)

WORKER_LINE = "celery -A tasks.task worker -Q default,ex --loglevel=debug"
OTHER_LINES = (
    "celery -A tasks.task worker -Q default --pool=solo -l info",
    "celery -A tasks.task worker -Q default -P eventlet -l info -c 2",
)
BEAT_LINE = ["-m", "celery", "-A", "tasks.task", "beat", "-l", "info",
             "-S", "django_celery_beat.schedulers:DatabaseScheduler"]
SENT_MAIL = "邮件发送成功 OK"
# Priorities of tasks queued before the worker starts (10 is above max_priority).
PRIORITIES = [9, 0, 6, 3, 10, 5, 1, 8, 2, 7, 4]
# Set by the fixture: the conftest attaches its processes' logs to a failing test's report.
RUN = None


class Run:
    """What the deployment run started and recorded, for the tests to read."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.processes = []
        self.redis = self.database = self.worker = self.beat = None

    def process(self, argv, name, cwd=deployment.FIXTURES):
        proc = Process(argv, self.env, self.workdir / f"{name}.log", cwd=cwd)
        self.processes.append(proc)
        return proc

    def start_worker(self, line, name):
        return self.process(worker_argv(line), name).wait_log("ready.")

    # -- the deployment's data ------------------------------------------------------------
    def redis_lists(self, queue):
        """{key: [envelope, ...]} of `queue`'s kombu lists (the priority sub-queues)."""
        client = self.redis.client(BROKER_DB)
        out = {}
        for step in self.channel.priority_steps:
            key = self.channel._q_for_pri(queue, step)
            out[key] = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
        return out

    def taskmeta(self, task_id):
        rows = self.database.query(
            "SELECT status, result, EXTRACT(EPOCH FROM date_done AT TIME ZONE"
            " current_setting('TimeZone')) FROM celery_taskmeta WHERE task_id = %s", (task_id,))
        return rows[0] if rows else None

    def results_of_periodic_task(self, name):
        """The SUCCESS rows of celery_taskmeta whose result says periodic task `name` sent
        them (schedules.my_corn_minder returns its request's custom headers)."""
        if not self.database.query("SELECT 1 FROM pg_tables WHERE tablename='celery_taskmeta'"):
            return []
        out = []
        for task_id, result in self.database.query(
                "SELECT task_id, result FROM celery_taskmeta WHERE status = 'SUCCESS'"):
            value = json.loads(bytes(result))
            headers = value.get("headers") if isinstance(value, dict) else None
            if headers and headers.get("periodic_task_name") == name:
                out.append((task_id, value))
        return out


def beat_message(run, name):
    """(redis key, envelope) of the first message of periodic task `name` in `default`."""
    for key, envelopes in run.redis_lists("default").items():
        for envelope in envelopes:
            if envelope["headers"].get("periodic_task_name") == name:
                return key, envelope
    return None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The deployment, up: services, schedule, beat, queued work, then the worker."""
    global RUN
    RUN = r = Run(tmp_path_factory.mktemp("deployment"))
    try:
        _start(r)
        yield r
    finally:
        for proc in reversed(r.processes):
            proc.stop()
        if r.database is not None:
            r.database.drop()
        if r.redis is not None:
            r.redis.stop()


def _start(r):
    r.redis = start_redis()
    r.database = Database()
    r.env = environment(r.database)
    migrate(r.env, r.workdir / "migrate.log")
    # This process is the deployment's Django + producer side from here on.
    os.environ.update(r.env)
    import tasks.async_tasks
    import tasks.task
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
    r.tasks, r.async_tasks, r.app = tasks.task, tasks.async_tasks, tasks.task.app
    r.conn = r.app.connection_for_write()
    r.channel = r.conn.default_channel

    # Periodic tasks, as the deployment makes them (admin or ORM), JSON args/kwargs/headers.
    every2 = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    minutely = CrontabSchedule.objects.create(minute="*", hour="*", day_of_week="*",
                                              day_of_month="*", month_of_year="*",
                                              timezone="Asia/Shanghai")
    r.schedule = {
        "every2": dict(interval=every2, args=json.dumps([1, "二"]),
                       kwargs=json.dumps({"who": "ops", "n": 2}), queue="default", priority=5,
                       expire_seconds=120, headers=json.dumps({"reminder": "standup"})),
        "minutely": dict(crontab=minutely, args=json.dumps(["cron"]),
                         kwargs=json.dumps({"at": "every minute"}), queue="default",
                         priority=0, expire_seconds=50,
                         headers=json.dumps({"reminder": "coffee"})),
        # Sent once, expiring 1 s after: it waits in the queue until that has passed.
        "expires-at-once": dict(interval=every2, args=json.dumps(["late"]), queue="default",
                                expire_seconds=1, one_off=True),
    }
    for name, fields in r.schedule.items():
        PeriodicTask.objects.create(name=name, task="schedules.my_corn_minder", **fields)
    r.crontab_created = time.monotonic()

    # The real beat, sending while no worker runs: its messages are read in Redis as sent.
    # Run from a scratch directory so that its pid file does not land in the project.
    beat_dir = r.workdir / "beat"
    beat_dir.mkdir()
    r.beat = r.process([sys.executable, *BEAT_LINE], "beat", cwd=beat_dir)
    r.beat.wait_log("beat: Starting...")
    r.every2 = wait_for(lambda: beat_message(r, "every2"), 60, "beat's every2 message")
    r.late = wait_for(lambda: beat_message(r, "expires-at-once"), 60,
                      "beat's expires-at-once message")
    expires = datetime.datetime.fromisoformat(r.late[1]["headers"]["expires"])
    wait_for(lambda: datetime.datetime.now(datetime.timezone.utc) > expires, 30,
             "the one-off message to expire")

    # Work queued before the worker starts, with the deployment's (pickle) serializer.
    r.prio_ids = [r.tasks.echo.apply_async(("prio", i), priority=p).id
                  for i, p in enumerate(PRIORITIES)]

    r.worker = r.start_worker(WORKER_LINE, "worker")
    r.countdown_sent = time.time()
    r.countdown = r.async_tasks.send_mail.apply_async(("test@test.com",), queue="ex",
                                                      countdown=10)


def received_order(log, ids):
    """`ids` in the order the worker's log says it received them."""
    wanted = set(ids)
    order = []
    for line in log.splitlines():
        if "] received" in line and "Task tasks.echo[" in line:
            task_id = line.split("Task tasks.echo[", 1)[1].split("]", 1)[0]
            if task_id in wanted and task_id not in order:
                order.append(task_id)
    return order


# -- the tests, in the order the run serves them ------------------------------------------

def test_the_worker_starts_from_the_deployments_own_line(run):
    """The banner shows the settings read from the Celery app, passwords masked (rcelery
    keeps the `db+` of the URL as written; Celery drops it)."""
    log = run.worker.log()
    db = run.database
    assert f".> transport:   redis://:**@127.0.0.1:{deployment.REDIS_PORT}/{BROKER_DB}" in log
    assert f"postgresql://{db.user}:**@{db.host}:{db.port}/{db.name}\n" in log, log
    assert ".> concurrency: 2 " in log, "worker_concurrency = 2"
    assert ".> default          exchange=default(direct) key=default" in log
    assert ".> ex               exchange=ex(direct) key=ex" in log, "created: -Q ex"
    if worker_kind() == "rust":
        assert "key=default max_priority=10\n" in log
    assert REDIS_PASSWORD not in log and PG_PASSWORD not in log


def test_tasks_queued_before_the_start_are_taken_in_kombus_priority_order(run):
    """The deployment's prefetch (2 × 4): the first fetches take the most urgent work
    (kombu's Redis sub-queues, steps 0/3/6/9, 0 first; FIFO within a step). The order of
    execution with one slot and prefetch 1 is compat-tests/test_robustness.py's."""
    results = [run.app.AsyncResult(i) for i in run.prio_ids]
    assert [r.get(timeout=60) for r in results] == [
        {"args": ["prio", i], "kwargs": {}} for i in range(len(PRIORITIES))]
    order = received_order(run.worker.log(), run.prio_ids)
    expected = sorted(run.prio_ids, key=lambda i: (
        run.channel.priority(PRIORITIES[run.prio_ids.index(i)]), run.prio_ids.index(i)))
    assert [PRIORITIES[run.prio_ids.index(i)] for i in order] == [
        PRIORITIES[run.prio_ids.index(i)] for i in expected]
    assert order == expected


def test_send_mail_as_the_view_calls_it(run):
    ret = run.async_tasks.send_mail.delay("someone@example.com")
    assert ret.ready() in (True, False)
    assert str(uuid.UUID(ret.id)) == ret.id
    assert ret.get(timeout=60) == SENT_MAIL
    assert ret.ready() and ret.status == "SUCCESS"
    status, result, _done = run.taskmeta(ret.id)
    assert (status, json.loads(bytes(result))) == ("SUCCESS", SENT_MAIL)


def test_beat_interval_task_runs_with_its_args_headers_priority_and_expiry(run):
    key, envelope = run.every2
    headers, properties = envelope["headers"], envelope["properties"]
    # As beat sent it: where kombu puts priority 5, expiry absolute in the app's timezone.
    assert properties["priority"] == 5
    assert key == run.channel._q_for_pri("default", 5)
    assert headers["expires"].endswith("+08:00"), headers["expires"]
    assert headers["periodic_task_name"] == "every2" and headers["reminder"] == "standup"
    # Run (not taken for expired) with its JSON args and kwargs and its custom headers.
    want = {"args": [1, "二"], "kwargs": {"who": "ops", "n": 2},
            "headers": {"reminder": "standup", "periodic_task_name": "every2",
                        "celery_beat_task": True}}
    assert run.app.AsyncResult(headers["id"]).get(timeout=60) == want
    assert run.taskmeta(headers["id"])[0] == "SUCCESS"
    # Beat goes on: more runs, each stored as a row.
    runs = wait_for(lambda: len(run.results_of_periodic_task("every2")) >= 3 and
                    run.results_of_periodic_task("every2"), 60, "three every2 runs")
    assert all(value == want for _id, value in runs)


def test_a_beat_message_past_its_expiry_is_revoked_not_run(run):
    """The other half of honouring `expires` in +08:00: the one-off message waited in the
    queue past its expiry (1 s) before the worker started."""
    _key, envelope = run.late
    assert envelope["headers"]["expires"].endswith("+08:00")
    late = run.app.AsyncResult(envelope["headers"]["id"])
    wait_for(lambda: late.state == "REVOKED", 60, "the expired one-off task revoked")
    assert run.taskmeta(late.id)[0] == "REVOKED"
    assert not run.results_of_periodic_task("expires-at-once")


def test_countdown_on_ex_runs_after_ten_seconds_exactly_once(run):
    ret = run.countdown
    assert ret.get(timeout=120) == SENT_MAIL
    status, _result, done = run.taskmeta(ret.id)
    assert status == "SUCCESS"
    assert float(done) >= run.countdown_sent + 10, (done, run.countdown_sent)
    # The worker writes its log in batches (every 50 ms), so the result can be read before
    # the task's "succeeded" line is on disk: wait for the line, then count.
    log = wait_for(lambda: (lambda text: f"send_mail[{ret.id}] succeeded" in text and text)(
        run.worker.log()), 10, "the task's succeeded line in the worker log")
    assert log.count(f"send_mail[{ret.id}] received") == 1, log
    assert log.count(f"send_mail[{ret.id}] succeeded") == 1, log


def test_beat_crontab_task_fires_on_the_minute(run):
    # minute='*' fires on the next minute boundary; the other tests ran meanwhile.
    deadline = run.crontab_created + 100
    runs = wait_for(lambda: run.results_of_periodic_task("minutely"),
                    max(deadline - time.monotonic(), 5), "the crontab task's run")
    assert runs[0][1] == {"args": ["cron"], "kwargs": {"at": "every minute"},
                          "headers": {"reminder": "coffee", "periodic_task_name": "minutely",
                                      "celery_beat_task": True}}
    assert run.app.AsyncResult(runs[0][0]).get(timeout=10) == runs[0][1]


def test_result_expires_is_what_beats_daily_cleanup_deletes(run):
    """`result_expires=60`: DatabaseScheduler schedules `celery.backend_cleanup` (daily at
    4:00); sent now, it deletes the rows older than 60 s and keeps the younger ones."""
    from django_celery_beat.models import PeriodicTask
    cleanup = PeriodicTask.objects.get(task="celery.backend_cleanup")
    assert cleanup.crontab.hour == "4" and cleanup.crontab.minute == "0"
    old = [run.taskmeta(i) for i in run.prio_ids]
    assert all(row[0] == "SUCCESS" for row in old)
    newest_old = max(float(row[2]) for row in old)
    # Wait (no assertion on time) until the oldest rows are past result_expires.
    wait_for(lambda: time.time() > newest_old + 61, 90, "the first rows to be 60 s old")
    young = run.async_tasks.send_mail.delay("young@example.com")
    assert young.get(timeout=60) == SENT_MAIL
    done = run.app.send_task(cleanup.task, queue=cleanup.queue or "default")
    assert done.get(timeout=60) is None
    assert [run.taskmeta(i) for i in run.prio_ids] == [None] * len(run.prio_ids)
    assert run.taskmeta(young.id)[0] == "SUCCESS", "younger than result_expires: kept"


def test_the_logs_show_no_password_and_no_sql(run):
    """No process logs a password; the worker's `--loglevel=debug` log has no SQL statements
    (Celery's has none: SQLAlchemy's engine log stays off)."""
    for proc in run.processes:
        text = proc.log()
        assert REDIS_PASSWORD not in text and PG_PASSWORD not in text, proc.log_path
    log = run.worker.log()
    assert "INSERT INTO celery_taskmeta" not in log and "information_schema" not in log
    if worker_kind() == "rust":
        # Every setting of the deployment is accepted (worker_max_tasks_per_child: no child
        # processes to recycle) and nothing in the run is worth a warning. (Celery logs the
        # task's print() at WARNING: this one is rcelery's alone.)
        warnings = [line for line in log.splitlines() if "WARNING/" in line or "ERROR/" in line]
        assert not warnings, warnings


def test_the_deployments_other_launch_lines_start_and_run_a_task(run):
    run.beat.stop()
    assert run.worker.stop() == 0
    for n, line in enumerate(OTHER_LINES, 1):
        worker = run.start_worker(line, f"worker-line-{n}")
        ret = run.async_tasks.send_mail.delay(f"line{n}@example.com")
        assert ret.get(timeout=60) == SENT_MAIL
        assert worker.stop() == 0, worker.log()
        log = worker.log()
        assert f"send_mail[{ret.id}] succeeded" in log, log
        if worker_kind() == "rust":
            assert (".> concurrency: 1 (tokio; -P solo accepted)" if "solo" in line else
                    ".> concurrency: 2 (tokio; -P eventlet accepted)") in log, log
        assert REDIS_PASSWORD not in log and PG_PASSWORD not in log
