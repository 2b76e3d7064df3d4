"""The broker a suite runs on: env RCELERY_TEST_BROKER=redis (default) | amqp | filesystem.

One class per broker with the same small interface, so a test asks broker-neutral questions
(how many messages wait in a queue, how many are delivered and not yet acknowledged, is
everything drained) and the harness cleans the broker between tests the same way on each:

* redis: the suite's private redis-server, db 3 (kombu's Redis layout);
* amqp: the machine's RabbitMQ on 127.0.0.1:5672 (guest/guest, started by scripts/rabbitmq.sh),
  in a vhost of this run's own (`<prefix>-<pid>`, prefix from env RCELERY_TEST_AMQP_VHOST,
  default `rcelery-compat`), created at start and deleted at the end;
* filesystem: kombu's `filesystem://` transport on folders of this run's own.

Each object's `app` (the producer's Celery app, set by the suite once it is imported) is the
connection its broker-side questions go through.

The result backend is not chosen here: the suites keep the Redis backend on every broker.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

BROKERS = ("redis", "amqp", "filesystem")
AMQP_HOST, AMQP_PORT = "127.0.0.1", int(os.environ.get("RCELERY_TEST_AMQP_PORT", "5672"))
# kombu's Redis priority sub-queues of a queue (steps 3, 6, 9 beside the plain key).
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def broker_kind():
    """'redis' (default), 'amqp' or 'filesystem', from env RCELERY_TEST_BROKER."""
    kind = os.environ.get("RCELERY_TEST_BROKER", "redis").strip().lower()
    if kind not in BROKERS:
        raise RuntimeError(f"RCELERY_TEST_BROKER must be one of {', '.join(BROKERS)}, not {kind!r}")
    return kind


def make_broker(kind, redis_server=None, redis_db=3):
    """The broker object for `kind` (redis needs the suite's RedisServer and db)."""
    if kind == "redis":
        return RedisBroker(redis_server, redis_db)
    if kind == "amqp":
        return AmqpBroker()
    return FilesystemBroker()


class RedisBroker:
    """kombu's Redis transport on a database of the suite's redis-server."""

    kind = "redis"
    transport_options = {}
    app = None

    def __init__(self, server, db):
        self.server, self.db = server, db
        self.url = server.url(db)

    def start(self):
        return self

    def stop(self):
        pass

    def client(self):
        return self.server.client(self.db)

    def clean(self):
        """Empty the broker database, then declare the app's queues again."""
        self.client().flushdb()
        _declare(self.app)

    def ready(self, queue="default"):
        client = self.client()
        return sum(client.llen(queue + suffix) for suffix in REDIS_PRIORITY_SUFFIXES)

    def unacked(self):
        return self.client().hlen("unacked")


class AmqpBroker:
    """A vhost of its own on the machine's RabbitMQ (needs `rabbitmqctl`, run as root)."""

    kind = "amqp"
    transport_options = {}
    app = None

    def __init__(self):
        prefix = os.environ.get("RCELERY_TEST_AMQP_VHOST", "rcelery-compat")
        self.vhost = f"{prefix}-{os.getpid()}"
        self.prefix = prefix
        self.url = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{quote(self.vhost, safe='')}"

    @staticmethod
    def ctl(*args, check=True):
        """Run rabbitmqctl; raise with its output when it fails and `check` is set."""
        exe = shutil.which("rabbitmqctl")
        if exe is None:
            raise RuntimeError("rabbitmqctl not found: run scripts/rabbitmq.sh (installs and "
                               "starts RabbitMQ)")
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}")
        return done

    def start(self):
        """Create this run's vhost (dropping those of runs of the same prefix that died)."""
        try:
            socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=2).close()
        except OSError as e:
            raise RuntimeError(f"RabbitMQ does not answer on {AMQP_HOST}:{AMQP_PORT} ({e}): run "
                               f"scripts/rabbitmq.sh") from e
        listed = self.ctl("list_vhosts", "name", "-q", "--no-table-headers").stdout.split()
        for vhost in listed:
            m = re.fullmatch(re.escape(self.prefix) + r"-(\d+)", vhost)
            if m and not _pid_alive(int(m.group(1))):
                self.ctl("delete_vhost", vhost, check=False)
        self.ctl("add_vhost", self.vhost)
        self.ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        return self

    def stop(self):
        self.ctl("delete_vhost", self.vhost, check=False)

    def clean(self):
        """Declare the app's queues (again) and purge them (messages a worker holds
        unacknowledged stay with it, as they would on any RabbitMQ)."""
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in list(self.app.amqp.queues.values()):
                queue(channel).declare()
                channel.queue_purge(queue.name)

    def ready(self, queue="default"):
        """Messages waiting in `queue` (0 when it does not exist)."""
        conn = self.app.connection_for_write()
        try:
            return conn.default_channel.queue_declare(queue, passive=True).message_count
        except Exception as e:  # a 404 closes the channel: the queue is not there
            if "NOT_FOUND" in str(e) or "404" in str(e):
                return 0
            raise
        finally:
            conn.close()

    def unacked(self):
        """Messages delivered and not yet acknowledged, over every queue of the vhost."""
        out = self.ctl("list_queues", "-p", self.vhost, "messages_unacknowledged", "-q",
                       "--no-table-headers").stdout
        return sum(int(n) for n in out.split())


class FilesystemBroker:
    """kombu's filesystem transport: one folder for messages, one for exchange bindings."""

    kind = "filesystem"
    url = "filesystem://"
    app = None

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="rcelery-fs-broker-"))
        self.queue_dir = self.root / "queue"
        self.transport_options = {
            "data_folder_in": str(self.queue_dir),
            "data_folder_out": str(self.queue_dir),
            "processed_folder": str(self.root / "processed"),
            "control_folder": str(self.root / "control"),
            "polling_interval": 0.1,
        }
        for folder in ("queue", "processed", "control"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def start(self):
        return self

    def stop(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def clean(self):
        """Remove every message file, waiting or claimed, then declare the app's queues."""
        for folder in ("queue", "processed"):
            for path in (self.root / folder).iterdir():
                path.unlink(missing_ok=True)
        _declare(self.app)

    def ready(self, queue="default"):
        return sum(1 for p in self.queue_dir.iterdir() if p.name.endswith(f".{queue}.msg"))

    def unacked(self):
        """Files rcelery has claimed and not settled (kombu deletes a file as it reads it)."""
        return sum(1 for p in self.queue_dir.iterdir() if p.name.endswith(".rcelery-claimed"))


def drained(broker, queues=("default",)):
    """True when no message waits in `queues` and none is delivered and unacknowledged."""
    return all(broker.ready(q) == 0 for q in queues) and broker.unacked() == 0


def _declare(app):
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).declare()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
