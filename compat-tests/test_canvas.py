"""Retries, callbacks, chains and the producer side, driven from real Python Celery.

Every test runs unchanged against real Celery (RCELERY_WORKER=python): that is how the
expected behaviour was checked.
"""
import base64
import json
import pickle
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from celery import chain, chord, group

from conftest import PASSWORD, PORT, RESULT_DB
from harness import effective_config, rcelery_binary, to_toml
from helpers import CELERY_57, raw_result, wait_raw_result

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker

BACKEND_URL = f"redis://:{PASSWORD}@127.0.0.1:{PORT}/{RESULT_DB}"


@pytest.fixture
def t(app):
    import tasks.task as tasks
    return tasks


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_chain_runs_every_step(worker, t, serializer):
    r = chain(t.add.s(1, 2), t.add.s(3), t.mul.s(10)).apply_async(serializer=serializer)
    assert r.get(timeout=30) == 60
    assert r.parent.get(timeout=5) == 6
    assert r.parent.parent.get(timeout=5) == 3


def test_chord_of_a_hundred_fires_its_body_once(worker, t):
    r = chord(group(t.add.s(i, i) for i in range(100)), t.xsum.s()).delay()
    assert r.get(timeout=60) == 9900


def test_chord_body_fails_with_chord_error_when_a_part_fails(worker, t, backend):
    r = chord([t.add.s(1, 1), t.fail.s("boom")], t.xsum.s()).delay()
    with pytest.raises(ValueError):  # get() re-raises the failed header part first
        r.get(timeout=30)
    meta = json.loads(wait_raw_result(backend, r.id))
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "ChordError"
    assert meta["result"]["exc_module"] == "celery.exceptions"
    (message,) = meta["result"]["exc_message"]
    failed_part = r.parent.results[1].id
    assert message == f"Dependency {failed_part} raised ValueError('boom')"


def test_immutable_callback_gets_no_result(worker, t):
    r = t.add.apply_async((2, 3), link=t.mul.si(4, 5))
    assert r.get(timeout=30) == 5
    assert r.children[0].get(timeout=30) == 20


def test_several_callbacks_run_as_a_group(worker, t):
    r = t.add.apply_async((2, 3), link=[t.mul.s(10), t.mul.s(2)])
    assert r.get(timeout=30) == 5
    (group_result,) = r.children
    assert sorted(group_result.get(timeout=30)) == [10, 50]


def test_a_group_as_callback(worker, t):
    r = t.add.apply_async((2, 3), link=group(t.mul.s(2), t.mul.s(3)))
    assert r.get(timeout=30) == 5
    (group_result,) = r.children
    assert group_result.get(timeout=30) == [10, 15]


def test_a_chain_ending_in_a_group(worker, t):
    r = chain(t.add.s(1, 2), group(t.mul.s(2), t.mul.s(3))).delay()
    assert r.get(timeout=30) == [6, 9]


def test_a_group_in_the_middle_of_a_chain_becomes_a_chord(worker, t, backend):
    # Celery's client sends chain(add, chord(group(mul, mul), xsum)): the worker that runs
    # `add` applies the chord (header size, then the header tasks carrying the body).
    r = chain(t.add.s(1, 2), group(t.mul.s(2), t.mul.s(3)), t.xsum.s()).delay()
    assert r.get(timeout=30) == 15
    header, first = r.parent, r.parent.parent
    assert sorted(header.get(timeout=30)) == [6, 9]
    # The first task's stored `children` names the chord's header group and its two tasks.
    (child,) = json.loads(backend.get(f"celery-task-meta-{first.id}"))["children"]
    assert child[0] == [header.id, None]
    assert sorted(c[0][0] for c in child[1]) == sorted(r.id for r in header.results)


def test_a_chord_whose_body_is_a_chain_continues_the_chain(worker, t):
    r = chain(t.add.s(1, 2), group(t.mul.s(2), t.mul.s(3)), t.xsum.s(), t.add.s(100), t.mul.s(2)).delay()
    assert r.get(timeout=30) == 230


def test_a_chord_as_callback(worker, t):
    body = t.xsum.s().set(task_id=str(__import__("uuid").uuid4()))
    r = t.add.apply_async((1, 2), link=chord([t.mul.s(2), t.mul.s(3)], body))
    assert r.get(timeout=30) == 3
    assert t.app.AsyncResult(body.id).get(timeout=30) == 15


