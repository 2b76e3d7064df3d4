"""Every wire case of capture/cases.py must store the same result string a Python worker does.

Two routes per case: the call is made again with the real Python producer (same task id),
and the captured golden envelope is pushed raw onto its queue key. The stored value is then
compared with the golden result byte for byte, with `date_done` masked (it must still be
ISO-8601 in the app timezone) and, for failures, the Python traceback masked.
"""
import base64
import json
import re

import pytest
from celery import exceptions as celery_exceptions
from celery.result import AsyncResult
from kombu.utils.json import loads as kombu_loads

from capture.cases import CASES, EXTENDED_CASES, STARTED_CASE, send
from helpers import (golden_message, golden_result, local_worker_name, normalize, raw_result,
                     wait_drained, wait_for, wait_raw_result)

# The representative subset CI runs on RabbitMQ too (scripts/test-all.sh, `-m every_broker`).
pytestmark = pytest.mark.every_broker

# A golden envelope carrying an absolute `expires` would be expired by now.
REPLAYABLE = [c for c in CASES if "expires" not in c.options]


def settings_for(case):
    """Worker setting overrides a case needs.

    retry_until retries with countdown=0: with two pool slots, Celery 5.5.3 can run the
    retried attempt (storing SUCCESS) before the first attempt stores its RETRY state, which
    then overwrites SUCCESS. One slot keeps the order deterministic.
    """
    return {"worker_concurrency": 1} if case.task == "tasks.retry_until" else {}


def _golden_exception(meta):
    """The exception class a Python client rebuilds for a FAILURE meta."""
    module = {"builtins": __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__),
              "celery.exceptions": vars(celery_exceptions)}[meta["exc_module"]]
    return module[meta["exc_type"]]


def replay(app, mq, msg):
    """Put a golden message on the broker as Python Celery sent it: on Redis the captured
    envelope byte for byte onto its list; elsewhere its body, headers and properties
    published through kombu (the envelope is kombu's Redis form of one message)."""
    if mq.kind == "redis":
        mq.client().lpush(msg["queue_key"].encode("latin-1"), msg["raw"].encode("utf-8"))
        return
    envelope = json.loads(msg["raw"])
    props = envelope["properties"]
    assert props["body_encoding"] == "base64", props
    with app.producer_or_acquire() as producer:
        producer.publish(
            base64.b64decode(envelope["body"]), exchange=props["delivery_info"]["exchange"],
            routing_key=props["delivery_info"]["routing_key"],
            content_type=envelope["content-type"], content_encoding=envelope["content-encoding"],
            headers=envelope["headers"], priority=props.get("priority"),
            correlation_id=props.get("correlation_id"), reply_to=props.get("reply_to"),
            delivery_mode=props.get("delivery_mode"), retry=True)


def check_against_golden(app, mq, backend, case, worker_name=None):
    """Wait for `case`'s result and compare it (and its children) with the golden capture."""
    golden = golden_result(case.name)
    if golden["raw"] is None:  # ignore_result: prove the message was handled, then no key
        marker = app.tasks["tasks.add"].apply_async((1, 1), serializer="json")
        assert marker.get(timeout=30) == 2
        wait_drained(mq)
        assert raw_result(backend, case.task_id) is None
        return
    raw = wait_raw_result(backend, case.task_id)
    expected = json.loads(golden["raw"])
    failed = expected["status"] == "FAILURE"
    mask_tb = expected["traceback"] is not None
    if mask_tb:
        tb = json.loads(raw)["traceback"]
        assert isinstance(tb, str) and expected["result"]["exc_type"] in tb, tb
    masks = []
    for gchild, child in zip(golden["children"], json.loads(raw)["children"]):
        masks.append((gchild["task_id"], child[0][0]))
        child_raw = wait_raw_result(backend, child[0][0])
        assert normalize(child_raw) == normalize(gchild["raw"], extra_masks=masks)
    assert len(json.loads(raw)["children"]) == len(golden["children"])
    assert normalize(raw, mask_tb, worker_name) == \
        normalize(golden["raw"], mask_tb, worker_name, extra_masks=masks)
    # What the client sees through AsyncResult.
    result = AsyncResult(case.task_id, app=app)
    assert result.status == expected["status"]
    if failed:
        exc_cls = _golden_exception(expected["result"])
        with pytest.raises(exc_cls) as info:
            result.get(timeout=10)
        assert list(info.value.args) == expected["result"]["exc_message"]
    else:
        assert result.get(timeout=10) == kombu_loads(golden["raw"])["result"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_producer_call_matches_golden(request, kind, app, workers, mq, backend, case):
    workers.ensure(settings_for(case))
    send(app, case)
    check_against_golden(app, mq, backend, case)


@pytest.mark.parametrize("case", REPLAYABLE, ids=lambda c: c.name)
def test_replayed_golden_envelope_matches_golden(request, kind, app, workers, mq, backend,
                                                 case):
    workers.ensure(settings_for(case))
    replay(app, mq, golden_message(case.name))
    check_against_golden(app, mq, backend, case)


@pytest.mark.parametrize("case", EXTENDED_CASES, ids=lambda c: c.name)
def test_result_extended_matches_golden(app, workers, mq, backend, case):
    workers.ensure({"result_extended": True})
    send(app, case)
    check_against_golden(app, mq, backend, case, worker_name=local_worker_name())


def test_started_state_matches_golden(app, workers, backend):
    """task_track_started=True: STARTED meta with {pid, hostname} while the task runs."""
    workers.ensure({"task_track_started": True})
    send(app, STARTED_CASE)
    raw = wait_raw_result(backend, STARTED_CASE.task_id, states=("STARTED",))
    golden = golden_result(STARTED_CASE.name)["raw"]

    def mask_pid(s):
        return re.sub(r'"pid": \d+', '"pid": 0', normalize(s, worker_name=local_worker_name()))
    assert isinstance(json.loads(raw)["result"]["pid"], int)
    assert mask_pid(raw) == mask_pid(golden)
    assert AsyncResult(STARTED_CASE.task_id, app=app).status == "STARTED"
    wait_for(lambda: json.loads(raw_result(backend, STARTED_CASE.task_id))["status"] == "SUCCESS",
             30, "SUCCESS after STARTED")
