#!/usr/bin/env python
"""Chord benchmark: rcelery vs Python Celery (prefork -c 2) firing one big chord.

A private redis-server (no password; --port / env RCELERY_BENCH_REDIS_PORT, default 6391)
gets `chord(group(tasks.add.s(i, i) for i in range(N)), tasks.xsum.s())` from the real Python
client, with no worker running: the header size key and the N header messages are DUMPed
once and RESTOREd before each run, so every worker sees byte-identical input. Each header part
stores its result and records itself in Celery's chord counters; the last one sends the body.
Measured per run: from the worker's `ready.` line to the body's result being stored.

Prints a table and writes benches/results/chord-latest.json.
Usage: python benches/chord.py [--n 5000] [--runs 3] [--workers rust,prefork]
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-fixtures"))

BROKER_DB, RESULT_DB = 3, 4
KINDS = {"rust": ("rcelery -c 2", {"kind": "rust"}),
         "prefork": ("celery prefork -c 2", {"kind": "python"}),
         "solo": ("celery solo", {"kind": "python", "pool": "solo"})}


def publish_chord(app, n):
    """Applies the chord with no worker running; returns the body id and the DUMPs to restore."""
    from celery import chord, group
    t = app.tasks
    r = chord(group(t["tasks.add"].s(i, i) for i in range(n)), t["tasks.xsum"].s()).delay()
    broker = app.connection_for_write().default_channel.client
    assert broker.llen("default") == n, "messages went elsewhere"
    size_key = f"celery-taskset-meta-{r.parent.id}.s"
    return r.id, size_key, broker.dump("default")


def run(label, kw, server, conf, body_id, size_key, dumps, n, workdir):
    from harness import Worker
    broker, backend = server.client(BROKER_DB), server.client(RESULT_DB)
    server.client().flushall()
    queue_dump, size_dump = dumps
    broker.restore("default", 0, queue_dump)
    backend.restore(size_key, 0, size_dump)
    w = Worker(conf, workdir, **kw)
    w.start(wait_ready=False)
    try:
        w.wait_ready(120)
        ready = time.monotonic()
        key = f"celery-task-meta-{body_id}"
        while not backend.exists(key):
            if not w.alive():
                raise RuntimeError(f"{label} died:\n{w.log_tail()}")
            time.sleep(0.005)
        done = time.monotonic()
        meta = json.loads(backend.get(key))
    finally:
        w.stop()
    assert meta["status"] == "SUCCESS" and meta["result"] == 2 * sum(range(n)), meta
    return round(done - ready, 3)


def main():
    parser = argparse.ArgumentParser(description="rcelery vs Celery chord benchmark")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="rust,prefork")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RCELERY_BENCH_REDIS_PORT", 6391)))
    parser.add_argument("--out", default=str(ROOT / "benches" / "results" / "chord-latest.json"))
    args = parser.parse_args()
    kinds = [KINDS[w.strip()] for w in args.workers.split(",")]

    os.environ.update({"REDIS_MQ_HOST": "127.0.0.1", "REDIS_MQ_PORT": str(args.port),
                       "REDIS_MQ_PASSWORD": "", "REDIS_MQ_DB": str(BROKER_DB),
                       "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:{args.port}/{RESULT_DB}"})
    for var in ("CELERY_BROKER_URL", "RCELERY_FIXTURE_CONFIG"):
        os.environ.pop(var, None)
    from harness import RedisServer, effective_config, rcelery_binary
    if any(kw["kind"] == "rust" for _, kw in kinds):
        rcelery_binary()
    server = RedisServer(args.port).start()
    results = {label: [] for label, _ in kinds}
    try:
        from tasks.task import app
        conf = effective_config(app, {})
        server.client().flushall()
        body_id, size_key, queue_dump = publish_chord(app, args.n)
        size_dump = server.client(RESULT_DB).dump(size_key)
        with tempfile.TemporaryDirectory(prefix="rcelery-chord-bench-") as tmp:
            # Alternate the workers run by run: this VM's speed drifts over minutes.
            for i in range(args.runs):
                for label, kw in kinds:
                    s = run(label, kw, server, conf, body_id, size_key, (queue_dump, size_dump),
                            args.n, Path(tmp) / f"{i}-{kw['kind']}-{kw.get('pool', '')}")
                    results[label].append(s)
                    print(f"{label} run {i + 1}: {s}s", file=sys.stderr)
    finally:
        server.stop()
    rows = []
    for label, times in results.items():
        best = min(times)
        rows.append({"worker": label, "runs_s": times, "best_s": best,
                     "header_tasks_per_s": round(args.n / best, 1)})
    print(f"{'worker':<22}{'best s':>10}{'header tasks/s':>16}  runs")
    for r in rows:
        print(f"{r['worker']:<22}{r['best_s']:>10}{r['header_tasks_per_s']:>16}  {r['runs_s']}")
    ratio = {}
    by = {r["worker"]: r for r in rows}
    if "rcelery -c 2" in by:
        for other in ("celery prefork -c 2", "celery solo"):
            if other in by:
                ratio[f"rcelery/{other.split()[1]}"] = round(by[other]["best_s"] / by["rcelery -c 2"]["best_s"], 2)
    for k, v in ratio.items():
        print(f"{k}: x{v}")
    import celery
    out = {"n": args.n, "chord": "chord(group(tasks.add.s(i, i) for i in range(n)), tasks.xsum.s())",
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "python": platform.python_version(), "celery": celery.__version__},
           "rows": rows, "ratios": ratio, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