def test_retry_past_max_retries_fails(workers, t):
    workers.ensure({"worker_concurrency": 1})
    r = t.retry_until.apply_async((5,), serializer="json")
    with pytest.raises(Exception) as info:
        r.get(timeout=30)
    assert type(info.value).__name__ == "MaxRetriesExceededError"
    assert str(info.value) == f"Can't retry tasks.retry_until[{r.id}] args:(5,) kwargs:{{}}"


def test_autoretry_until_success(workers, t):
    workers.ensure({"worker_concurrency": 1})
    assert t.flaky.delay(2).get(timeout=30) == 2


def test_autoretry_past_max_retries_raises_the_error(workers, t):
    workers.ensure({"worker_concurrency": 1})
    r = t.flaky.delay(5)
    with pytest.raises(ValueError) as info:
        r.get(timeout=30)
    assert info.value.args == ("attempt 3",)


def rcelery_call(app, *args, timeout=60):
    """`rcelery call` with the suite's settings (its broker, whichever it is) in a TOML file."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "rcelery.toml"
        config.write_text(to_toml(effective_config(app)))
        cmd = [str(rcelery_binary()), "--config", str(config), "call", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_rcelery_call_waits_for_the_result(app, worker):
    done = rcelery_call(app, "tasks.add", "--args", "[2, 3]", "--queue", "default", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"


def test_rcelery_call_reports_a_failure(app, worker):
    done = rcelery_call(app, "tasks.fail", "--kwargs", '{"message": "nope"}', "--queue", "default", "--wait")
    assert done.returncode == 1
    assert "FAILURE: ValueError('nope')" in done.stderr


def _envelope_shape(raw):
    env = json.loads(raw)
    props = env["properties"]
    for volatile in ("correlation_id", "reply_to", "delivery_tag"):
        assert props.pop(volatile)
    headers = env["headers"]
    for volatile in ("id", "root_id", "origin"):
        assert headers.pop(volatile)
    body = base64.b64decode(env.pop("body"))
    return env, body


# Compares the raw envelopes kombu's Redis transport stores (popped from the Redis list).
@pytest.mark.broker("redis")
@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_rcelery_call_publishes_what_celery_publishes(app, workers, broker, t, serializer):
    """No worker runs: the two messages stay on the queue and are compared key by key."""
    workers.stop()
    t.add.apply_async((2, 3), queue="default", serializer=serializer, priority=5)
    python_raw = broker.rpop("default\x06\x163")
    done = rcelery_call(app, "tasks.add", "--args", "[2, 3]", "--queue", "default", "--serializer", serializer,
                        "--priority", "5")
    assert done.returncode == 0, done.stderr
    rust_raw = broker.rpop("default\x06\x163")
    assert rust_raw is not None, "rcelery call published nothing to default (priority 5)"
    (py_env, py_body), (rs_env, rs_body) = _envelope_shape(python_raw), _envelope_shape(rust_raw)
    assert rs_env == py_env
    if serializer == "json":
        assert rs_body == py_body
    else:
        assert pickle.loads(rs_body) == pickle.loads(py_body)


def test_steps_the_worker_publishes_follow_its_task_routes(workers, t, backend):
    """The client has no routes; the worker's `task_routes` sends the chain's next step to
    another queue (that it also consumes), as Celery's router does for a worker's publishes."""
    workers.ensure({"task_routes": {"tasks.mul": {"queue": "routed"}, "tasks.x*": "other"},
                    "result_extended": True}, queues="default,routed")
    r = chain(t.add.s(1, 2), t.mul.s(10)).apply_async()
    assert r.get(timeout=30) == 30
    assert json.loads(wait_raw_result(backend, r.id))["queue"] == "routed"
    assert json.loads(wait_raw_result(backend, r.parent.id))["queue"] == "default"


def test_a_group_as_chord_body_gets_the_results_in_every_member(worker, t):
    r = chord([t.add.s(1, 1), t.add.s(2, 2)], group(t.xsum.s(), t.mul.s(2)))()
    assert r.get(timeout=30) == [6, [2, 4, 2, 4]]


def test_unordered_chord_parts_go_in_a_list(workers, t, backend):
    """`result_chord_ordered=False`: the parts go in a list (in completion order), the key type
    every worker of the chord must agree on."""
    workers.ensure({"result_backend_transport_options": {"result_chord_ordered": False}})
    r = chord([t.add.s(1, 1), t.sleep.s(2)], t.xsum.s()).delay()
    jkey = f"celery-taskset-meta-{r.parent.id}.j"
    for _ in range(100):
        if backend.exists(jkey):
            break
        time.sleep(0.02)
    assert backend.type(jkey) == b"list"
    assert r.get(timeout=30) == 4


def test_a_chord_header_with_a_group_and_a_chain_inside(worker, t):
    """Celery's client flattens the inner group into the header and the chain's last task
    carries the chord: every part counts once."""
    r = chord([group(t.add.s(1, 1), t.add.s(2, 2)), chain(t.add.s(3, 3), t.mul.s(2)), t.add.s(4, 4)],
              t.xsum.s()).delay()
    assert r.get(timeout=30) == 26


def test_a_chord_inside_a_chord_header(worker, t):
    """The inner chord's body is a part of the outer chord."""
    r = chord([chord([t.add.s(1, 1), t.add.s(2, 2)], t.xsum.s()), t.add.s(3, 3)], t.xsum.s()).delay()
    assert r.get(timeout=30) == 12


