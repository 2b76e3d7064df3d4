"""The database result backend over TLS (`db+postgresql://...?sslmode=verify-full&sslrootcert=`,
libpq's options, as psycopg2 reads them from the same URL): a private PostgreSQL that refuses
its results database to connections without TLS, with a certificate from a throw-away CA."""
import pytest

from conftest import worker_config
from faultlib import Sender, wait_for
from harness.tls import make_certs
from servers import PrivatePostgres


@pytest.fixture
def tls_postgres(tmp_path):
    ca, cert, key = make_certs(tmp_path)
    # The results database takes TLS connections only; the checks below use `postgres`.
    hba = ["hostssl results all 127.0.0.1/32 trust",
           "hostnossl results all 127.0.0.1/32 reject"]
    server = PrivatePostgres().start(tls=(cert, key), hba=hba)
    server.connect().cursor().execute("CREATE DATABASE results")
    yield server, ca
    server.stop()


def tls_connections(server):
    """The encrypted and plain connections to the results database, counted."""
    conn = server.connect("postgres")
    try:
        cur = conn.cursor()
        cur.execute("SELECT s.ssl, COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a"
                    " USING (pid) WHERE a.datname = 'results' GROUP BY s.ssl")
        return dict(cur.fetchall())
    finally:
        conn.close()


def stored(server, ids):
    """How many of `ids` have a SUCCESS row (read over TLS, as the database demands)."""
    import psycopg2
    conn = psycopg2.connect(host="127.0.0.1", port=server.port, user="postgres",
                            dbname="results", sslmode="require")
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'celery_taskmeta'")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"
                    " AND task_id = ANY(%s)", (list(ids),))
        return cur.fetchone()[0]
    finally:
        conn.close()


def test_results_stored_over_verified_tls(redis_factory, worker_factory, producer_factory,
                                          tls_postgres):
    server, ca = tls_postgres
    broker = redis_factory()
    url = "db+" + server.url("results", password="S3cretPw0rd") + \
        f"?sslmode=verify-full&sslrootcert={ca}"
    worker = worker_factory(worker_config(broker.url(0), url))
    app = producer_factory(broker.url(0), broker.url(1))
    sender = Sender(app, "tasks.add", 20, rate=100)
    sender.start()
    sender.join()
    wait_for(lambda: stored(server, sender.ids) == 20, 60, "20 results stored over TLS")
    # The checking connection above was encrypted too and is closed; the worker's pool stays.
    connections = tls_connections(server)
    assert connections.get(True, 0) >= 1 and not connections.get(False), connections
    assert "S3cretPw0rd" not in worker.log()


def test_an_unknown_certificate_authority_is_a_clear_startup_error(redis_factory, worker_factory,
                                                                   tls_postgres):
    server, _ = tls_postgres
    broker = redis_factory()
    # verify-full without sslrootcert: the system's CAs do not know the test CA.
    url = "db+" + server.url("results", password="S3cretPw0rd") + "?sslmode=verify-full"
    worker = worker_factory(worker_config(broker.url(0), url), wait_ready=False)
    wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    log = worker.log()
    assert worker.proc.returncode != 0
    assert "cannot use result backend" in log, log
    assert "S3cretPw0rd" not in log, log
