"""The Celery app and the demo tasks rcelery mirrors (explicit names `tasks.*`).

Start a Python worker with: `celery -A tasks.task worker -Q default -c 2 -l info`
from the `python-fixtures/` directory.
"""
import builtins
import os
import time

import django
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")
django.setup()

app = Celery("celery")
app.config_from_object("tasks.celery_config", silent=True, force=True)


@app.task(name="tasks.add")
def add(x, y):
    """Return x + y (Python numeric rules)."""
    return x + y


@app.task(name="tasks.mul")
def mul(x, y):
    """Return x * y."""
    return x * y


@app.task(name="tasks.xsum")
def xsum(numbers):
    """Return sum(numbers)."""
    return sum(numbers)


@app.task(name="tasks.echo")
def echo(*args, **kwargs):
    """Return the arguments as {"args": [...], "kwargs": {...}}."""
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="tasks.fail")
def fail(message="boom", exc_type="ValueError"):
    """Raise the builtin exception named exc_type with `message`.

    A name that is not a builtin exception class raises TypeError instead.
    """
    cls = getattr(builtins, exc_type, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise TypeError(f"not a builtin exception type: {exc_type!r}")
    raise cls(message)


@app.task(name="tasks.sleep")
def sleep(seconds):
    """Sleep `seconds`, return them (the Rust side may sleep asynchronously)."""
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.block")
def block(seconds):
    """Sleep `seconds` blocking the executing thread, return them."""
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.sleep_soft")
def sleep_soft(seconds):
    """Sleep `seconds` and return them; return "soft" if the soft time limit fires first."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "soft"
    return seconds


@app.task(name="tasks.block_soft")
def block_soft(seconds):
    """Like sleep_soft (the Rust side is a blocking task polling its soft-limit flag)."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "soft"
    return seconds


@app.task(name="tasks.limited", rate_limit="2/s")
def limited(x):
    """Return x; rate limited to 2 per second per worker."""
    return x


@app.task(name="tasks.noop", ignore_result=True)
def noop(*args, **kwargs):
    """Do nothing; no result is stored."""
    return None


@app.task(name="tasks.py_only")
def py_only(x):
    """A task only the Python worker has (side-by-side migration tests)."""
    return f"python:{x}"


@app.task(name="tasks.flaky", bind=True, autoretry_for=(ValueError,), default_retry_delay=0)
def flaky(self, n):
    """Fail with ValueError until `n` retries happened (autoretry, no delay); return the count."""
    if self.request.retries < n:
        raise ValueError(f"attempt {self.request.retries}")
    return self.request.retries


@app.task(name="tasks.retry_until", bind=True)
def retry_until(self, n):
    """Retry immediately until `n` retries happened, then return the retry count."""
    if self.request.retries < n:
        raise self.retry(countdown=0, max_retries=None)
    return self.request.retries


@app.task(name="tasks.reject")
def reject(reason, requeue=False):
    """Raise Celery's Reject(reason, requeue): the message is rejected (requeued or not)."""
    from celery.exceptions import Reject
    raise Reject(reason, requeue=requeue)


@app.task(name="schedules.my_corn_minder", bind=True)
def my_corn_minder(self, *args, **kwargs):
    """The deployment's periodic reminder (celery beat's DatabaseScheduler sends it).

    Returns what it was given and the custom headers of its request (beat's
    `periodic_task_name`, the periodic task's own headers): {"args", "kwargs", "headers"}.
    """
    return {"args": list(args), "kwargs": kwargs, "headers": self.request.headers}
