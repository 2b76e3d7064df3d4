"""Lone UTF-16 surrogates in a `str` survive the worker exactly, as with a Python worker.

Python keeps a lone surrogate in a `str` (`'\\ud800'`): `json` writes it as `\\ud800` and reads
it back, pickle writes it with the `surrogatepass` UTF-8 handler. An echo through the worker
must give the client back the identical value, whichever serializer carries the task and
whichever carries the result.
"""
import pickle

import pytest
from celery import Celery
from kombu.utils.json import dumps as json_dumps, loads as json_loads

from helpers import raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker

SERIALIZERS = ["json", "pickle"]
TASK_SER = pytest.mark.parametrize("task_ser", SERIALIZERS, ids=lambda s: f"task-{s}")
# Pickle results need a worker started with result_serializer = "pickle": a restart (slow).
RESULT_SER = pytest.mark.parametrize(
    "result_ser",
    ["json", pytest.param("pickle", marks=pytest.mark.slow)],
    ids=lambda s: f"results-{s}",
)

# Exact through every path: lone high, lone low inside text, a valid astral char (written
# by json as a surrogate pair of escapes), reversed halves, a key holding one.
ARGS = ["\ud800", "a\udc00b", "\U0001F600", "\udfff\ud800", ["x\udbff", ("\udc00",)]]
KWARGS = {"k\udc80": "v\ud800", "plain": "\\ud800 is text here"}


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


@pytest.fixture(scope="module")
def pickle_results_app(app):
    """A producer configured as the fixtures' app but with `result_serializer = "pickle"`.

    Its own app, so its backend's result subscriptions (made when a task is sent) never
    meet the json app's.
    """
    other = Celery("celery")
    other.config_from_object("tasks.celery_config", silent=True, force=True)
    other.conf.result_serializer = "pickle"
    yield other
    other.close()


@pytest.fixture
def producer(request, app, workers):
    """(producer app, result serializer): a worker storing results that way is running."""
    result_ser = request.node.callspec.params["result_ser"]
    if result_ser == "json":
        workers.ensure({})
        return app
    workers.ensure({"result_serializer": result_ser})
    return request.getfixturevalue("pickle_results_app")


def through(value, serializer):
    """What `serializer` gives back for `value` in Python (json: tuples become lists)."""
    if serializer == "json":
        return json_loads(json_dumps(value))
    return pickle.loads(pickle.dumps(value))


def same(a, b):
    """Equal with the same types all the way down (a str is compared code point by code point)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@TASK_SER
@RESULT_SER
def test_echo_keeps_lone_surrogates(producer, backend, task_ser, result_ser):
    r = producer.send_task("tasks.echo", ARGS, KWARGS, serializer=task_ser)
    got = r.get(timeout=30)
    want = through(through({"args": ARGS, "kwargs": KWARGS}, task_ser), result_ser)
    assert same(got, want), f"{ascii(got)} != {ascii(want)}"
    assert got["args"][0] == "\ud800" and len(got["args"][0]) == 1
    assert got["args"][1] == "a\udc00b" and got["args"][2] == "\U0001F600"
    assert got["kwargs"]["k\udc80"] == "v\ud800"
    if result_ser == "json":
        # Written as kombu writes it: \ud800 escapes, lowercase, as for any non-ASCII char.
        assert json_dumps(want) in raw_result(backend, r.id)


@TASK_SER
@RESULT_SER
def test_surrogate_halves_as_two_code_points(producer, task_ser, result_ser):
    """'\\ud83d\\ude00' is two code points in Python, not '\\U0001F600': pickle keeps them
    apart, json writes them as the escapes of a pair and reads back one char. The worker
    must give what a Python worker gives: the value as the two serializers carry it."""
    halves = "\ud83d\ude00"
    r = producer.send_task("tasks.echo", (halves,), serializer=task_ser)
    got = r.get(timeout=30)
    want = through(through({"args": [halves], "kwargs": {}}, task_ser), result_ser)
    assert same(got, want), f"{ascii(got)} != {ascii(want)}"
    assert len(got["args"][0]) == (2 if task_ser == result_ser == "pickle" else 1)


@TASK_SER
def test_surrogate_str_concatenation_in_a_task(worker, t, task_ser):
    """tasks.add(x, y) is `x + y`: str + str with lone surrogates stays exact (a low half
    then a high one: no pair for json to join)."""
    r = t.add.apply_async(("a\udc00", "\ud800b"), serializer=task_ser)
    got = r.get(timeout=30)
    assert got == "a\udc00\ud800b" and len(got) == 4, ascii(got)


@TASK_SER
def test_surrogate_result_sent_on_to_a_link_callback(worker, t, task_ser):
    """The worker sends the callback itself (its body and argsrepr written by the worker)."""
    r = t.add.apply_async(("a\udc00", "\ud800b"), link=t.echo.s(), serializer=task_ser)
    assert r.get(timeout=30) == "a\udc00\ud800b"
    assert len(r.children) == 1
    got = r.children[0].get(timeout=30)
    assert got == {"args": ["a\udc00\ud800b"], "kwargs": {}}, ascii(got)
