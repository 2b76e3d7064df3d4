"""The deployment's two tasks with their resources (issue 11 item 7): `export_users(email)`
reads the `users` table of PostgreSQL and writes users.csv, `send_mail(email)` sends a mail
through SMTP. Both are driven by the deployment's Django views (python-fixtures/djproject/
views.py, unchanged) and run by the worker under test: the Rust port in examples/deployment/
(its pool and SMTP client built by start-up hooks) or, with RCELERY_WORKER=python, the Python
tasks of python-fixtures/tasks/async_tasks.py.

Real parts: a fresh PostgreSQL database migrated by Django's `migrate`, an aiosmtpd SMTP
server on a private port capturing what it receives, the harness's Redis.
"""
import datetime
import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from harness import Worker, effective_config
from harness.worker import FIXTURES, REPO
from helpers import wait_for

PG = os.environ.get("RCELERY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
USERS = [
    # username, email, date_joined (UTC): non-ASCII, a field that needs quoting, microseconds
    ("alice", "alice@example.com", datetime.datetime(2024, 5, 1, 8, 30, tzinfo=datetime.timezone.utc)),
    ("张伟", "zhangwei@example.cn", datetime.datetime(2024, 6, 2, 23, 59, 59, 123456,
                                                     tzinfo=datetime.timezone.utc)),
    ('Zoë "Z", Müller', "zoe@example.de", datetime.datetime(2025, 1, 31, 0, 0, 0, 1,
                                                            tzinfo=datetime.timezone.utc)),
    ("мария", "maria@example.ru", datetime.datetime(2026, 12, 6, 12, 0, 5,
                                                    tzinfo=datetime.timezone(datetime.timedelta(hours=8)))),
]


def example_binary():
    """The example worker: env RCELERY_EXAMPLE_BIN, else built as scripts/compat-tests.sh builds."""
    explicit = os.environ.get("RCELERY_EXAMPLE_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    binary = target / "release" / "rcelery-deployment"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=REPO,
                       check=True)
    return str(binary)


class DeploymentWorker(Worker):
    """The harness's worker with the example binary in place of rcelery's."""

    def command(self):
        cmd = super().command()
        if self.kind == "rust":
            cmd[0] = example_binary()
        return cmd


class MailBox:
    """What the SMTP server received (aiosmtpd handler)."""

    def __init__(self):
        self.envelopes = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller
    box = MailBox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def users_db():
    """A fresh database migrated by Django, with USERS in the users table."""
    import psycopg2
    name = f"rc_users_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(f"{PG}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    host_port = PG.split("@", 1)[1]
    host, port = host_port.split(":") if ":" in host_port else (host_port, "5432")
    env = {"DJANGO_DB_ENGINE": "postgresql", "DJANGO_DB_NAME": name, "DJANGO_DB_HOST": host,
           "DJANGO_DB_PORT": port, "DJANGO_DB_USER": "postgres", "DJANGO_DB_PASSWORD": ""}
    try:
        migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "users"],
                                 cwd=FIXTURES, env={**os.environ, **env}, capture_output=True,
                                 text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        conn = psycopg2.connect(f"{PG}/{name}")
        with conn, conn.cursor() as cur:
            for username, address, joined in USERS:
                cur.execute("INSERT INTO users (username, email, date_joined) VALUES (%s, %s, %s)",
                            (username, address, joined))
        conn.close()
        yield env
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def deployment(app, workers, users_db, smtp, tmp_path):
    """The worker under test running the deployment's tasks against users_db and smtp."""
    workers.stop()  # the session's worker has no export_users: it must not take the tasks
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    env = {**users_db, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
           "EXPORT_DIR": str(export_dir)}
    worker = DeploymentWorker(effective_config(app, {}), tmp_path / "worker", extra_env=env)
    worker.start()
    workers.started.append(worker)  # its log goes with a failure report
    yield env
    worker.stop()


def python_export(env, directory):
    """users.csv as the Python task's code writes it for the same rows (run in a process of
    its own with the database settings, as the Python worker would)."""
    directory.mkdir()
    code = "import tasks.task\nfrom tasks.async_tasks import export_users\nprint(export_users('x'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=FIXTURES, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, **env, "EXPORT_DIR": str(directory)})
    assert done.returncode == 0, done.stdout + done.stderr
    return (directory / "users.csv").read_bytes()


def get_json(client, path, **params):
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_export_users_view_writes_the_csv_the_python_task_writes(deployment, tmp_path):
    from django.test import Client
    client = Client()
    started = get_json(client, "/export/", email="ops@example.com")
    done = wait_for(lambda: (r := get_json(client, f"/result/{started['id']}/"))["ready"] and r,
                    60, "the export task")
    assert done["result"] == "users.csv"
    written = (Path(deployment["EXPORT_DIR"]) / "users.csv").read_bytes()
    assert written == python_export(deployment, tmp_path / "python")
    lines = written.decode("utf-8").split("\r\n")
    assert lines[0] == "id,username,email,date_joined"
    assert len(lines) == len(USERS) + 2 and lines[-1] == ""
    assert lines[2] == "2,张伟,zhangwei@example.cn,2024-06-02 23:59:59.123456+00:00"
    assert '"Zoë ""Z"", Müller"' in lines[3]
    assert lines[4].endswith("2026-12-06 04:00:05+00:00")


def test_send_mail_view_sends_the_mail_and_answers_the_result(deployment, smtp):
    from django.test import Client
    from tasks.async_tasks import MAIL_FROM, MAIL_SUBJECT, mail_text
    answer = get_json(Client(), "/mail/", email="reader@example.org")
    assert answer["result"] == "邮件发送成功 OK"
    assert len(smtp.envelopes) == 1
    envelope = smtp.envelopes[0]
    assert envelope.mail_from == MAIL_FROM
    assert envelope.rcpt_tos == ["reader@example.org"]
    message = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
    assert message["To"] == "reader@example.org"
    assert message["From"] == MAIL_FROM
    assert str(message["Subject"]) == MAIL_SUBJECT
    body = message.get_content().replace("\r\n", "\n")
    assert body == mail_text("reader@example.org")


def test_the_example_worker_refuses_to_start_without_its_database(app, workers, smtp, tmp_path):
    """A start-up hook that fails stops the start with a clear message, its password masked
    (the Rust example's start-up, whichever worker the other tests run: Python Celery has no
    such hook)."""
    workers.stop()
    env = {"DATABASE_URL": "postgres://app:S3cretPw@127.0.0.1:1/nowhere",
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port)}
    worker = DeploymentWorker(effective_config(app, {}), tmp_path / "worker", kind="rust",
                              extra_env=env)
    worker.start(wait_ready=False)
    assert worker.proc.wait(60) != 0
    log = worker.log()
    assert "start-up hook building sqlx_core::pool::Pool<" in log, log
    assert "Connection refused" in log and '(connecting to "postgres://app:**@127.0.0.1' in log, log
    assert "S3cretPw" not in log, log
