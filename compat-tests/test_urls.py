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
from harness.tls import make_certs

# redis:// and rediss:// URLs (passwords in the query, TLS): Redis only.
pytestmark = pytest.mark.broker("redis")

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
    pytest.param(f"sqs://key:{SECRET}@127.0.0.1//", "not supported", (SECRET,),
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


# -- TLS ------------------------------------------------------------------------------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_server(tmp_path):
    """A password-protected redis-server that speaks only TLS, on a free port."""
    import time
    ca, cert, key = make_certs(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
         "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import socket
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, f"TLS redis-server exited: {proc.stderr.read().decode(errors='replace')}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "TLS redis-server did not start listening"
            time.sleep(0.05)
    yield port, ca
    proc.terminate()
    proc.wait(10)


def test_a_worker_on_rediss_verifies_the_server_and_runs_tasks(app, tls_server, tmp_path,
                                                               monkeypatch):
    """Broker and backend over TLS, `ssl_cert_reqs=required` with the test CA, for both the
    Python producer (kombu, Celery's backend) and the rcelery worker."""
    from urllib.parse import quote
    from celery import Celery
    from harness import Worker, effective_config
    port, ca = tls_server
    tls = f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(ca), safe='')}"
    broker = f"rediss://:{PASSWORD}@localhost:{port}/{BROKER_DB}?{tls}"
    backend = f"rediss://:{PASSWORD}@localhost:{port}/{RESULT_DB}?{tls}"
    # Celery and rcelery both read CELERY_RESULT_BACKEND over any other setting.
    monkeypatch.setenv("CELERY_RESULT_BACKEND", backend)
    conf = effective_config(app, {"broker_url": broker, "result_backend": backend})
    worker = Worker(conf, tmp_path / "worker", kind="rust").start()
    producer = Celery("tls-producer", broker=broker, backend=backend)
    producer.conf.update(task_queues=app.conf.task_queues, task_default_queue="default",
                         task_default_exchange="default", task_default_routing_key="default")
    try:
        result = producer.send_task("tasks.add", (20, 22))
        assert result.get(timeout=30) == 42
        assert "ssl_cert_reqs=required" in worker.log()
        assert PASSWORD not in worker.log()
    finally:
        worker.stop()
        producer.close()


def test_use_ssl_settings_give_the_tls_options(app, tls_server, tmp_path, monkeypatch):
    """`broker_use_ssl` / `redis_backend_use_ssl` as Django projects write them (Python's
    `ssl.CERT_REQUIRED`, the CA file), with bare `rediss://` URLs (Celery's backend wants
    `rediss://` even then): kombu, Celery's backend and the rcelery worker all speak TLS and
    verify with the CA from the settings."""
    import ssl
    from celery import Celery
    from harness import Worker, effective_config
    port, ca = tls_server
    broker = f"rediss://:{PASSWORD}@localhost:{port}/{BROKER_DB}"
    backend = f"rediss://:{PASSWORD}@localhost:{port}/{RESULT_DB}"
    monkeypatch.setenv("CELERY_RESULT_BACKEND", backend)
    use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca)}
    toml_use_ssl = {**use_ssl, "ssl_cert_reqs": int(ssl.CERT_REQUIRED)}
    conf = effective_config(app, {"broker_url": broker, "result_backend": backend,
                                  "broker_use_ssl": toml_use_ssl,
                                  "redis_backend_use_ssl": toml_use_ssl})
    worker = Worker(conf, tmp_path / "worker", kind="rust").start()
    producer = Celery("tls-setting-producer", broker=broker, backend=backend)
    producer.conf.update(task_queues=app.conf.task_queues, task_default_queue="default",
                         task_default_exchange="default", task_default_routing_key="default",
                         broker_use_ssl=use_ssl, redis_backend_use_ssl=use_ssl)
    try:
        result = producer.send_task("tasks.add", (40, 2))
        assert result.get(timeout=30) == 42
        assert PASSWORD not in worker.log()
    finally:
        worker.stop()
        producer.close()


def test_a_worker_refuses_a_rediss_server_it_cannot_verify(app, tls_server, tmp_path):
    """`ssl_cert_reqs=required` without the test CA: the system's CAs do not know it."""
    from harness import Worker, effective_config
    port, _ = tls_server
    broker = f"rediss://:{PASSWORD}@localhost:{port}/{BROKER_DB}?ssl_cert_reqs=required"
    conf = effective_config(app, {"broker_url": broker, "result_backend": None,
                                  "broker_connection_retry_on_startup": False})
    worker = Worker(conf, tmp_path / "worker", kind="rust")
    with pytest.raises(RuntimeError, match="exited"):
        worker.start(timeout=60)
    log = worker.log()
    assert "cannot connect to broker rediss://:**@localhost" in log and "UnknownIssuer" in log, log
    assert PASSWORD not in log
