"""Shared test/bench harness: a private redis-server, the worker under test, its config.

Used by compat-tests/ and benches/. Selecting the worker: env RCELERY_WORKER=python|rust
(default rust); the rcelery binary comes from env RCELERY_BIN or is built with cargo.
Selecting the broker: env RCELERY_TEST_BROKER=redis|amqp|filesystem (see brokers.py).
"""
from .brokers import broker_kind, make_broker
from .redis_server import RedisServer
from .worker import Worker, rcelery_binary, worker_kind
from .config import effective_config, to_toml

__all__ = ["broker_kind", "make_broker", "RedisServer", "Worker", "rcelery_binary", "worker_kind", "effective_config", "to_toml"]
