"""A real Celery EventReceiver running in a thread, for the event tests."""
import threading
import time

from helpers import wait_for

# The fields Celery 5.7 sends with every event, and each type's own (celery/events/event.py,
# celery/worker/strategy.py, celery/worker/request.py, celery/worker/heartbeat.py).
COMMON = {"hostname", "utcoffset", "pid", "clock", "timestamp", "type"}
WORKER = {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"}
FIELDS = {
    "task-sent": {"uuid", "root_id", "parent_id", "name", "args", "kwargs", "retries", "eta",
                  "expires", "queue", "exchange", "routing_key"},
    "task-received": {"uuid", "name", "args", "kwargs", "root_id", "parent_id", "retries",
                      "eta", "expires"},
    "task-started": {"uuid"},
    "task-succeeded": {"uuid", "result", "runtime"},
    "task-failed": {"uuid", "exception", "traceback"},
    "task-retried": {"uuid", "exception", "traceback"},
    "task-revoked": {"uuid", "terminated", "signum", "expired"},
    "task-rejected": {"uuid", "requeue"},
    "worker-online": WORKER,
    "worker-heartbeat": WORKER,
    "worker-offline": WORKER,
}
# What the receiver adds on arrival (celery.events.event_from_message).
RECEIVER_ADDED = {"local_received"}


class EventLog:
    """Collects every event the broker's `celeryev` exchange carries, from before a worker
    starts until `close()`."""

    def __init__(self, app):
        self.events = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._conn = app.connection_for_read()
        self._recv = app.events.Receiver(self._conn, handlers={"*": self._on_event})
        # Consuming has begun (the queue is bound): nothing sent from now on is missed.
        self._recv.on_consume_ready = lambda *a, **kw: self._ready.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    def _run(self):
        try:
            self._recv.capture(limit=None, timeout=None, wakeup=False)
        except Exception as e:  # reported by the test through `error`
            self.error = e

    def _on_event(self, event):
        with self._lock:
            self.events.append(dict(event))

    def start(self, timeout=20.0):
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"event receiver not consuming after {timeout}s: {self.error!r}")
        return self

    def close(self):
        self._recv.should_stop = True
        self._thread.join(10)
        self._conn.release()

    def of(self, type_, uuid=None):
        with self._lock:
            return [e for e in self.events
                    if e["type"] == type_ and (uuid is None or e.get("uuid") == uuid)]

    def wait(self, type_, uuid=None, timeout=30.0):
        """The first event of `type_` (for task `uuid`), waiting for it."""
        def probe():
            found = self.of(type_, uuid)
            return found[0] if found else None
        try:
            return wait_for(probe, timeout, f"event {type_} {uuid or ''}")
        finally:
            if self.error:
                raise AssertionError(f"event receiver failed: {self.error!r}")


def check_fields(event):
    """The event has exactly Celery's fields for its type."""
    keys = set(event) - RECEIVER_ADDED
    want = COMMON | FIELDS[event["type"]]
    assert keys == want, (event["type"], sorted(keys ^ want), event)
    assert isinstance(event["clock"], int), event
    assert isinstance(event["pid"], int), event
    assert isinstance(event["timestamp"], float), event
    assert abs(event["timestamp"] - time.time()) < 3600, event