def test_a_chain_step_chord_with_a_group_a_chain_and_a_chord_in_its_header(worker, t, backend):
    """The worker that runs `add` applies the chord: the header's group is flattened, the chain
    and the inner chord each count as one part."""
    header = [group(t.mul.s(2), t.mul.s(3)), chain(t.add.s(1), t.mul.s(10)),
              chord([t.add.s(1), t.add.s(2)], t.xsum.s())]
    r = chain(t.add.s(1, 2), chord(header, t.echo.s())).apply_async()
    # Results in Celery's part order: the nested group's tasks come in reverse.
    assert r.get(timeout=30) == {"args": [[9, 6, 40, 9]], "kwargs": {}}


def test_a_chord_as_chord_body(worker, t):
    """The outer results go to every task of the inner chord's header."""
    r = chord([t.add.s(1, 1), t.add.s(2, 2)], chord([t.xsum.s(), t.mul.s(2)], t.echo.s())).delay()
    assert r.get(timeout=30) == {"args": [[6, [2, 4, 2, 4]]], "kwargs": {}}


@pytest.fixture
def unlocking(app):
    """The client's backend takes Celery's `chord_unlock` path (see unlock_backend.py)."""
    from unlock_backend import RedisBackendWithoutNativeChords
    native = app.backend
    app._backend = RedisBackendWithoutNativeChords(app=app, url=BACKEND_URL)
    yield app
    app._backend = native


def test_chord_unlock_sends_the_body_once_the_header_is_done(worker, t, unlocking, backend):
    r = chord(group(t.add.s(i, i) for i in range(20)), t.xsum.s()).delay()
    assert r.get(timeout=60) == 380
    # No native counting happened: the header parts found no chord size.
    assert not backend.exists(f"celery-taskset-meta-{r.parent.id}.s")


def test_chord_unlock_waits_for_a_slow_header(worker, t, unlocking):
    r = chord([t.sleep.s(2), t.add.s(1, 1)], t.xsum.s()).delay()
    assert r.get(timeout=60) == 4


def test_chord_unlock_fails_the_body_with_chord_error(worker, t, unlocking, backend):
    r = chord([t.add.s(1, 1), t.fail.s("boom")], t.xsum.s()).delay()
    meta = json.loads(wait_raw_result(backend, r.id, timeout=60))
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "ChordError"
    # Celery names the culprit only if its backend cached the failed meta, which it never
    # does (only successes are cached): the reason is the exception's repr alone.
    assert meta["result"]["exc_message"] == ["ValueError('boom')"]


def test_chord_unlock_with_a_chain_body(worker, t, unlocking):
    r = chord([t.add.s(1, 1), t.add.s(2, 2)], chain(t.xsum.s(), t.mul.s(10))).delay()
    assert r.get(timeout=60) == 60


def test_a_header_part_whose_result_is_a_group(worker, t, backend):
    """A chain ending in a group makes the header complex: Celery saves the header's
    GroupResult, and the body gets the group's results as one nested list."""
    header = [t.add.s(1, 1), chain(t.add.s(1, 1), group(t.add.s(1), t.add.s(2)))]
    r = chord(header, t.echo.s()).delay()
    assert r.get(timeout=30) == {"args": [[2, [3, 4]]], "kwargs": {}}


def test_a_failed_part_of_a_group_result_header_fails_the_body(worker, t, backend):
    header = [t.add.s(1, 1), chain(t.add.s(1, 1), group(t.add.s(1), t.fail.si("boom")))]
    r = chord(header, t.echo.s()).delay()
    meta = json.loads(wait_raw_result(backend, r.id))
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "ChordError"
    assert meta["result"]["exc_message"] == ["Join error: ValueError('boom')"]



