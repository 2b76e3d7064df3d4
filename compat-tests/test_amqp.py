"""The AMQP 0-9-1 transport (RabbitMQ) with real Celery 5.7 (issue 12 item 2).

Each test runs a worker (env RCELERY_WORKER: the rcelery binary, or the real Python Celery
worker) against the shared RabbitMQ on 127.0.0.1:5672, in a virtual host of its own
(`rcelery-amqp`, emptied before each test with `rabbitmqctl`), with one small Celery app
(written to the test's folder; rcelery reads its settings with `-A`, as it reads a Django
project's). Results go to the suite's Redis. The suite fails when RabbitMQ is not there.

What is checked: tasks run with json and pickle; the exchanges, queues and bindings the
worker declares are exactly those a real Python Celery 5.7 worker declares with the same
settings (captured in the test from a Python worker); a queue Python declared with
`x-max-priority` is consumed without PRECONDITION_FAILED; quorum queues (non-global QoS,
countdowns through Celery's `celery_delayed_*` native delayed delivery); the prefetch count
(global, raised while an ETA task waits); early ack versus `acks_late`; rejects with and
without requeue; retries, chains and chords publishing through the worker.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from celery import Celery, chain, chord

from harness.worker import rcelery_binary as _rcelery_binary
from helpers import wait_for

VHOST = os.environ.get("RCELERY_TEST_AMQP_VHOST", "rcelery-amqp")
AMQP_URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
REDIS_PORT = int(os.environ.get("RCELERY_TEST_REDIS_PORT", "6390"))
RESULT_BACKEND = f"redis://:123456@127.0.0.1:{REDIS_PORT}/4"

# The Celery app both workers load (`-A amqpapp`) and this process builds to send tasks:
# settings from env AMQP_CONF (JSON; `task_queues` as a list of queue tables).
APP_SOURCE = textwrap.dedent('''
    """A Celery app on RabbitMQ for the AMQP compat tests (settings from env AMQP_CONF)."""
    import json
    import os
    import time

    from celery import Celery
    from kombu import Exchange, Queue


    def make_app(conf):
        conf = dict(conf)
        queues = conf.pop("task_queues", None)
        app = Celery("amqpapp")
        app.conf.update(conf)
        if queues is not None:
            app.conf.task_queues = [
                Queue(q["name"], Exchange(q.get("exchange", q["name"]),
                                          type=q.get("exchange_type", "direct")),
                      routing_key=q.get("routing_key", q["name"]),
                      queue_arguments=q.get("queue_arguments"),
                      max_priority=q.get("max_priority"))
                for q in queues
            ]

        @app.task(name="tasks.add")
        def add(x, y):
            return x + y

        @app.task(name="tasks.xsum")
        def xsum(numbers):
            return sum(numbers)

        @app.task(name="tasks.sleep")
        def sleep(seconds):
            time.sleep(seconds)
            return seconds

        @app.task(name="tasks.retry_until", bind=True)
        def retry_until(self, n):
            if self.request.retries < n:
                raise self.retry(countdown=0, max_retries=None)
            return self.request.retries

        @app.task(name="tasks.reject")
        def reject(reason, requeue=False):
            from celery.exceptions import Reject
            raise Reject(reason, requeue=requeue)

        return app


    app = make_app(json.loads(os.environ.get("AMQP_CONF") or "{}"))
''')

BASE_CONF = {
    "broker_url": AMQP_URL,
    "result_backend": RESULT_BACKEND,
    "task_serializer": "json",
    "accept_content": ["json", "pickle"],
    "worker_prefetch_multiplier": 4,
}

# What rcelery does not run (remote control and events) is left out of the comparison.
NOT_COMPARED = re.compile(r"pidbox|celeryev")


# -- RabbitMQ ------------------------------------------------------------------------------
def rabbitmqctl(*args):
    out = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {out.stderr}{out.stdout}")
    return out.stdout


def table(*args):
    """`rabbitmqctl list_* -p VHOST cols...` as a list of rows (tab-separated fields)."""
    text = rabbitmqctl(*args[:1], "-p", VHOST, "--no-table-headers", *args[1:])
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def close_connections():
    """The server closes every connection of the test's vhost (`list_connections` lists the
    whole node's, whatever `-p` says: the other vhosts' are left alone)."""
    for pid, vhost in table("list_connections", "pid", "vhost"):
        if vhost == VHOST:
            subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "compat test"],
                           capture_output=True, timeout=120)


def fresh_vhost():
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True,
                   timeout=120)
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")


@pytest.fixture(scope="module")
def rabbit():
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=5).close()
    except OSError as e:
        raise RuntimeError(f"RabbitMQ is not reachable on 127.0.0.1:5672 ({e}); start it "
                           f"(the AMQP compat tests need a real RabbitMQ)") from e
    yield
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True,
                   timeout=120)


@pytest.fixture
def vhost(rabbit, redis_server):
    fresh_vhost()
    return VHOST


def sorted_arguments(row):
    """The row with its last field (an argument table as rabbitmqctl prints it,
    `[{"x-a",1},{"x-b","v"}]`) in key order: RabbitMQ compares arguments by key, and keeps
    them in the order the client sent them, which is not part of what Celery declares (see
    docs/compatibility.md)."""
    *rest, args = row
    items = re.findall(r'\{"[^"]*",(?:[^{}]|\{[^{}]*\})*\}', args)
    return (*rest, "[" + ",".join(sorted(items)) + "]")


def topology():
    """The vhost's exchanges, queues and bindings, as sets of rows (pidbox/events left out)."""
    exchanges = {sorted_arguments(r) for r in table("list_exchanges", "name", "type", "durable",
                                         "auto_delete", "internal", "arguments")
                 if r[0] and not r[0].startswith("amq.") and not NOT_COMPARED.search(r[0])}
    queues = {sorted_arguments(r) for r in table("list_queues", "name", "durable", "auto_delete",
                                      "exclusive", "arguments")
              if not NOT_COMPARED.search(r[0])}
    bindings = {sorted_arguments(r) for r in table("list_bindings", "source_name", "source_kind",
                                        "destination_name", "destination_kind",
                                        "routing_key", "arguments")
                if not NOT_COMPARED.search(r[0] + r[2]) and r[0]}
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def queue_counts():
    """{queue: (ready, unacknowledged)}."""
    return {r[0]: (int(r[1]), int(r[2]))
            for r in table("list_queues", "name", "messages_ready", "messages_unacknowledged")}


