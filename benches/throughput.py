#!/usr/bin/env python
"""Drain-throughput and memory benchmark: rcelery vs Python Celery (prefork and solo).

A private redis-server (no password; --port / env RCELERY_BENCH_REDIS_PORT, default 6391)
gets N `tasks.add` messages from the real Python producer once; the queue is DUMPed and
RESTOREd before each worker run, so every worker drains byte-identical messages. Each
worker runs with results stored and task_acks_late=True (tasks/celery_config.py). Measured:

* drain time: from the worker's `ready.` line to N result keys present (also from spawn);
* peak RSS: sum over the worker's process tree, sampled with psutil every 20 ms;
* idle RSS: 2 s after `ready.` with an empty queue.

With `--backends redis,postgresql` each worker also drains the same messages with its results
in PostgreSQL (`db+postgresql://`, Celery's SQLAlchemy tables, a fresh database per run on the
machine's server at RCELERY_BENCH_PG, default postgresql://postgres@127.0.0.1:5432); the drain
ends when N rows are in `celery_taskmeta`. `--backends django-db` does the same through
django-celery-results (`result_backend = "django-db"`, its tables migrated by Django), the
drain ending at N rows in `django_celery_results_taskresult`.

`--brokers` picks where the messages wait (comma-separated; every worker drains on each):
`redis` (the default, above); `amqp`, a vhost of the run's own on the machine's RabbitMQ
(127.0.0.1:5672, guest/guest; scripts/rabbitmq.sh starts it), where the N messages are
published again before each worker (RabbitMQ has no DUMP; the messages differ in their ids
only); `filesystem`, kombu's `filesystem://` transport on a folder of the run's own, the N
message files written once and copied back before each worker. Results go to Redis (or
`--backends`) whatever the broker.

Prints a table and writes benches/results/latest.json.
Usage: python benches/throughput.py [--n 20000] [--workers all|python|rust,prefork,solo]
       [--backends redis|postgresql|django-db (comma-separated)]
       [--brokers redis|amqp|filesystem (comma-separated)]
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-fixtures"))

BROKER_DB, RESULT_DB = 3, 4
KINDS = {  # label -> Worker kwargs
    "rcelery -c 2": {"kind": "rust"},
    "celery prefork -c 2": {"kind": "python"},
    "celery solo": {"kind": "python", "pool": "solo"},
}
ALIASES = {"rust": ["rcelery -c 2"], "prefork": ["celery prefork -c 2"],
           "solo": ["celery solo"], "python": ["celery prefork -c 2", "celery solo"]}


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; keeps the peak."""

    def __init__(self, pid, interval=0.02):
        super().__init__(daemon=True)
        import psutil
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.halt = threading.Event()

    def sample(self):
        import psutil
        total = 0
        try:
            for p in [self.proc] + self.proc.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        self.peak = max(self.peak, total)
        return total

    def run(self):
        while not self.halt.is_set():
            self.sample()
            time.sleep(self.interval)

    def stop(self):
        self.halt.set()
        self.join(2)


def publish(app, n):
    """Publish n tasks.add with the real producer."""
    add = app.tasks["tasks.add"]
    with app.producer_or_acquire() as producer:
        for i in range(n):
            add.apply_async((i, i), producer=producer)


class RedisQueue:
    """Messages in the private Redis, db 3: published once, DUMPed, RESTOREd per worker."""

    name = "redis"

    def __init__(self, server):
        self.server = server
        self.url = f"redis://127.0.0.1:{server.port}/{BROKER_DB}"
        self.transport_options = {}
        self.dump = None

    def prepare(self, app, n):
        publish(app, n)
        client = self.server.client(BROKER_DB)
        assert client.llen("default") == n, "messages went elsewhere"
        self.dump = client.dump("default")

    def load(self, app, n):
        """Put the N messages on the queue (the server was flushed before)."""
        self.server.client(BROKER_DB).restore("default", 0, self.dump)

    def clear(self, app):
        self.server.client(BROKER_DB).flushdb()

    def close(self):
        pass


