"""Celery settings as module-level lowercase names, the way deployments write them.

The broker URL is built from the Django settings REDIS_MQ_*; the result backend
comes from env CELERY_RESULT_BACKEND, defaulting to Redis db 4 on the same server.

Test hooks (not part of a real deployment): env RCELERY_TEST_BROKER_URL, when set, is the
broker URL instead (the compat suite on RabbitMQ or kombu's filesystem transport), with
env RCELERY_TEST_BROKER_OPTIONS (JSON) as its broker_transport_options; env
RCELERY_FIXTURE_CONFIG may hold a
JSON object of extra settings (e.g. {"task_acks_late": false}); they are applied
last, so the compat harness can start a Python worker with variant settings.
"""
import json
import os

from django.conf import settings
from kombu import Exchange, Queue

_auth = f":{settings.REDIS_MQ_PASSWORD}@" if settings.REDIS_MQ_PASSWORD else ""
_server = f"redis://{_auth}{settings.REDIS_MQ_HOST}:{settings.REDIS_MQ_PORT}"

broker_url = os.environ.get("RCELERY_TEST_BROKER_URL") or f"{_server}/{settings.REDIS_MQ_DB}"
if os.environ.get("RCELERY_TEST_BROKER_OPTIONS"):
    broker_transport_options = json.loads(os.environ["RCELERY_TEST_BROKER_OPTIONS"])
result_backend = os.environ.get("CELERY_RESULT_BACKEND", f"{_server}/4")

task_serializer = "pickle"
accept_content = ["json", "pickle"]
result_serializer = "json"

task_queues = (
    Queue("default", Exchange("default", type="direct"), routing_key="default", max_priority=10),
)
task_default_queue = "default"
task_default_exchange = "default"
task_default_routing_key = "default"
task_create_missing_queues = True

worker_concurrency = 2
worker_prefetch_multiplier = 4
task_acks_late = True

timezone = "Asia/Shanghai"
imports = ("tasks.async_tasks",)

for _name, _value in json.loads(os.environ.get("RCELERY_FIXTURE_CONFIG") or "{}").items():
    globals()[_name] = _value