# -- workers -------------------------------------------------------------------------------
class AmqpWorker:
    """A worker process (rcelery or Python Celery) on the test app; stopped at test end."""

    def __init__(self, folder, conf, kind, queues, name="w1@%h", concurrency=2):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "amqpapp.py").write_text(APP_SOURCE)
        self.log_path = self.folder / f"{kind}-{name.split('@')[0]}-{int(time.time() * 1000)}.log"
        env = dict(os.environ)
        for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RCELERY_FIXTURE_CONFIG",
                    "DJANGO_SETTINGS_MODULE"):
            env.pop(var, None)
        env.update({"AMQP_CONF": json.dumps(conf), "PYTHONUNBUFFERED": "1", "C_FORCE_ROOT": "1",
                    "RCELERY_PYTHON": sys.executable, "PYTHONPATH": str(self.folder)})
        if kind == "rust":
            cmd = [os.path.abspath(_rcelery_binary()), "worker", "-A", "amqpapp"]
        else:
            cmd = [sys.executable, "-m", "celery", "-A", "amqpapp", "worker"]
        cmd += ["-Q", queues, "-c", str(concurrency), "-l", "info", "-n", name]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.folder, env=env, stdout=out,
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
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


@pytest.fixture
def start(tmp_path, kind):
    """start(conf, queues=..., kind=...) -> a ready worker; all are stopped after the test."""
    started = []

    def _start(conf, queues="celery", worker_kind=None, **kw):
        w = AmqpWorker(tmp_path / f"w{len(started) + 1}", conf, worker_kind or kind, queues, **kw)
        started.append(w)
        return w.wait_ready()

    yield _start
    for w in started:
        w.stop()
    # Shown by pytest when the test fails.
    for w in started:
        print(f"--- {w.log_path}\n{w.log()[-6000:]}")


def producer(conf):
    """The test app in this process (to send tasks and read results)."""
    ns = {}
    exec(compile(APP_SOURCE, "amqpapp", "exec"), ns)
    return ns["make_app"](conf)


def conf(**extra):
    out = dict(BASE_CONF)
    out.update(extra)
    return out


# -- tests ---------------------------------------------------------------------------------
def test_tasks_run_with_json_and_pickle(vhost, start):
    c = conf()
    start(c)
    app = producer(c)
    assert app.send_task("tasks.add", (2, 3)).get(timeout=30) == 5
    assert app.send_task("tasks.add", (2, 3), serializer="pickle").get(timeout=30) == 5
    assert app.send_task("tasks.add", (4, 5), priority=3).get(timeout=30) == 9


