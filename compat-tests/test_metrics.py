"""rcelery's Prometheus endpoint (`rcelery_metrics_addr` / `--metrics-addr`) scraped while
tasks run, and its `/healthz`. rcelery's own feature: the Python worker has no such
endpoint, so these tests are skipped for RCELERY_WORKER=python.
"""
import re
import socket
import urllib.error
import urllib.request

import pytest

from helpers import wait_for


@pytest.fixture
def metrics_worker(workers, kind):
    if kind != "rust":
        pytest.skip("rcelery's own endpoint: the Python worker has none")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers.start({"rcelery_metrics_addr": f"127.0.0.1:{port}"})
    yield f"http://127.0.0.1:{port}"
    workers.stop()


def scrape(base, path="/metrics"):
    try:
        with urllib.request.urlopen(f"{base}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def value(text, name, **labels):
    """The sample `name{labels}` in the exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{([^}]*)\})? (\S+)", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return None


def test_metrics_count_tasks_while_they_run(metrics_worker, app):
    import tasks.task as t
    ok = [t.add.apply_async((i, i), serializer="json") for i in range(3)]
    failed = t.fail.apply_async(("boom",), serializer="json")
    assert [r.get(timeout=30) for r in ok] == [0, 2, 4]
    wait_for(lambda: failed.ready(), 30, "the failing task")

    def counted():
        text = scrape(metrics_worker)[1]
        done = value(text, "rcelery_tasks_succeeded_total", task="tasks.add") == 3 and \
            value(text, "rcelery_tasks_failed_total", task="tasks.fail") == 1
        return text if done else None
    text = wait_for(counted, 10, "the metrics to count the tasks")
    assert value(text, "rcelery_tasks_received_total", task="tasks.add") == 3
    assert value(text, "rcelery_task_runtime_seconds_count", task="tasks.add") == 3
    assert value(text, "rcelery_task_wait_seconds_count", task="tasks.add") == 3
    assert value(text, "rcelery_active_tasks") == 0
    assert value(text, "rcelery_link_up", link="broker") in (None, 1.0)
    assert value(text, "rcelery_eta_held_messages") == 0
    assert text.rstrip().endswith("# EOF")

    status, body = scrape(metrics_worker, "/healthz")
    assert (status, body.splitlines()[0]) == (200, "ok")
