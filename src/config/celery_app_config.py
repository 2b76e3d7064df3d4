"""rcelery's start-up helper: load a Celery app as `celery -A APP` does and print its settings.

rcelery runs this once, with the project's own Python, before the worker starts; it is never
used at run time. Input: one command-line argument, a JSON object:

    {"app": "tasks.task", "known": ["broker_url", ...], "config_module": null,
     "loader": null}

Output: one line on standard output, the marker below followed by a JSON object: either the
configuration ({"ok": true, "settings": {...}, "skipped": [...], "notes": [...], "tasks": [...],
"django": {...} | null, ...}) or an error ({"ok": false, "error": KIND, "message": ...,
"traceback": ...}, exit status 1). Anything the app prints while it is imported goes to
standard error.
"""
import datetime
import enum
import json
import math
import os
import sys
import traceback

MARKER = "@@RCELERY-CONFIG@@ "

# Settings that Celery's `Settings` object computes (environment, fall-backs); read as
# attributes, as the worker reads them.
PROPERTIES = (
    "broker_url",
    "result_backend",
    "timezone",
    "task_default_exchange",
    "task_default_routing_key",
)

# Always reported, even when unset (the worker's URLs).
ALWAYS = ("broker_url", "result_backend")

TRACEBACK_LINES = 12


class Unconvertible(Exception):
    """A value that has no JSON form; the argument says what it is."""


def type_name(value):
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def queue_to_json(queue):
    """A kombu Queue as rcelery's task_queues entry: everything Celery declares it with (the
    arguments as kombu sends them, with expires/message_ttl/max_length/max_priority turned
    into x-* arguments, and the durable/auto_delete/exclusive flags of queue and exchange)."""
    from kombu.transport.base import to_rabbitmq_queue_arguments

    exchange = queue.exchange
    arguments = to_rabbitmq_queue_arguments(
        dict(queue.queue_arguments or {}),
        expires=queue.expires,
        message_ttl=queue.message_ttl,
        max_length=queue.max_length,
        max_length_bytes=queue.max_length_bytes,
        max_priority=queue.max_priority,
    )
    max_priority = queue.max_priority
    if max_priority is None:
        max_priority = arguments.get("x-max-priority")
    entry = {
        "name": queue.name,
        "exchange": exchange.name if exchange is not None else None,
        "exchange_type": exchange.type if exchange is not None else None,
        "routing_key": queue.routing_key or None,
        "max_priority": max_priority,
        "durable": bool(queue.durable),
        "auto_delete": bool(queue.auto_delete),
        "exclusive": bool(queue.exclusive),
    }
    if exchange is not None:
        entry["exchange_durable"] = bool(exchange.durable)
        entry["exchange_auto_delete"] = bool(exchange.auto_delete)
    if arguments:
        entry["queue_arguments"] = to_json(arguments, f"queue {queue.name!r} arguments")
    return {k: v for k, v in entry.items() if v is not None}