QUEUE_CONFIGS = {
    # Celery's defaults with a max priority on every queue.
    "default-queue": ({"task_queue_max_priority": 10}, "celery"),
    # task_queues with their own exchanges, one topic, one with arguments, and a queue named
    # on the command line that Celery creates (quorum, task_create_missing_queue_type).
    "task-queues": ({"task_queues": [
        {"name": "default", "exchange": "default", "max_priority": 10},
        {"name": "events", "exchange": "ex.topic", "exchange_type": "topic",
         "routing_key": "events.#", "queue_arguments": {"x-message-ttl": 60000}},
    ], "task_default_queue": "default", "task_create_missing_queue_type": "quorum"},
        "default,events,extra"),
    # Quorum queues: Celery's native delayed delivery topology (celery_delayed_*).
    "quorum": ({"task_default_queue_type": "quorum", "task_queues": [
        {"name": "qq", "exchange": "qx", "exchange_type": "topic", "routing_key": "qq",
         "queue_arguments": {"x-queue-type": "quorum"}},
    ], "task_default_queue": "qq"}, "qq"),
}


@pytest.mark.parametrize("case", sorted(QUEUE_CONFIGS))
def test_declarations_are_those_of_celery(vhost, start, kind, case):
    settings, queues = QUEUE_CONFIGS[case]
    c = conf(**settings)
    start(c, queues=queues, worker_kind="python").stop()
    expected = topology()
    assert expected["queues"], "the Python worker declared no queue"
    fresh_vhost()
    w = start(c, queues=queues)
    got = topology()
    w.stop()
    assert got == expected


def test_a_queue_python_declared_with_priorities_is_consumed(vhost, start):
    c = conf(task_queues=[{"name": "default", "exchange": "default", "max_priority": 10}],
             task_default_queue="default")
    app = producer(c)
    with app.connection_for_write() as conn:
        for q in app.amqp.queues.values():
            q(conn.default_channel).declare()
    args = {r[0]: r[1] for r in table("list_queues", "name", "arguments")}
    assert "x-max-priority" in args["default"]
    w = start(c, queues="default")
    assert app.send_task("tasks.add", (1, 2), priority=9).get(timeout=30) == 3
    assert "PRECONDITION_FAILED" not in w.log()


def channel_prefetch():
    """(prefetch_count, global_prefetch_count) of the channels that have a consumer."""
    return [(int(r[1]), int(r[2])) for r in table("list_channels", "consumer_count",
                                                   "prefetch_count", "global_prefetch_count")
            if int(r[0]) > 0]


def consumer_prefetch(queue):
    """[(consumer prefetch_count, its channel's global_prefetch_count)] of `queue`'s consumers."""
    channels = {r[0]: int(r[1]) for r in table("list_channels", "pid", "global_prefetch_count")}
    return [(int(r[2]), channels.get(r[1])) for r in table("list_consumers", "queue_name",
                                                           "channel_pid", "prefetch_count")
            if r[0] == queue]


def test_prefetch_is_global_and_grows_while_an_eta_task_waits(vhost, start):
    c = conf()
    start(c)
    # concurrency 2 x multiplier 4, global QoS (RabbitMQ 3.x), as Celery sets it.
    assert wait_for(lambda: (0, 8) in channel_prefetch() or None, 20, "global prefetch 8")
    app = producer(c)
    app.send_task("tasks.add", (1, 1), countdown=120)
    wait_for(lambda: (0, 9) in channel_prefetch() or None, 20, "prefetch raised to 9")


def test_quorum_queues_use_consumer_qos_and_native_delayed_delivery(vhost, start):
    settings, queues = QUEUE_CONFIGS["quorum"]
    c = conf(**settings)
    start(c, queues=queues)
    # Quorum queues refuse global QoS: Celery sets the prefetch count per consumer.
    wait_for(lambda: consumer_prefetch("qq") == [(8, 0)] or None, 20, "per-consumer prefetch 8")
    app = producer(c)
    result = app.send_task("tasks.add", (20, 22), countdown=9)
    # 9 s = 0b1001: the message waits in celery_delayed_3 (8 s; RabbitMQ's message counts
    # of quorum queues lag by seconds), then celery_delayed_0.
    wait_for(lambda: queue_counts().get("celery_delayed_3", (0, 0))[0] == 1 or None, 20,
             "the message in the delay levels")
    assert result.get(timeout=60) == 42


