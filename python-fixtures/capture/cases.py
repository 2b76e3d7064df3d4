"""The wire cases shared by capture_wire.py (which records goldens) and compat-tests.

Each case is one task call made with a real Celery producer. Task ids are fixed
(uuid5 of the case name) so a test can replay the same call and compare the
stored result string with the golden one byte for byte (minus `date_done`).
"""
import datetime
import decimal
import uuid
from dataclasses import dataclass, field

NS = uuid.UUID("6f1c3b1e-5d4c-4b7a-9c2e-000000000001")

NAIVE_DT = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
AWARE_DT = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
UTC_DT = datetime.datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)
A_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
TYPED_ARGS = (NAIVE_DT, AWARE_DT, UTC_DT, decimal.Decimal("1.50"), decimal.Decimal("-0.000001"),
              A_UUID, b"bytes", (1, "two", 3.0), 2 ** 100 + 1, -(2 ** 70))
TYPED_KWARGS = {"when": AWARE_DT, "price": decimal.Decimal("19.99"), "id": A_UUID,
                "blob": b"\xff\x00\xfe", "pair": (None, True), "nested": {"list": [1, (2, 3)]}}


def task_id_for(name):
    """Deterministic, uuid-shaped task id of a case."""
    return str(uuid.uuid5(NS, name))


@dataclass
class Case:
    """One call: `task` (name), args, kwargs, apply_async options, and what to expect."""
    name: str
    task: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    expect_result: bool = True  # False: ignore_result, no key is written
    state: str = "SUCCESS"
    protocol: int = 2
    via: str = "apply_async"  # or "delay" (no options), "send_task" (no client arg check)
    note: str = ""

    @property
    def task_id(self):
        return task_id_for(self.name)


def _both(name, task, args=(), kwargs=None, **kw):
    """The same call once with the json and once with the pickle task serializer."""
    kwargs = kwargs or {}
    return [Case(f"{name}_{s}", task, args, kwargs, {"serializer": s, **kw.pop("options", {})}, **kw)
            for s in ("json", "pickle")]


CASES = [
    *_both("add", "tasks.add", (2, 3)),
    *_both("add_kwargs", "tasks.add", (), {"x": 1, "y": 2}),
    *_both("add_mixed", "tasks.add", (1,), {"y": 2}),
    *_both("add_bigint", "tasks.add", (2 ** 100, 1)),
    *_both("add_float", "tasks.add", (1.5, 2)),
    *_both("add_strings", "tasks.add", ("ab", "cd")),
    *_both("mul", "tasks.mul", (6, 7)),
    *_both("mul_bigint", "tasks.mul", (2 ** 64, -(2 ** 64))),
    *_both("xsum", "tasks.xsum", ([1, 2, 3.5, 2 ** 80],)),
    *_both("echo_plain", "tasks.echo", (1, "two", None, True, 2.5, [1, 2], {"a": "邮件"}), {"k": "v"}),
    *_both("echo_types", "tasks.echo", TYPED_ARGS, TYPED_KWARGS),
    *_both("echo_empty", "tasks.echo"),
    *_both("sleep", "tasks.sleep", (0.1,)),
    *_both("block", "tasks.block", (0.1,)),
    *_both("noop", "tasks.noop", (1, 2), {"a": 1}, expect_result=False),
    *_both("retry_until", "tasks.retry_until", (2,)),
    *_both("fail_default", "tasks.fail", state="FAILURE"),
    *_both("fail_keyerror", "tasks.fail", ("missing",), {"exc_type": "KeyError"}, state="FAILURE"),
    Case("fail_typeerror_kw", "tasks.fail", (), {"message": "bad type", "exc_type": "TypeError"},
         {"serializer": "json"}, state="FAILURE"),
    Case("add_missing_arg", "tasks.add", (1,), {}, {"serializer": "json"}, state="FAILURE",
         via="send_task", note="missing argument -> TypeError"),
    Case("add_extra_arg", "tasks.add", (1, 2, 3), {}, {"serializer": "json"}, state="FAILURE",
         via="send_task", note="too many arguments -> TypeError"),
    Case("add_unexpected_kw", "tasks.add", (1, 2), {"z": 3}, {"serializer": "pickle"},
         via="send_task", state="FAILURE", note="unexpected keyword -> TypeError"),
    Case("unknown_task", "tasks.nope", (1,), {}, {"serializer": "json"}, state="FAILURE",
         note="unregistered name -> NotRegistered"),
    Case("add_delay", "tasks.add", (2, 3), via="delay", note="add.delay(2, 3): default serializer"),
    Case("send_mail", "tasks.async_tasks.send_mail", ("a@b.c",), via="delay",
         note="send_mail.delay('a@b.c')"),
    Case("add_countdown0", "tasks.add", (2, 3), {}, {"queue": "default", "countdown": 0},
         note="apply_async((2, 3), queue='default', countdown=0)"),
    Case("add_priority5", "tasks.add", (4, 4), {}, {"priority": 5},
         note="priority 5 goes to the sub-queue default\\x06\\x163"),
    Case("add_priority9_json", "tasks.add", (5, 5), {}, {"priority": 9, "serializer": "json"}),
    Case("add_link", "tasks.add", (2, 3), {}, {"serializer": "json", "link": "tasks.mul(10)"},
         note="link=mul.s(10); the callback result is in `children`"),
    Case("add_headers", "tasks.add", (7, 8), {}, {"serializer": "json", "headers": {"custom": "x"},
                                                  "expires": 3600}),
    Case("add_v1_json", "tasks.add", (1, 2), {}, {"serializer": "json"}, protocol=1,
         note="task_protocol=1 (all fields in the body)"),
    Case("add_v1_pickle", "tasks.add", (3, 4), {}, {"serializer": "pickle"}, protocol=1),
]

# Cases captured with a worker running result_extended=True.
EXTENDED_CASES = [
    Case("add_extended_json", "tasks.add", (2, 3), {}, {"serializer": "json"}),
    Case("echo_extended_pickle", "tasks.echo", (1, (2, 3)), {"k": A_UUID}, {"serializer": "pickle"}),
    Case("fail_extended_json", "tasks.fail", (), {}, {"serializer": "json"}, state="FAILURE"),
    Case("unknown_extended", "tasks.nope", (), {}, {"serializer": "json"}, state="FAILURE"),
]

# Captured with task_track_started=True, read while the task runs.
STARTED_CASE = Case("sleep_started", "tasks.sleep", (1.5,), {}, {"serializer": "json"},
                    state="STARTED")

BY_NAME = {c.name: c for c in CASES + EXTENDED_CASES + [STARTED_CASE]}


def send(app, case):
    """Send `case` with the real Celery producer of `app`; returns the AsyncResult.

    Registered tasks go through their own `delay`/`apply_async` (so task options such
    as ignore_result reach the message); unknown names through `app.send_task`.
    """
    options = dict(case.options)
    link = options.pop("link", None)
    if link:
        name, arg = link.rstrip(")").split("(")
        options["link"] = app.signature(name, args=(int(arg),))
    task = app.tasks.get(case.task)
    if task is None or case.via == "send_task":
        return app.send_task(case.task, args=case.args, kwargs=case.kwargs, task_id=case.task_id,
                             **options)
    if case.via == "delay":  # what delay(*args, **kwargs) does, plus a fixed task id
        assert not options, "delay takes no options"
    return task.apply_async(case.args, case.kwargs, task_id=case.task_id, **options)