def to_json(value, where):
    """`value` as JSON data, or raise Unconvertible."""
    from kombu import Exchange, Queue

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unconvertible(f"{where}: {value!r} is not a finite number")
        return value
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(value, datetime.tzinfo):
        name = getattr(value, "key", None) or getattr(value, "zone", None) or str(value)
        return str(name)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise Unconvertible(f"{where}: bytes that are not UTF-8") from None
    if isinstance(value, Queue):
        return queue_to_json(value)
    if isinstance(value, Exchange):
        return value.name
    if isinstance(value, dict) or hasattr(value, "items") and hasattr(value, "keys"):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unconvertible(f"{where}: key {key!r} is a {type_name(key)}, not a str")
            out[key] = to_json(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [to_json(item, f"{where} item") for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, enum.Enum):
        return to_json(value.value, where)
    schedules = sys.modules.get("celery.schedules")
    if schedules is not None and isinstance(value, schedules.BaseSchedule):
        raise Unconvertible(
            f"{where}: a {type_name(value)} ({value!r}); rcelery does not read beat schedules"
        )
    raise Unconvertible(f"{where}: a {type_name(value)} is not data ({safe_repr(value)})")


def safe_repr(value):
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any repr failure just means no repr
        return "no repr"
    return text if len(text) <= 80 else text[:77] + "..."


def route_to_json(route, where, notes):
    """One task_routes value: a queue name, an options mapping, or a Queue."""
    from kombu import Queue

    if isinstance(route, str):
        return route
    if isinstance(route, Queue):
        return {k: v for k, v in {
            "queue": route.name,
            "exchange": route.exchange.name if route.exchange is not None else None,
            "routing_key": route.routing_key or None,
        }.items() if v is not None}
    if hasattr(route, "items"):
        out = {}
        for key, value in route.items():
            if key == "queue" and isinstance(value, Queue):
                out["queue"] = value.name
                if value.exchange is not None and value.exchange.name:
                    out.setdefault("exchange", value.exchange.name)
                if value.routing_key:
                    out.setdefault("routing_key", value.routing_key)
            else:
                out[key] = to_json(value, f"{where}[{key!r}]")
        return out
    raise Unconvertible(f"{where}: a {type_name(route)} is not a route ({safe_repr(route)})")


def routes_to_json(value, notes):
    """task_routes as far as it is data: maps of name -> route; routers given as code are
    left out with a note."""
    maps = [value] if hasattr(value, "items") else list(value)
    out = []
    for i, entry in enumerate(maps):
        where = f"task_routes[{i}]" if len(maps) > 1 or not hasattr(value, "items") else "task_routes"
        if not hasattr(entry, "items"):
            notes.append(f"{where}: a router given as code ({safe_repr(entry)}) is not read by rcelery")
            continue
        table = {}
        for name, route in entry.items():
            if not isinstance(name, str):
                notes.append(f"{where}: the key {safe_repr(name)} is not a task name or glob; left out")
                continue
            try:
                table[name] = route_to_json(route, f"{where}[{name!r}]", notes)
            except Unconvertible as e:
                notes.append(f"{e}; route left out")
        out.append(table)
    return out[0] if hasattr(value, "items") and out else out


def same(a, b):
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects that cannot be compared count as changed
        return False


def read_settings(app, known, notes, skipped):
    from celery.app.defaults import DEFAULTS

    conf = app.conf
    conf.finalize()
    prefix = getattr(conf, "prefix", None) or ""
    own = set()
    for key in list(conf.keys()):
        if not isinstance(key, str):
            continue
        bare = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if bare.lower().startswith("rcelery_"):
            own.add(bare.lower())
    settings = {}
    for key in sorted(set(known) | set(DEFAULTS) | own):
        try:
            value = getattr(conf, key) if key in PROPERTIES else conf.get(key)
        except Exception as e:  # noqa: BLE001 - a setting that cannot be read is reported
            skipped.append({"setting": key, "reason": f"cannot be read: {e!r}"})
            continue
        if key not in known and key not in ALWAYS and same(value, DEFAULTS.get(key)):
            continue
        if value is None:
            continue
        try:
            if key == "task_queues":
                settings[key] = [queue_to_json(q) for q in app.amqp.queues.values()]
            elif key == "task_routes":
                settings[key] = routes_to_json(value, notes)
            else:
                settings[key] = to_json(value, key)
        except Unconvertible as e:
            skipped.append({"setting": key, "reason": str(e)})
    return settings


def task_names(app, notes):
    """The tasks the app registers, after importing `imports`/`include` as the worker does."""
    try:
        app.loader.import_default_modules()
    except Exception as e:  # noqa: BLE001 - the settings are still good without the task list
        notes.append(f"importing the app's task modules failed ({type_name(e)}: {e}); "
                     f"the task list is incomplete")
    try:
        return sorted(str(name) for name in app.tasks.keys())
    except Exception as e:  # noqa: BLE001
        notes.append(f"cannot list the app's tasks: {e!r}")
        return []


def django_info():
    """Django's settings module and DATABASES['default'], when Django is configured."""
    if "django" not in sys.modules and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    try:
        from django.conf import settings
        if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            return None
        databases = settings.DATABASES
    except Exception:  # noqa: BLE001 - Django absent or unconfigured: nothing to report
        return None
    info = {"settings_module": os.environ.get("DJANGO_SETTINGS_MODULE")
            or getattr(settings, "SETTINGS_MODULE", None)}
    default = databases.get("default") if hasattr(databases, "get") else None
    if default:
        info["database"] = {
            field.lower(): None if default.get(field) in (None, "") else str(default.get(field))
            for field in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")
        }
        info["database_url"] = database_url(info["database"])
    return info


# Django's engines and the URL scheme rcelery's django-db backend reads for each.
ENGINE_SCHEMES = {
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.postgresql_psycopg2": "postgresql",
    "django.contrib.gis.db.backends.postgis": "postgresql",
    "django.db.backends.mysql": "mysql",
    "django.contrib.gis.db.backends.mysql": "mysql",
    "django.db.backends.sqlite3": "sqlite",
    "django.contrib.gis.db.backends.spatialite": "sqlite",
}


def database_url(db):
    """DATABASES['default'] as the URL of the django-db backend (None: another engine)."""
    from urllib.parse import quote
    scheme = ENGINE_SCHEMES.get(db.get("engine") or "")
    name = db.get("name") or ""
    if scheme is None or not name:
        return None
    if scheme == "sqlite":
        # sqlite:///relative or sqlite:////absolute, as SQLAlchemy spells paths.
        return f"sqlite:///{os.path.abspath(name) if name != ':memory:' else name}"
    auth = ""
    if db.get("user"):
        auth = quote(db["user"], safe="")
        if db.get("password"):
            auth += ":" + quote(db["password"], safe="")
        auth += "@"
    host = db.get("host") or "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = f":{db['port']}" if db.get("port") else ""
    return f"{scheme}://{auth}{host}{port}/{quote(name, safe='')}"


def tail(text):
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-TRACEBACK_LINES:])


