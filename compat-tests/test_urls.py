"""Broker and backend URLs as kombu and Celery read them; passwords never printed.

These tests run the rcelery worker whatever RCELERY_WORKER says: they check how rcelery
reads URLs (kombu's own broker transport refuses `?password=` on a redis:// URL, so the
Python worker cannot be started with it).
"""
import os
import subprocess

import pytest

from conftest import BROKER_DB, PASSWORD, PORT, RESULT_DB
from harness import rcelery_binary

SECRET = "S3cretPw"


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


def test_a_password_in_the_query_reaches_a_protected_server(workers, t):
    """`?password=` on both URLs; the producer uses the ordinary `redis://:pw@` form."""
    worker = workers.start({
        "broker_url": f"redis://127.0.0.1:{PORT}/{BROKER_DB}?password={PASSWORD}",
        "result_backend": f"redis://127.0.0.1:{PORT}/{RESULT_DB}?password={PASSWORD}",
    }, kind="rust")
    assert t.add.delay(2, 3).get(timeout=30) == 5
    assert t.echo.delay("hello").get(timeout=30) == {"args": ["hello"], "kwargs": {}}
    workers.stop()
    log = worker.log()
    assert "password=**" in log, "the banner shows the URLs, masked"
    assert PASSWORD not in log


# Each holds SECRET (or pieces of it) where a password goes; none of it may be printed.
BAD_URLS = [
    # The case: a raw '/' and '#' end urllib's host part, so the "port" is "ab".
    pytest.param(f"redis://:ab/cd#{SECRET}@127.0.0.1:{PORT}/{BROKER_DB}", "invalid {role} URL",
                 ("ab/cd", "cd#", SECRET), id="raw-slash-and-hash"),
    pytest.param(f"redis://:{SECRET}?x@127.0.0.1:{PORT}/{BROKER_DB}", "invalid {role} URL",
                 (SECRET,), id="raw-question-mark"),
    pytest.param(f"redis://:{SECRET}", "invalid {role} URL", (SECRET,), id="host-forgotten"),
    pytest.param(f"redis://127.0.0.1:{PORT}/x{SECRET}?password={SECRET}", "invalid {role} URL",
                 (SECRET,), id="bad-db-and-query-password"),
    pytest.param(f"amqp://guest:{SECRET}@127.0.0.1//", "not supported", (SECRET,),
                 id="unsupported-scheme"),
    pytest.param(f":{SECRET}@127.0.0.1:{PORT}", "not a URL", (SECRET,), id="no-scheme"),
]


@pytest.mark.parametrize("role", ["broker", "result backend"])
@pytest.mark.parametrize("url,message,secrets", BAD_URLS)
def test_an_unusable_url_fails_clearly_without_printing_its_password(
        redis_server, tmp_path, role, url, message, secrets):
    good = f"redis://:{PASSWORD}@127.0.0.1:{PORT}/{BROKER_DB}"
    broker, backend = (url, good) if role == "broker" else (good, url)
    logfile = tmp_path / "worker.log"
    proc = subprocess.run(
        [os.path.abspath(rcelery_binary()), "worker", "-b", broker, "--result-backend", backend, "-l", "debug",
         "--logfile", str(logfile)],
        cwd=tmp_path, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    log = logfile.read_text(errors="replace") if logfile.exists() else ""
    assert proc.returncode != 0, f"the worker must refuse the URL; stderr: {stderr}"
    expected = message.format(role=role)
    assert expected in stderr, f"expected {expected!r} on stderr: {stderr}"
    assert expected in log, f"expected {expected!r} in the log: {log}"
    for where, text in (("stdout", stdout), ("stderr", stderr), ("log", log)):
        for secret in secrets:
            assert secret not in text, f"{secret!r} printed on {where}: {text}"
