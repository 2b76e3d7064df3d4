"""result_backend = "rpc://": results travel as messages to the caller's reply queue.

The worker under test runs with `result_backend="rpc://"`; the client is a Celery app with
the rpc backend on the suite's broker (its URL comes from the session app, the one place the
suite names the broker). Two kinds of checks:

- the result messages themselves, read raw from a reply queue of our own (kombu's
  `basic_get`, so on any transport), against the goldens a real Celery 5.7 worker published
  (`python-fixtures/golden/rpc/`, written by `capture/capture_rpc.py`, replayed with the same
  calls and task ids): body byte for byte with `date_done`, `traceback` and the STARTED
  pid masked, content type and encoding, no headers, correlation id, delivery mode;
- what a Python client sees through `AsyncResult` (get, state, failures, retries,
  result_extended fields, many results in flight, chords refused).
"""
import base64
import json
import pickle
import re
import uuid

import pytest
from celery import Celery, chord, group
from celery.backends.rpc import E_NO_CHORD_SUPPORT
from kombu import Connection, Exchange, Queue

from capture.capture_rpc import VARIANTS, cases_for, task_id_for
from helpers import GOLDEN, local_worker_name, normalize, wait_for

pytestmark = pytest.mark.every_broker

RPC = {"result_backend": "rpc://"}


def worker_settings(**extra):
    return dict(RPC, **extra)


@pytest.fixture(autouse=True)
def rpc_in_environment(monkeypatch):
    """Both workers take CELERY_RESULT_BACKEND from the environment over their settings, as
    Celery does: the suite's names the Redis backend."""
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "rpc://")


@pytest.fixture(scope="module")
def rpc_app(app):
    """A client app of the fixture project with the rpc backend, on the suite's broker."""
    client = Celery("celery")
    client.config_from_object("tasks.celery_config", silent=True, force=True)
    client.conf.update(broker_url=app.conf.broker_url, result_backend="rpc://")
    # The suite's environment names another backend in CELERY_RESULT_BACKEND, which Celery's
    # settings prefer to result_backend; the app's backend_cls wins over both.
    client.backend_cls = "rpc://"
    assert type(client.backend).__name__ == "RPCBackend"
    yield client
    client.close()


def golden(case):
    return json.loads((GOLDEN / "rpc" / f"{case}.json").read_text())


def golden_messages(case):
    """(body bytes, envelope) of each message a Python worker published for `case`."""
    out = []
    for raw in golden(case)["messages"]:
        env = json.loads(raw)
        out.append((base64.b64decode(env["body"]), env))
    return out


def read_replies(rpc_app, queue_name, count):
    """The first `count` messages on the reply queue `queue_name`, read with basic_get."""
    got = []
    with Connection(rpc_app.conf.broker_url) as conn:
        queue = Queue(queue_name, Exchange(None), queue_name)(conn.default_channel)

        def take():
            message = queue.get(no_ack=True)
            if message is not None:
                got.append(message)
            return len(got) >= count
        wait_for(take, 30, f"{count} message(s) on {queue_name}")
    return got


def declare(rpc_app, queue_name):
    """Declare a reply queue as Celery's client does before it sends (AMQP drops a message
    to a queue that does not exist; on Redis this changes nothing)."""
    with Connection(rpc_app.conf.broker_url) as conn:
        Queue(queue_name, Exchange(None), queue_name, durable=True,
              auto_delete=True)(conn.default_channel).declare()


def masked_json(body):
    # py-amqp hands a text body over decoded; kombu's Redis transport as bytes.
    text = body if isinstance(body, str) else body.decode("utf-8")
    text = normalize(text, mask_traceback=True, worker_name=local_worker_name())
    return re.sub(r'"pid": \d+', '"pid": 0', text)


def masked_pickle(body):
    meta = pickle.loads(body)
    meta["date_done"] = meta["date_done"] and "<date_done>"
    meta["traceback"] = meta["traceback"] and "<traceback>"
    # Celery pickles the exception object, rcelery the exception dict Celery's client turns
    # into the same exception (docs/compatibility.md, "Pickled exceptions").
    result = meta["result"]
    if isinstance(result, BaseException):
        meta["result"] = (type(result).__name__, list(result.args))
    elif isinstance(result, dict) and "exc_type" in result:
        meta["result"] = (result["exc_type"], list(result["exc_message"]))
    return meta


CASES = [(variant, case) for variant in VARIANTS for case in cases_for(Celery("cases"), variant)]


@pytest.mark.parametrize("variant,case", CASES, ids=[c for _, c in CASES])
def test_result_messages_match_golden(rpc_app, workers, variant, case):
    workers.ensure(worker_settings(**VARIANTS[variant]))
    task, args, kwargs, options, count = cases_for(rpc_app, variant)[case]
    reply_to = f"rpc-test-{uuid.uuid4()}"
    declare(rpc_app, reply_to)
    rpc_app.send_task(task, args, kwargs, task_id=task_id_for(case), reply_to=reply_to,
                      **options)
    messages = read_replies(rpc_app, reply_to, count)
    expected = golden_messages(case)
    assert len(messages) == len(expected)
    for message, (body, env) in zip(messages, expected):
        assert message.content_type == env["content-type"]
        assert message.content_encoding == env["content-encoding"]
        assert message.headers == env["headers"] == {}
        props = env["properties"]
        assert message.properties["correlation_id"] == props["correlation_id"] == task_id_for(case)
        assert message.properties["delivery_mode"] == props["delivery_mode"]
        assert "reply_to" not in message.properties and "reply_to" not in props
        if env["content-type"] == "application/json":
            assert masked_json(message.body) == masked_json(body)
        else:
            assert masked_pickle(message.body) == masked_pickle(body)


