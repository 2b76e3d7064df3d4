"""The deployment suite: one whole deployment (Django + Celery producer, celery beat with
django-celery-beat's DatabaseScheduler, a password-protected Redis, PostgreSQL for Django and
for the results) with the worker under test started by the deployment's own command line.

Its own pytest process, not part of compat-tests/: Django is configured once per process, and
here it must be the deployment's (PostgreSQL), where the compat suite's is sqlite with Redis
results. Run with `bash scripts/deploy-tests.sh` (RCELERY_WORKER=python for the real Celery
worker).
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployment import REDIS_PORT, worker_kind  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the tail of every deployment process's log."""
    outcome = yield
    report = outcome.get_result()
    run = getattr(item.module, "RUN", None)
    if report.failed and run is not None:
        for proc in run.processes:
            report.sections.append((f"log {proc.log_path}", proc.log()[-8000:]))


def pytest_report_header(config):
    return f"rcelery deployment: worker={worker_kind()} redis port={REDIS_PORT}"