class Failure(Exception):
    def __init__(self, kind, message, trace=None):
        super().__init__(message)
        self.kind, self.message, self.trace = kind, message, trace


def load_app(name):
    try:
        import celery
        from celery.app.utils import find_app
    except ImportError as e:
        raise Failure("no_celery", f"this Python cannot import celery ({e}); install Celery in "
                      f"it, or point RCELERY_PYTHON at the project's interpreter") from None
    try:
        app = find_app(name)
    except ModuleNotFoundError as e:
        if e.name != name and not name.startswith(f"{e.name}.") and not name.startswith(f"{e.name}:"):
            raise Failure("import", f"error while importing {name!r}: {type_name(e)}: {e}",
                          tail(traceback.format_exc())) from None
        raise Failure("import", f"cannot import {name!r}: no module named {e.name!r} "
                      f"(working directory {os.getcwd()})") from None
    except AttributeError as e:
        raise Failure("not_an_app", f"{name!r} has no Celery app: {e}",
                      tail(traceback.format_exc())) from None
    except BaseException as e:  # noqa: BLE001 - whatever the import raises is reported
        raise Failure("import", f"error while importing {name!r}: {type_name(e)}: {e}",
                      tail(traceback.format_exc())) from None
    if not isinstance(app, celery.Celery):
        raise Failure("not_an_app", f"{name!r} is a {type_name(app)}, not a Celery app")
    return app


def main(request):
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for variable, key in (("CELERY_CONFIG_MODULE", "config_module"), ("CELERY_LOADER", "loader")):
        if request.get(key):
            os.environ[variable] = request[key]
    app = load_app(request["app"])
    notes, skipped = [], []
    try:
        settings = read_settings(app, request.get("known") or [], notes, skipped)
    except BaseException as e:  # noqa: BLE001 - a config that fails to load is an error
        raise Failure("config", f"cannot read the settings of {request['app']!r}: "
                      f"{type_name(e)}: {e}", tail(traceback.format_exc())) from None
    tasks = task_names(app, notes)
    import celery
    return {
        "ok": True,
        "app": request["app"],
        "main": app.main,
        "python": sys.executable,
        "python_version": ".".join(str(p) for p in sys.version_info[:3]),
        "celery_version": celery.__version__,
        "settings": settings,
        "skipped": skipped,
        "notes": notes,
        "tasks": tasks,
        "django": django_info(),
    }


def run():
    out = sys.stdout
    sys.stdout = sys.stderr  # what the app prints must not mix with the answer
    try:
        request = json.loads(sys.argv[1])
        answer, status = main(request), 0
    except Failure as f:
        answer, status = {"ok": False, "error": f.kind, "message": f.message,
                          "traceback": f.trace}, 1
    except BaseException as e:  # noqa: BLE001 - report, never crash without an answer
        answer, status = {"ok": False, "error": "helper", "message": f"{type_name(e)}: {e}",
                          "traceback": tail(traceback.format_exc())}, 1
    out.write("\n" + MARKER + json.dumps(answer, ensure_ascii=True) + "\n")
    out.flush()
    sys.stdout = out
    return status


if __name__ == "__main__":
    code = run()
    sys.stderr.flush()
    os._exit(code)  # threads the app started must not keep the helper alive