def test_get_returns_the_result(rpc_app, workers):
    workers.ensure(worker_settings())
    add = rpc_app.signature("tasks.add")
    assert add.delay(2, 3).get(timeout=30) == 5


def test_failure_is_reraised_with_its_type_and_traceback(rpc_app, workers):
    workers.ensure(worker_settings())
    result = rpc_app.signature("tasks.fail").delay("bad", exc_type="KeyError")
    with pytest.raises(KeyError) as info:
        result.get(timeout=30)
    assert info.value.args == ("bad",)
    assert result.state == "FAILURE"
    assert "KeyError" in result.traceback


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_result_serializer(rpc_app, workers, serializer):
    workers.ensure(worker_settings(result_serializer=serializer))
    assert rpc_app.signature("tasks.echo").delay(1, "two", k=[3]).get(timeout=30) == \
        {"args": [1, "two"], "kwargs": {"k": [3]}}
    with pytest.raises(ValueError, match="boom"):
        rpc_app.signature("tasks.fail").delay().get(timeout=30)


def test_started_state_is_seen(rpc_app, workers):
    workers.ensure(worker_settings(task_track_started=True))
    result = rpc_app.signature("tasks.sleep").delay(1.5)
    # Read with get(on_message=...): on RabbitMQ this module's client has a consumer on its
    # reply queue since the first get(), which takes the messages `result.state` would poll.
    seen = []
    assert result.get(timeout=30, on_message=lambda meta: seen.append(meta)) == 1.5
    assert [meta["status"] for meta in seen] == ["STARTED", "SUCCESS"]
    assert result.state == "SUCCESS"


def test_retry_states_reach_the_client(rpc_app, workers):
    workers.ensure(worker_settings(worker_concurrency=1))
    seen = []
    result = rpc_app.signature("tasks.retry_until").delay(2)
    assert result.get(timeout=30, on_message=lambda meta: seen.append(meta["status"])) == 2
    assert seen == ["RETRY", "RETRY", "SUCCESS"]


def test_result_extended_fields(rpc_app, workers):
    workers.ensure(worker_settings(result_extended=True))
    result = rpc_app.signature("tasks.add").delay(2, 3)
    assert result.get(timeout=30) == 5
    assert (result.name, result.args, result.kwargs) == ("tasks.add", [2, 3], {})
    assert (result.worker, result.retries, result.queue) == (local_worker_name(), 0, "default")
    assert result.date_done is not None


def test_many_results_in_flight(rpc_app, workers):
    """One reply queue, many tasks: each result goes to its own AsyncResult (correlation id)."""
    workers.ensure(worker_settings())
    add = rpc_app.signature("tasks.add")
    results = [add.delay(i, i) for i in range(20)]
    for i, result in reversed(list(enumerate(results))):
        assert result.get(timeout=30) == 2 * i
    assert group(add.clone((i, 1)) for i in range(5)).delay().get(timeout=30) == \
        [1, 2, 3, 4, 5]


def test_chords_fail_as_celerys(rpc_app, workers):
    """The client refuses a chord itself; a chord the worker would apply (a callback)
    fails the task with Celery's NotImplementedError."""
    workers.ensure(worker_settings())
    add, xsum = rpc_app.signature("tasks.add"), rpc_app.signature("tasks.xsum")
    with pytest.raises(NotImplementedError):
        chord([add.clone((1, 1))], xsum).delay()
    result = add.clone((1, 1)).apply_async(link=chord([add.clone((2, 2))], xsum))
    with pytest.raises(NotImplementedError) as info:
        result.get(timeout=30)
    assert str(info.value) == E_NO_CHORD_SUPPORT.strip()
    assert result.state == "FAILURE"


def test_rcelery_call_wait_reads_its_reply_queue(rpc_app, workers):
    """`rcelery call --wait` with rpc:// consumes its own reply queue, as Celery's client."""
    import subprocess
    from harness import rcelery_binary
    workers.ensure(worker_settings())
    base = [str(rcelery_binary()), "-b", rpc_app.conf.broker_url, "--result-backend", "rpc://",
            "call", "--queue", "default", "--wait", "--timeout", "30"]
    ok = subprocess.run(base + ["tasks.add", "--args", "[2, 3]"], capture_output=True,
                        text=True, timeout=60)
    assert (ok.returncode, ok.stdout.strip()) == (0, "5"), ok.stderr
    failed = subprocess.run(base + ["tasks.fail"], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert failed.stderr.strip().endswith("FAILURE: ValueError('boom')"), failed.stderr
