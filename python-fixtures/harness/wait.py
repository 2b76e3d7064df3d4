"""Waiting for a condition in the test suites (compat, fault, deployment)."""
import time


def wait_for(predicate, timeout=30.0, what="condition", interval=0.05, retry_errors=False):
    """Poll `predicate` until truthy and return its value; fail after `timeout` seconds.
    With `retry_errors`, an exception from `predicate` (a server being restarted) counts as
    not yet and polling goes on."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            if not retry_errors:
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