def test_a_chain_step_chord_with_an_empty_header_sends_its_body_at_once(worker, t):
    r = chain(t.add.s(1, 2), chord([], t.echo.s())).apply_async()
    assert r.get(timeout=30) == {"args": [[]], "kwargs": {}}


def test_a_raw_chain_with_a_group_then_more_steps_continues_in_every_member(worker, t):
    """Celery's client makes a group followed by more steps a chord, but a hand-built `chain`
    option may hold one: Celery's worker then sends the rest of the chain with every member."""
    r = t.add.apply_async((1, 2), chain=[t.echo.s(), group(t.add.s(1), t.add.s(2))])
    assert r.get(timeout=30) == 3
    wait = time.monotonic() + 30
    while not r.children and time.monotonic() < wait:
        time.sleep(0.05)
        r = t.add.AsyncResult(r.id)
    (members,) = r.children
    assert [m.get(timeout=30) for m in members.results] == [4, 5]
    echoed = []
    for m in members.results:
        while not m.children and time.monotonic() < wait:
            time.sleep(0.05)
            m = t.add.AsyncResult(m.id)
        echoed.append(m.children[0].get(timeout=30))
    assert echoed == [{"args": [4], "kwargs": {}}, {"args": [5], "kwargs": {}}]


def _new_behaviour(kind):
    """rcelery follows Celery 5.7 whichever Celery its peers run; a Python worker its own."""
    return kind == "rust" or CELERY_57


def test_a_failed_header_fails_every_task_of_a_group_body(worker, kind, t, backend):
    """5.6+ (`_handle_group_chord_error`): each task of a group body is stored as FAILURE
    with the failed part's exception and sends its errbacks; the group id fails too. 5.5
    stored ChordError for the group id only."""
    errbacks = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = group(t.echo.s().on_error(t.limited.s().set(task_id=errbacks[0])),
                 t.mul.s(2).on_error(t.limited.s().set(task_id=errbacks[1])))
    r = chord([t.add.s(1, 1), t.fail.s("boom")], body)()
    members = [m.id for m in r.results]
    group_meta = json.loads(wait_raw_result(backend, r.id))
    assert group_meta["status"] == "FAILURE"
    if _new_behaviour(kind):
        boom = {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}
        assert group_meta["result"] == boom
        for member, errback in zip(members, errbacks):
            meta = json.loads(wait_raw_result(backend, member))
            assert (meta["status"], meta["result"]) == ("FAILURE", boom)
            assert json.loads(wait_raw_result(backend, errback))["result"] == member
    else:
        assert group_meta["result"]["exc_type"] == "ChordError"
        assert all(raw_result(backend, m) is None for m in members)


def test_a_chord_body_is_frozen_with_the_header_group_id(worker, t, backend):
    """5.6+: `chord.run` freezes the body with `group_id=<header group id>`."""
    r = chord([t.add.s(1, 1), t.add.s(2, 2)], t.xsum.s()).delay()
    assert r.get(timeout=30) == 6
    meta = json.loads(wait_raw_result(backend, r.id))
    if CELERY_57:
        assert meta["group_id"] == r.parent.id
    else:
        assert "group_id" not in meta
    assert meta["parent_id"] in [p.id for p in r.parent.results]


def test_a_chord_the_worker_applies_freezes_its_body_with_the_header_group_id(worker, kind, t,
                                                                               backend):
    """The same when the worker applies the chord (a chain step), and (5.6+) the body's parent
    is the header part that completed it, not the task that applied the chord."""
    r = chain(t.add.s(1, 2), chord([t.mul.s(2), t.mul.s(3)], t.xsum.s())).delay()
    assert r.get(timeout=30) == 15
    header, first = r.parent, r.parent.parent
    meta = json.loads(wait_raw_result(backend, r.id))
    if _new_behaviour(kind):
        assert meta["group_id"] == header.id
        assert meta["parent_id"] in [p.id for p in header.results]
    else:
        assert "group_id" not in meta
        assert meta["parent_id"] == first.id


def test_a_chain_of_chords_is_not_folded(worker, t):
    """5.6+: `chain | chord` appends the chord (consecutive chords in one chain) instead of
    folding it into the previous chord's body; the worker applies each in turn."""
    c = chain(t.add.s(1, 2), chord([t.mul.s(2), t.mul.s(3)], t.xsum.s())) | \
        chord([t.add.s(1), t.add.s(2)], t.xsum.s())
    if CELERY_57:
        assert [type(task).__name__ for task in c.tasks] == ["Signature", "_chord", "_chord"]
    r = c.delay()
    assert r.get(timeout=30) == 33

