"""Effective worker settings (mirroring tasks/celery_config.py) and their rcelery.toml form."""
import datetime

# Settings written to rcelery.toml: the ones the rcelery contract names.
TOML_KEYS = (
    "broker_url", "result_backend", "task_serializer", "result_serializer", "accept_content",
    "task_default_queue", "task_acks_late", "worker_prefetch_multiplier", "worker_concurrency",
    "result_expires", "result_extended", "task_track_started", "timezone",
)


def effective_config(app, overrides=None):
    """Resolve the Celery app's settings plus `overrides` into plain TOML-able values."""
    overrides = dict(overrides or {})
    conf = app.conf
    out = {}
    for key in TOML_KEYS:
        value = overrides.pop(key) if key in overrides else conf[key]
        if isinstance(value, datetime.timedelta):
            value = int(value.total_seconds())
        if isinstance(value, tuple):
            value = list(value)
        out[key] = value
    out["task_queues"] = [
        {"name": q.name, "exchange": q.exchange.name, "exchange_type": q.exchange.type,
         "routing_key": q.routing_key, "max_priority": q.max_priority}
        for q in overrides.pop("task_queues", None) or conf.task_queues
    ]
    # kombu's Redis transport defaults to an hour; other transports have no such option.
    redis = str(out["broker_url"]).startswith(("redis://", "rediss://", "sentinel://"))
    bto = {"visibility_timeout": 3600} if redis else {}
    bto.update(conf.broker_transport_options or {})
    bto.update(overrides.pop("broker_transport_options", {}))
    out["broker_transport_options"] = bto
    out.update(overrides)  # anything else the caller asked for, verbatim
    return out


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def _key(key):
    """A TOML key: bare when it can be, quoted otherwise (task names have dots)."""
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return _scalar(str(key))


def to_toml(conf):
    """Render an effective config as rcelery.toml text (None values are left out)."""
    lines, tables = [], []
    for key, value in conf.items():
        if value is None:
            continue
        if key == "task_queues":
            for q in value:
                tables.append("[[task_queues]]")
                tables += [f"{k} = {_scalar(v)}" for k, v in q.items() if v is not None]
        elif isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [f"{_key(k)} = {_scalar(v)}" for k, v in value.items() if v is not None]
        else:
            lines.append(f"{key} = {_scalar(value)}")
    return "\n".join(lines + tables) + "\n"