class AmqpQueue:
    """Messages in a vhost of the run's own on RabbitMQ, published again per worker."""

    name = "amqp"

    def __init__(self, server):
        from harness.brokers import AmqpBroker
        os.environ.setdefault("RCELERY_TEST_AMQP_VHOST", "rcelery-bench")
        self.broker = AmqpBroker().start()
        self.url = self.broker.url
        self.transport_options = {}

    def prepare(self, app, n):
        self.broker.app = app

    def load(self, app, n):
        self.clear(app)
        t0 = time.monotonic()
        publish(app, n)
        wait = time.monotonic() + 60
        while self.broker.ready() < n and time.monotonic() < wait:
            time.sleep(0.05)
        assert self.broker.ready() == n, "messages went elsewhere"
        print(f"  published {n} to RabbitMQ in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def clear(self, app):
        self.broker.clean()

    def close(self):
        self.broker.stop()


class FilesystemQueue:
    """kombu's filesystem transport: message files written once, copied back per worker."""

    name = "filesystem"

    def __init__(self, server):
        from harness.brokers import FilesystemBroker
        self.broker = FilesystemBroker()
        self.url = self.broker.url
        self.transport_options = self.broker.transport_options
        self.saved = self.broker.root / "saved"

    def prepare(self, app, n):
        self.broker.app = app
        publish(app, n)
        assert self.broker.ready() == n, "messages went elsewhere"
        shutil.copytree(self.broker.queue_dir, self.saved)

    def load(self, app, n):
        self.clear(app)
        for path in self.saved.iterdir():
            shutil.copy2(path, self.broker.queue_dir / path.name)

    def clear(self, app):
        for path in self.broker.queue_dir.iterdir():
            path.unlink()

    def close(self):
        self.broker.stop()


QUEUES = {"redis": RedisQueue, "amqp": AmqpQueue, "filesystem": FilesystemQueue}


def wait_ready_time(worker, timeout=120):
    """Monotonic time at which the worker logged `ready.`."""
    worker.wait_ready(timeout)
    return time.monotonic()


PG = os.environ.get("RCELERY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


class RedisResults:
    """Results in Redis db 4 (the fixture's default)."""

    name = "redis"

    def __init__(self, server, port):
        self.client = server.client(RESULT_DB)
        self.url = f"redis://127.0.0.1:{port}/{RESULT_DB}"

    def fresh(self):
        os.environ["CELERY_RESULT_BACKEND"] = self.url

    def conf(self):
        return {}

    def count(self):
        return self.client.dbsize()

    def close(self):
        pass


class PostgresResults:
    """Results in a fresh PostgreSQL database per run (`db+postgresql://`)."""

    name = "postgresql"
    table = "celery_taskmeta"

    def __init__(self, server, port):
        import psycopg2
        self.psycopg2 = psycopg2
        self.admin = psycopg2.connect(f"{PG}/postgres")
        self.admin.autocommit = True
        self.db = None
        self.conn = None

    def fresh(self):
        self.close()
        self.db = f"rc_bench_{uuid.uuid4().hex[:10]}"
        self.admin.cursor().execute(f"CREATE DATABASE {self.db}")
        os.environ["CELERY_RESULT_BACKEND"] = f"db+{PG}/{self.db}"

    def count(self):
        if self.conn is None:
            self.conn = self.psycopg2.connect(f"{PG}/{self.db}")
            self.conn.autocommit = True
        cur = self.conn.cursor()
        cur.execute(f"SELECT to_regclass('{self.table}') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute(f"SELECT COUNT(*) FROM {self.table}")
        return cur.fetchone()[0]

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.db:
            self.admin.cursor().execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            self.db = None

    def conf(self):
        return {}


class DjangoDbResults(PostgresResults):
    """Results through django-celery-results (`django-db`) in a fresh PostgreSQL database
    per run, migrated with `manage.py migrate`: the Python worker's Django reads it from the
    DJANGO_DB_* variables, rcelery from `database_url`."""

    name = "django-db"
    table = "django_celery_results_taskresult"

    def fresh(self):
        from harness.django_db import migrate
        super().fresh()
        env = {"DJANGO_DB_ENGINE": "postgresql", "DJANGO_DB_NAME": self.db,
               "DJANGO_DB_HOST": "127.0.0.1", "DJANGO_DB_PORT": "5432",
               "DJANGO_DB_USER": "postgres", "DJANGO_DB_PASSWORD": ""}
        migrate(env)
        os.environ.update(env)
        os.environ["CELERY_RESULT_BACKEND"] = "django-db"

    def conf(self):
        return {"database_url": f"{PG}/{self.db}"}


BACKENDS = {"redis": RedisResults, "postgresql": PostgresResults,
            "django-db": DjangoDbResults}


def run_worker(label, app, server, queue, conf, n, workdir, results):
    from harness import Worker
    server.client().flushall()
    queue.clear(app)
    results.fresh()
    conf = dict(conf, result_backend=os.environ["CELERY_RESULT_BACKEND"], **results.conf())
    # Idle RSS on an empty queue first.
    w = Worker(conf, workdir / "idle", **KINDS[label])
    w.start()
    time.sleep(2)
    idle = RssSampler(w.proc.pid).sample()
    w.stop()
    server.client().flushall()
    results.fresh()
    conf = dict(conf, result_backend=os.environ["CELERY_RESULT_BACKEND"], **results.conf())
    queue.load(app, n)
    w = Worker(conf, workdir / "drain", **KINDS[label])
    spawned = time.monotonic()
    w.start(wait_ready=False)
    sampler = RssSampler(w.proc.pid)
    sampler.start()
    try:
        ready = wait_ready_time(w)
        while results.count() < n:
            if not w.alive():
                raise RuntimeError(f"{label} died:\n{w.log_tail()}")
            time.sleep(0.01 if results.name == "redis" else 0.05)
        done = time.monotonic()
    finally:
        sampler.stop()
        rc = w.stop()
    return {"worker": label, "broker": queue.name, "backend": results.name, "n": n, "drain_s": round(done - ready, 3),
            "drain_from_spawn_s": round(done - spawned, 3),
            "tasks_per_s": round(n / (done - ready), 1),
            "peak_rss_mib": round(sampler.peak / 2 ** 20, 1),
            "idle_rss_mib": round(idle / 2 ** 20, 1), "exit_code": rc}


def ratios(runs):
    out = {}
    for broker in QUEUES:
        for backend in BACKENDS:
            by = {r["worker"]: r for r in runs if r.get("backend", "redis") == backend
                  and r.get("broker", "redis") == broker}
            rust = by.get("rcelery -c 2")
            for other in ("celery prefork -c 2", "celery solo"):
                if not (rust and other in by):
                    continue
                key = "prefork" if "prefork" in other else "solo"
                where = [x for x in (broker, backend) if x != "redis"]
                suffix = f" ({', '.join(where)})" if where else ""
                out[f"rcelery/{key}{suffix}"] = {
                    "tasks_per_s": round(rust["tasks_per_s"] / by[other]["tasks_per_s"], 2),
                    "peak_rss": round(rust["peak_rss_mib"] / by[other]["peak_rss_mib"], 3)}
    return out


def print_table(runs, rat):
    print(f"{'worker':<22}{'broker':<12}{'results':<12}{'tasks/s':>10}{'drain s':>10}"
          f"{'peak RSS MiB':>14}{'idle RSS MiB':>14}")
    for r in runs:
        print(f"{r['worker']:<22}{r['broker']:<12}{r['backend']:<12}{r['tasks_per_s']:>10}"
              f"{r['drain_s']:>10}"
              f"{r['peak_rss_mib']:>14}{r['idle_rss_mib']:>14}")
    for k, v in rat.items():
        print(f"{k}: throughput x{v['tasks_per_s']}, peak RSS x{v['peak_rss']}")


def parse_args():
    parser = argparse.ArgumentParser(description="rcelery vs Celery drain benchmark")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--workers", default="all", help="all, python, or rust,prefork,solo")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RCELERY_BENCH_REDIS_PORT", 6391)))
    parser.add_argument("--backends", default="redis",
                        help="where results go: redis, postgresql, django-db, comma-separated")
    parser.add_argument("--brokers", default="redis",
                        help="where the messages wait: redis, amqp, filesystem, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "benches" / "results" / "latest.json"))
    return parser.parse_args()


def run_broker(args, broker):
    """Every worker and backend on one broker, in this process (the producer's app reads its
    broker URL once, at import)."""
    labels = list(KINDS) if args.workers == "all" else \
        [lab for w in args.workers.split(",") for lab in ALIASES[w.strip()]]
    os.environ.update({"REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(args.port),
                       "REDIS_MQ_PASSWORD": "", "REDIS_MQ_DB": str(BROKER_DB),
                       "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:{args.port}/{RESULT_DB}"})
    for var in ("CELERY_BROKER_URL", "RCELERY_FIXTURE_CONFIG", "RCELERY_TEST_BROKER_URL",
                "RCELERY_TEST_BROKER_OPTIONS"):
        os.environ.pop(var, None)
    from harness import RedisServer, effective_config, rcelery_binary
    if "rcelery -c 2" in labels:
        rcelery_binary()  # build before timing anything
    server = RedisServer(args.port).start()
    queue = None
    try:
        queue = QUEUES[broker](server)
        if broker != "redis":  # read by tasks/celery_config.py (the producer and Python workers)
            os.environ["RCELERY_TEST_BROKER_URL"] = queue.url
            if queue.transport_options:
                os.environ["RCELERY_TEST_BROKER_OPTIONS"] = json.dumps(queue.transport_options)
        from tasks.task import app
        assert app.conf.broker_url == queue.url, (app.conf.broker_url, queue.url)
        conf = effective_config(app, {})
        t0 = time.monotonic()
        queue.prepare(app, args.n)
        print(f"enqueued {args.n} tasks.add in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        runs = []
        with tempfile.TemporaryDirectory(prefix="rcelery-bench-") as tmp:
            for name in args.backends.split(","):
                results = BACKENDS[name.strip()](server, args.port)
                try:
                    for label in labels:
                        workdir = Path(tmp) / f"{len(runs)}"
                        runs.append(run_worker(label, app, server, queue, conf, args.n,
                                               workdir, results))
                        print(f"{label} ({broker}, {name}): {runs[-1]}", file=sys.stderr)
                finally:
                    results.close()
    finally:
        if queue is not None:
            queue.close()
        server.stop()
    return runs


def main():
    args = parse_args()
    brokers = [b.strip() for b in args.brokers.split(",")]
    if len(brokers) == 1:
        runs = run_broker(args, brokers[0])
    else:  # one process per broker, one after the other; the table joins them
        import subprocess
        runs = []
        for broker in brokers:
            with tempfile.NamedTemporaryFile(suffix=".json") as part:
                cmd = [sys.executable, __file__, "--n", str(args.n), "--workers", args.workers,
                       "--port", str(args.port), "--backends", args.backends,
                       "--brokers", broker, "--out", part.name]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                runs += json.loads(Path(part.name).read_text())["runs"]
    rat = ratios(runs)
    print_table(runs, rat)
    import celery
    result = {"n": args.n, "task": "tasks.add", "settings": "tasks/celery_config.py "
              "(task_acks_late=True, results in Redis db 4 unless --backends, prefetch "
              "multiplier 4)", "brokers": brokers,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "celery": celery.__version__,
                          "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
              "runs": runs, "ratios": rat,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
