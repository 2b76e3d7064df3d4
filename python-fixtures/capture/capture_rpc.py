#!/usr/bin/env python
"""Capture the result messages a real Celery worker publishes with `result_backend="rpc://"`
-> golden/rpc/<case>.json.

The producer is the fixture project's app (tasks/celery_config.py: pickle tasks, json
results, timezone Asia/Shanghai, queue `default`) with the rpc backend, on a private
redis-server. Every call names the reply queue `rpc-capture-<case>` (apply_async's
`reply_to`), so no client consumes the replies: the worker's messages stay in that Redis
list (kombu's Redis transport routes the anonymous exchange straight to the list named by
the routing key) and are read raw with LRANGE, oldest first. One pass per setting variant
(plain, task_track_started, result_extended, result_serializer=pickle, result_persistent),
each with a real Python worker (--pool=solo). Folders of this machine in tracebacks are
replaced by `<site-packages>` and `<root>` (the body re-encoded as kombu encoded it).

Usage: python capture/capture_rpc.py [--port 6392]   (env CAPTURE_REDIS_PORT also works).
See golden/README.md for the file format. Never edit the outputs by hand.
"""
import argparse
import datetime
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

OUT = FIXTURES / "golden" / "rpc"
PASSWORD = "123456"
BROKER_DB = 3
NS = uuid.UUID("6f1c3b1e-5d4c-4b7a-9c2e-0000000000c0")


def without_machine_paths(raw_envelope):
    """The envelope with this machine's folders in the body's traceback replaced by
    `<site-packages>` and `<root>` (the body is re-encoded; a pickle body is re-pickled with
    the protocol kombu used, checked to reproduce the original bytes first)."""
    import base64
    import pickle
    import celery
    site = str(Path(celery.__file__).resolve().parent.parent)
    root = str(FIXTURES.parent)

    def clean(text):
        return text.replace(site, "<site-packages>").replace(root, "<root>")
    env = json.loads(raw_envelope)
    body = base64.b64decode(env["body"])
    if env["content-type"] == "application/json":
        new = clean(body.decode("utf-8")).encode("utf-8")
    else:
        meta = pickle.loads(body)
        if pickle.dumps(meta, protocol=4) != body:
            raise RuntimeError("a pickle body does not re-pickle to the same bytes")
        if isinstance(meta.get("traceback"), str):
            meta["traceback"] = clean(meta["traceback"])
        new = pickle.dumps(meta, protocol=4)
    old_b64, new_b64 = env["body"], base64.b64encode(new).decode("ascii")
    if raw_envelope.count(old_b64) != 1:
        raise RuntimeError("the body is not found once in its envelope")
    return raw_envelope.replace(old_b64, new_b64)


def task_id_for(name):
    """Deterministic, uuid-shaped task id of a case."""
    return str(uuid.uuid5(NS, name))


def reply_queue(case):
    return f"rpc-capture-{case}"


def past():
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)


def cases_for(app, variant):
    """{case: (task, args, kwargs, options, final message count)} of a pass."""
    from celery import chord
    if variant == "plain":
        return {
            "add": ("tasks.add", (2, 3), {}, {"serializer": "json"}, 1),
            "add_pickle_task": ("tasks.add", (2, 3), {}, {"serializer": "pickle"}, 1),
            "fail": ("tasks.fail", (), {}, {}, 1),
            "retry": ("tasks.retry_until", (1,), {}, {}, 2),
            "group_member": ("tasks.add", (1, 2), {}, {
                "group_id": task_id_for("the-group"), "group_index": 0,
                "parent_id": task_id_for("the-parent"), "root_id": task_id_for("the-root")}, 1),
            "expired": ("tasks.add", (1, 1), {}, {"expires": past()}, 1),
            "unknown": ("tasks.not_registered_anywhere", (), {}, {}, 1),
            "chord_callback": ("tasks.add", (1, 1), {}, {"link": chord(
                [app.signature("tasks.add", (1, 1))], app.signature("tasks.xsum"))}, 1),
        }
    if variant == "started":
        return {"add_started": ("tasks.add", (2, 3), {}, {}, 2)}
    if variant == "extended":
        return {
            "add_extended": ("tasks.add", (2, 3), {}, {}, 1),
            "fail_extended": ("tasks.fail", ("bad",), {"exc_type": "KeyError"}, {}, 1),
        }
    if variant == "pickle":
        return {
            "add_pickle_result": ("tasks.add", (2, 3), {}, {}, 1),
            "fail_pickle_result": ("tasks.fail", (), {}, {}, 1),
        }
    if variant == "persistent":
        return {"add_persistent": ("tasks.add", (2, 3), {}, {}, 1)}
    raise ValueError(variant)


VARIANTS = {
    "plain": {},
    "started": {"task_track_started": True},
    "extended": {"result_extended": True},
    "pickle": {"result_serializer": "pickle"},
    "persistent": {"result_persistent": True},
}


def producer_app():
    from celery import Celery
    app = Celery("celery")
    app.config_from_object("tasks.celery_config", silent=True, force=True)
    app.conf.result_backend = "rpc://"
    return app


def run_pass(app, server, workdir, variant, versions):
    broker = server.client(BROKER_DB)
    server.client().flushall()
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).declare()
    cases = cases_for(app, variant)
    for name, (task, args, kwargs, options, _) in cases.items():
        app.send_task(task, args, kwargs, task_id=task_id_for(name),
                      reply_to=reply_queue(name), **options)
    overrides = dict(VARIANTS[variant], result_backend="rpc://")
    worker = Worker(effective_config(app, overrides), workdir, kind="python", pool="solo")
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(broker.llen(reply_queue(n)) >= c[4] for n, c in cases.items()):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"replies missing:\n{worker.log_tail()}")
        time.sleep(0.5)  # nothing more should come
    finally:
        rc = worker.stop()
    if rc != 0:
        raise RuntimeError(f"worker exit code {rc}:\n{worker.log_tail()}")
    for name, (task, args, kwargs, options, count) in cases.items():
        raws = [without_machine_paths(r.decode("utf-8"))
                for r in reversed(broker.lrange(reply_queue(name), 0, -1))]
        if len(raws) != count:
            raise RuntimeError(f"{name}: {len(raws)} replies, expected {count}")
        path = OUT / f"{name}.json"
        path.write_text(json.dumps({
            "case": name, "task_id": task_id_for(name), "task": task,
            "settings": VARIANTS[variant], "reply_to": reply_queue(name),
            "messages": raws, "versions": versions,
        }, indent=2, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CAPTURE_REDIS_PORT", 6392)))
    args = parser.parse_args()
    os.environ.update({"REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(args.port),
                       "REDIS_MQ_PASSWORD": PASSWORD, "REDIS_MQ_DB": str(BROKER_DB),
                       "CELERY_RESULT_BACKEND": "rpc://"})
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("RCELERY_FIXTURE_CONFIG", None)
    import celery
    import kombu
    versions = {"celery": celery.__version__, "kombu": kombu.__version__}
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    server = RedisServer(args.port, PASSWORD).start()
    try:
        import tasks.task  # noqa: F401  (django setup, as the worker has it)
        app = producer_app()
        with tempfile.TemporaryDirectory(prefix="rcelery-capture-rpc-") as tmp:
            for variant in VARIANTS:
                run_pass(app, server, Path(tmp) / variant, variant, versions)
    finally:
        server.stop()
    print(f"wrote {len(list(OUT.glob('*.json')))} cases to {OUT}")


if __name__ == "__main__":
    main()