def test_a_countdown_the_worker_publishes_to_a_quorum_queue_is_delayed_by_the_broker(vhost, start):
    settings, queues = QUEUE_CONFIGS["quorum"]
    c = conf(**settings)
    start(c, queues=queues)
    app = producer(c)
    add = app.tasks["tasks.add"]
    # The worker publishes the chain's second step with its countdown: through the delay
    # levels, as Celery's send_task routes it when quorum queues are in use.
    result = chain(add.s(1, 2), add.si(3, 4).set(countdown=9)).apply_async()
    wait_for(lambda: queue_counts().get("celery_delayed_3", (0, 0))[0] == 1 or None, 20,
             "the step in the delay levels")
    assert result.get(timeout=60) == 7
    assert app.send_task("tasks.retry_until", (2,)).get(timeout=60) == 2


@pytest.mark.parametrize("acks_late", [True, False])
def test_acks_late_keeps_the_message_unacknowledged_while_the_task_runs(vhost, start, acks_late):
    c = conf(task_acks_late=acks_late, task_track_started=True)
    start(c)
    app = producer(c)
    r = app.send_task("tasks.sleep", (4,))
    wait_for(lambda: r.state == "STARTED" or None, 30, "the task started")
    assert queue_counts()["celery"] == (0, 1 if acks_late else 0)
    assert r.get(timeout=30) == 4
    wait_for(lambda: queue_counts()["celery"] == (0, 0) or None, 20, "the message acked")


def test_reject_without_requeue_drops_and_with_requeue_redelivers(vhost, start):
    # With acks_late: an early-acked message has nothing left to reject.
    c = conf(task_acks_late=True)
    w = start(c)
    app = producer(c)
    app.send_task("tasks.reject", ("no",), task_id="reject-drop")
    wait_for(lambda: "reject-drop" in w.log() or None, 20, "the reject")
    wait_for(lambda: queue_counts()["celery"] == (0, 0) or None, 20, "the message dropped")
    app.send_task("tasks.reject", ("again",), kwargs={"requeue": True}, task_id="reject-requeue")
    wait_for(lambda: len(re.findall(r"tasks\.reject\[reject-requeue\] received", w.log())) >= 3
             or None, 30, "the message delivered again")


def test_retry_chain_and_chord_publish_through_the_worker(vhost, start):
    c = conf()
    start(c)
    app = producer(c)
    assert app.send_task("tasks.retry_until", (3,)).get(timeout=60) == 3
    add, xsum = app.tasks["tasks.add"], app.tasks["tasks.xsum"]
    assert chain(add.s(1, 2), add.s(3), add.s(4)).apply_async().get(timeout=60) == 10
    assert chord([add.s(i, i) for i in range(4)], xsum.s()).apply_async().get(timeout=60) == 12


def test_a_lost_connection_heals(vhost, start):
    """The server closes every connection of the vhost while an acks_late task runs: the
    worker reconnects, declares again and goes on consuming; the message it held comes back
    (RabbitMQ requeues what the closed channel held) and runs again, and the first run's ack,
    for a channel that is gone, changes nothing."""
    c = conf(task_acks_late=True, task_track_started=True)
    w = start(c)
    app = producer(c)
    r = app.send_task("tasks.sleep", (3,))
    wait_for(lambda: r.state == "STARTED" or None, 30, "the task started")
    close_connections()
    assert r.get(timeout=60) == 3
    assert app.send_task("tasks.add", (2, 3)).get(timeout=60) == 5
    wait_for(lambda: queue_counts().get("celery") == (0, 0) or None, 60, "every message settled")
    assert w.proc.poll() is None, w.log()


def test_held_eta_messages_run_once_after_the_connection_closes(vhost, start):
    """ETA messages the worker holds when the server closes its connection: RabbitMQ requeues
    them and delivers them again; the copies held from the closed channel are dropped (Celery
    clears its held requests when its connection closes), so each task runs once."""
    c = conf()
    w = start(c)
    app = producer(c)
    n = 10
    results = [app.send_task("tasks.add", (i, i), countdown=8) for i in range(n)]
    wait_for(lambda: queue_counts().get("celery") == (0, n) or None, 30,
             "the worker to hold every ETA message")
    close_connections()
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(n)]
    time.sleep(1.0)
    log = w.log()
    runs = {r.id: len(re.findall(rf"\[{r.id}\] succeeded", log)) for r in results}
    assert runs == {r.id: 1 for r in results}, log[-4000:]
