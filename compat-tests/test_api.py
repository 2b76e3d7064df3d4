"""What a Python producer sees through the Celery API (`delay`, `apply_async`, `AsyncResult`)."""
import datetime
import decimal
import uuid

import pytest
from celery.exceptions import NotRegistered
from celery.result import AsyncResult

from capture.cases import TYPED_ARGS, TYPED_KWARGS
from helpers import raw_result, wait_drained, wait_for

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker

SERIALIZERS = ["json", "pickle"]


def listify(value):
    """Tuples become lists (what a JSON result round trip does); recursive."""
    if isinstance(value, (list, tuple)):
        return [listify(v) for v in value]
    if isinstance(value, dict):
        return {k: listify(v) for k, v in value.items()}
    return value


@pytest.fixture
def t(app):
    """The demo tasks, as producers import them."""
    import tasks.task as tasks
    from tasks.async_tasks import send_mail
    tasks.send_mail = send_mail
    return tasks


def test_delay_get_ready_status_id(worker, t):
    r = t.add.delay(2, 3)
    assert isinstance(r.id, str) and uuid.UUID(r.id)
    assert r.get(timeout=30) == 5
    assert r.ready() and r.successful() and not r.failed()
    assert r.status == "SUCCESS" and r.state == "SUCCESS" and r.result == 5


def test_not_ready_while_running(worker, t):
    r = t.sleep.delay(2)
    assert not r.ready()
    assert r.status == "PENDING"
    assert r.get(timeout=30) == 2
    assert r.ready()


def test_send_mail_like_the_deployment(worker, t):
    ret = t.send_mail.delay("a@b.c")
    assert isinstance(ret.id, str)
    assert ret.get(timeout=30) == "邮件发送成功 OK"
    assert ret.ready()


def test_apply_async_queue_countdown_zero(worker, t):
    assert t.add.apply_async((2, 3), queue="default", countdown=0).get(timeout=30) == 5


def test_apply_async_small_countdown(worker, t):
    assert t.add.apply_async((2, 3), countdown=1).get(timeout=30) == 5


@pytest.mark.parametrize("ser", SERIALIZERS)
def test_every_demo_task(worker, t, ser):
    opts = {"serializer": ser}
    assert t.add.apply_async((2 ** 100, 1), **opts).get(timeout=30) == 2 ** 100 + 1
    assert t.add.apply_async(kwargs={"x": 1.5, "y": 2}, **opts).get(timeout=30) == 3.5
    assert t.add.apply_async((1,), {"y": 2}, **opts).get(timeout=30) == 3
    assert t.mul.apply_async((2 ** 40, 3), **opts).get(timeout=30) == 3 * 2 ** 40
    assert t.xsum.apply_async(([1, 2, 3],), **opts).get(timeout=30) == 6
    assert t.echo.apply_async((1, "a"), {"k": None}, **opts).get(timeout=30) == \
        {"args": [1, "a"], "kwargs": {"k": None}}
    assert t.sleep.apply_async((0.05,), **opts).get(timeout=30) == 0.05
    assert t.block.apply_async((0.05,), **opts).get(timeout=30) == 0.05
    assert t.retry_until.apply_async((0,), **opts).get(timeout=30) == 0
    assert t.send_mail.apply_async(("x@y.z",), **opts).get(timeout=30) == "邮件发送成功 OK"


@pytest.mark.parametrize("ser", SERIALIZERS)
def test_echo_round_trips_rich_types(worker, t, ser):
    r = t.echo.apply_async(TYPED_ARGS, TYPED_KWARGS, serializer=ser)
    got = r.get(timeout=30)
    assert got == {"args": listify(TYPED_ARGS), "kwargs": listify(TYPED_KWARGS)}
    assert isinstance(got["args"][0], datetime.datetime) and got["args"][0].tzinfo is None
    assert got["args"][1].utcoffset() == datetime.timedelta(hours=8)
    assert isinstance(got["args"][3], decimal.Decimal) and str(got["args"][3]) == "1.50"
    assert isinstance(got["args"][5], uuid.UUID)
    assert got["args"][6] == b"bytes" and got["kwargs"]["blob"] == b"\xff\x00\xfe"


def test_retry_until(request, kind, workers, t):
    """Retries with countdown=0 (one pool slot: see test_golden_results.settings_for)."""
    workers.ensure({"worker_concurrency": 1})
    r = t.retry_until.delay(3)
    assert r.get(timeout=30) == 3


def test_link_callback(request, kind, worker, t):
    r = t.add.apply_async((2, 3), link=t.mul.s(10))
    assert r.get(timeout=30) == 5
    assert len(r.children) == 1
    assert r.children[0].get(timeout=30) == 50


def test_ignore_result_task_stores_nothing(worker, mq, backend, t):
    r = t.noop.delay(1, b=2)
    assert t.add.delay(1, 1).get(timeout=30) == 2
    wait_drained(mq)
    assert raw_result(backend, r.id) is None
    assert r.status == "PENDING"


@pytest.mark.parametrize("call, exc, args", [
    (lambda t: t.fail.delay(), ValueError, ("boom",)),
    (lambda t: t.fail.delay("no such key", "KeyError"), KeyError, ("no such key",)),
    (lambda t: t.fail.apply_async(kwargs={"exc_type": "ZeroDivisionError"}, serializer="json"),
     ZeroDivisionError, ("boom",)),
    (lambda t: t.fail.delay("x", "NotAnException"), TypeError, None),
    (lambda t: t.add.app.send_task("tasks.add", args=(1,)), TypeError, None),
    (lambda t: t.add.app.send_task("tasks.add", args=(1, 2), kwargs={"z": 3}), TypeError, None),
    (lambda t: t.add.app.send_task("tasks.add", args=(1, 2, 3), serializer="json"), TypeError, None),
    (lambda t: t.add.app.send_task("tasks.add", args=(1, "a")), TypeError, None),
    (lambda t: t.xsum.app.send_task("tasks.xsum", args=(None,)), TypeError, None),
], ids=["ValueError", "KeyError", "ZeroDivisionError", "bad-exc-type", "missing-arg",
        "unexpected-kw", "extra-arg", "int-plus-str", "sum-None"])
def test_failures_raise_the_right_class(worker, t, call, exc, args):
    r = call(t)
    with pytest.raises(exc) as info:
        r.get(timeout=30)
    assert type(info.value) is exc
    if args is not None:
        assert info.value.args == args
    assert r.status == "FAILURE" and r.failed() and r.ready()
    assert isinstance(r.get(propagate=False, timeout=5), exc)
    assert isinstance(r.traceback, str)


def test_unknown_task_not_registered_then_keeps_working(app, worker, mq, t):
    r = app.send_task("tasks.does_not_exist", args=(1,))
    with pytest.raises(NotRegistered) as info:
        r.get(timeout=30)
    assert info.value.args == ("tasks.does_not_exist",)
    assert r.status == "FAILURE"
    assert t.add.delay(20, 22).get(timeout=30) == 42
    wait_drained(mq)
    assert worker.alive()


def test_many_concurrent_results(worker, t):
    results = [t.add.delay(i, i) for i in range(200)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(200)]
    assert all(AsyncResult(r.id).status == "SUCCESS" for r in results[:5])


# About rcelery's Redis fast path (results sent with the acks when the backend is the
# broker's own Redis server) and kombu's Redis `unacked` keys.
@pytest.mark.broker("redis")
def test_results_and_acks_when_the_backend_is_addressed_as_another_server(workers, t, broker, mq,
                                                                           backend):
    """rcelery sends results together with its acks and fetches when the result backend is on
    the broker's Redis server. A backend URL that spells the host differently counts as
    another server and takes the store-then-ack path Celery takes: same results, same acks."""
    from conftest import PASSWORD, PORT, RESULT_DB
    workers.ensure({"result_backend": f"redis://:{PASSWORD}@localhost:{PORT}/{RESULT_DB}"})
    results = [t.add.delay(i, i) for i in range(200)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(200)]
    with pytest.raises(ValueError):
        t.fail.delay("boom").get(timeout=30)
    wait_drained(mq)
    wait_for(lambda: broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0,
             what="every message acked")
    assert backend.ttl(f"celery-task-meta-{results[0].id}") > 0
