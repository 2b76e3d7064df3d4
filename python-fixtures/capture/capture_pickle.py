#!/usr/bin/env python3
"""Capture golden pickles for rcelery's safe pickle codec.

Run with the project venv (CPython 3.11):

    .venv/bin/python python-fixtures/capture/capture_pickle.py

Writes python-fixtures/golden/pickle_values.json:

- "values": per case and protocol 0..5, the pickle bytes (hex) that CPython writes for the
  value *built fresh* (no shared references, as a decoder would build it), `repr(value)`,
  and "expect": a typed JSON description of what `pickle.loads` gives back, which the Rust
  tests turn into a `Value` and compare with our decoder's output. "encode" tells whether our
  encoder must reproduce the bytes (protocols 2..5 of values our model can express).
- "forbidden": pickles our decoder must refuse, with the first global that is not on our
  allow list (the one the error must name).
"""

import collections
import datetime
import decimal
import json
import os
import pathlib
import pickle
import struct
import sys
import types
import uuid
import zoneinfo

if os.environ.get("PYTHONHASHSEED") != "0":
    # Set iteration order depends on str hashes: pin them so reruns give identical output.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

from datetime import date, time, timedelta, timezone  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "golden" / "pickle_values.json"

# Our decoder's allow list (src/codec/pickle/globals.rs), to name the refused global.
ALLOWED = {
    ("builtins", n) for n in ("set", "frozenset", "bytes", "bytearray", "getattr", "object")
} | {
    ("__builtin__", n) for n in ("set", "frozenset", "bytes", "bytearray", "getattr", "object")
} | {
    ("_codecs", "encode"), ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
    ("collections", "OrderedDict"), ("datetime", "datetime"), ("datetime", "date"),
    ("datetime", "time"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("zoneinfo", "ZoneInfo"), ("zoneinfo", "ZoneInfo._unpickle"), ("pytz", "_p"),
    ("pytz", "_UTC"), ("decimal", "Decimal"), ("uuid", "UUID"), ("uuid", "SafeUUID"),
}


# ---------------------------------------------------------------- a stand-in for pytz
class FakePytzZone(datetime.tzinfo):
    """Pickles exactly like a pytz zone: `pytz._p(zone, utcoffset, dst, tzname)` or `pytz._UTC()`."""

    def __init__(self, zone):
        self.zone = zone

    def utcoffset(self, dt):
        return timedelta(0) if self.zone == "UTC" else timedelta(hours=8)

    def dst(self, dt):
        return timedelta(0)

    def __repr__(self):
        return f"<pytz zone {self.zone!r}>"

    def __reduce__(self):
        if self.zone == "UTC":
            return pytz._UTC, ()
        return pytz._p, (self.zone, 28800, 0, "CST")


pytz = types.ModuleType("pytz")
pytz._p = lambda zone, *rest: FakePytzZone(zone)
pytz._UTC = lambda: FakePytzZone("UTC")
pytz._p.__module__ = pytz._UTC.__module__ = "pytz"
pytz._p.__qualname__, pytz._UTC.__qualname__ = "_p", "_UTC"
sys.modules["pytz"] = pytz


# ---------------------------------------------------------------- fresh graphs
def fresh(v):
    """Rebuilds `v` so no object is shared (except what CPython always shares)."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    if isinstance(v, bytes):
        return bytes(bytearray(v))
    if isinstance(v, bytearray):
        return bytearray(v)
    if isinstance(v, collections.OrderedDict):
        return collections.OrderedDict((fresh(k), fresh(x)) for k, x in v.items())
    if isinstance(v, dict):
        return {fresh(k): fresh(x) for k, x in v.items()}
    if isinstance(v, list):
        return [fresh(x) for x in v]
    if isinstance(v, tuple):
        return tuple(fresh(x) for x in v)
    if isinstance(v, frozenset):
        return frozenset(fresh(x) for x in v)
    if isinstance(v, set):
        return {fresh(x) for x in v}
    if isinstance(v, datetime.datetime):
        return datetime.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second,
                                 v.microsecond, fresh_tz(v.tzinfo), fold=v.fold)
    if isinstance(v, date):
        return date(v.year, v.month, v.day)
    if isinstance(v, time):
        return time(v.hour, v.minute, v.second, v.microsecond, fresh_tz(v.tzinfo), fold=v.fold)
    if isinstance(v, timedelta):
        return timedelta(v.days, v.seconds, v.microseconds)
    if isinstance(v, decimal.Decimal):
        return decimal.Decimal(str(v))
    if isinstance(v, uuid.UUID):
        return uuid.UUID(int=v.int)
    raise TypeError(type(v))


def fresh_tz(tz):
    if tz is None or tz is timezone.utc or isinstance(tz, (zoneinfo.ZoneInfo, FakePytzZone)):
        return tz
    if isinstance(tz, timezone):
        name = tz.tzname(None)
        off = tz.utcoffset(None)
        default = timezone(off).tzname(None)
        return timezone(timedelta(seconds=off.total_seconds()), *([name] if name != default else []))
    raise TypeError(type(tz))


# ---------------------------------------------------------------- typed description
def typed(v):
    if v is None:
        return ["none"]
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, int):
        return ["int", str(v)]
    if isinstance(v, float):
        return ["float", str(struct.unpack("<Q", struct.pack("<d", v))[0])]
    if isinstance(v, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
            # Lone surrogates cannot be written as UTF-8 (nor read by serde_json): code points.
            return ["str_code_points", [ord(c) for c in v]]
        return ["str", v]
    if isinstance(v, bytes):
        return ["bytes", v.hex()]
    if isinstance(v, bytearray):
        return ["bytearray", bytes(v).hex()]
    if isinstance(v, list):
        return ["list", [typed(x) for x in v]]
    if isinstance(v, tuple):
        return ["tuple", [typed(x) for x in v]]
    if isinstance(v, dict):
        return ["dict", [[typed(k), typed(x)] for k, x in v.items()]]
    if isinstance(v, frozenset):
        return ["frozenset", [typed(x) for x in v]]
    if isinstance(v, set):
        return ["set", [typed(x) for x in v]]
    if isinstance(v, datetime.datetime):
        return ["datetime", [v.year, v.month, v.day, v.hour, v.minute, v.second,
                             v.microsecond, v.fold, typed_tz(v.tzinfo)]]
    if isinstance(v, date):
        return ["date", [v.year, v.month, v.day]]
    if isinstance(v, time):
        return ["time", [v.hour, v.minute, v.second, v.microsecond, v.fold, typed_tz(v.tzinfo)]]
    if isinstance(v, timedelta):
        return ["timedelta", [v.days, v.seconds, v.microseconds]]
    if isinstance(v, decimal.Decimal):
        return ["decimal", str(v)]
    if isinstance(v, uuid.UUID):
        return ["uuid", v.hex]
    raise TypeError(type(v))


def typed_tz(tz):
    if tz is None:
        return None
    if tz is timezone.utc:
        return ["utc"]
    if isinstance(tz, FakePytzZone):
        return ["utc"] if tz.zone == "UTC" else ["zone", tz.zone]
    if isinstance(tz, zoneinfo.ZoneInfo):
        return ["zone", tz.key]
    if isinstance(tz, timezone):
        off = tz.utcoffset(None)
        name = tz.tzname(None)
        default = timezone(off).tzname(None)
        return ["fixed", int(off.total_seconds()), name if name != default else None]
    raise TypeError(type(tz))


# ---------------------------------------------------------------- the cases
SH = zoneinfo.ZoneInfo("Asia/Shanghai")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
CST = timezone(timedelta(hours=8))

CASES = [
    ("none", None),
    ("true", True),
    ("false", False),
    ("int_zero", 0),
    ("int_small", 7),
    ("int_255", 255),
    ("int_256", 256),
    ("int_65535", 65535),
    ("int_65536", 65536),
    ("int_neg1", -1),
    ("int_i32_max", 2**31 - 1),
    ("int_i32_min", -(2**31)),
    ("int_i32_over", 2**31),
    ("int_i32_under", -(2**31) - 1),
    ("int_i64_max", 2**63 - 1),
    ("int_i64_min", -(2**63)),
    ("int_neg128", -(2**7)),
    ("int_neg_2_15", -(2**15)),
    ("bigint_pos", 2**100),
    ("bigint_neg", -(2**100)),
    ("bigint_2_64", 2**64),
    ("bigint_huge", 7**1000),
    ("float", 1.5),
    ("float_neg", -0.1),
    ("float_big", 1e300),
    ("float_inf", float("inf")),
    ("float_neg_zero", -0.0),
    ("str_empty", ""),
    ("str_ascii", "hello"),
    ("str_unicode", "邮件发送成功 OK"),
    ("str_latin1", "café"),
    ("str_astral", "emoji 😀 \U0010ffff"),
    ("str_escapes", "back\\slash\nnew\rline\x00nul\x1a sub"),
    ("str_single_chars", ["a", "a", "é", "é", "", "", "ab", "ab"]),
    ("str_256", "x" * 256),
    ("str_lone_surrogate", "\ud800"),
    ("str_lone_surrogate_inside", "a\udc00b"),
    ("str_surrogate_code_points_pair", "\ud83d\ude00"),
    ("str_lone_surrogates_mixed", ["\udfff\ud800", "x\udbff\udc00y\U0001F600", "\ud800", "\ud800",
                                   {"k\udc80": "v"}, ("\udc00",), "\\ud800 literal"]),
    ("str_lone_surrogate_long", "\ud800" + "y" * 300),
    ("bytes_empty", b""),
    ("bytes_ascii", b"abc"),
    ("bytes_high", b"\xff\x00\x80abc\xfe"),
    ("bytes_single", [b"a", b"a", b"", b"", "a"]),
    ("bytes_256", bytes(range(256))),
    ("bytearray", bytearray(b"ab\xff")),
    ("bytearray_empty", bytearray()),
    ("list_empty", []),
    ("list_one", [1]),
    ("list_mixed", [1, "two", 3.0, None, True, b"six"]),
    ("tuple_empty", ()),
    ("tuple_1", (1,)),
    ("tuple_2", (1, 2)),
    ("tuple_3", (1, 2, 3)),
    ("tuple_4", (1, 2, 3, 4)),
    ("dict_empty", {}),
    ("dict_one", {"a": 1}),
    ("dict_mixed_keys", {"a": 1, 2: "b", (1, 2): [3], None: {}, 1.5: set()}),
    ("set", {1, 2, 3}),
    ("set_empty", set()),
    ("set_str", {"a", "bb", "ccc"}),
    ("frozenset", frozenset([1, 2])),
    ("frozenset_empty", frozenset()),
    ("nested", {"a": [1, (2, 3), {"b": [None, {"c": (4,)}]}], "d": frozenset([(1, 2)])}),
    ("datetime_naive", datetime.datetime(2024, 1, 2, 3, 4, 5)),
    ("datetime_us", datetime.datetime(2024, 12, 31, 23, 59, 59, 999999)),
    ("datetime_utc", datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)),
    ("datetime_plus8", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=CST)),
    ("datetime_minus_0330_named", datetime.datetime(1999, 6, 7, tzinfo=timezone(timedelta(hours=-3, minutes=-30), "NST"))),
    ("datetime_utc_named", datetime.datetime(2000, 1, 1, tzinfo=timezone(timedelta(0), "UTC"))),
    ("datetime_zoneinfo", datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=SH)),
    ("datetime_fold", datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS)),
    ("datetime_min", datetime.datetime.min),
    ("datetime_max", datetime.datetime.max),
    ("datetimes_shared_tz", [datetime.datetime(2024, 1, 1, tzinfo=timezone.utc), datetime.datetime(2024, 1, 2, tzinfo=timezone.utc),
                             datetime.datetime(2024, 1, 1, tzinfo=SH), datetime.datetime(2024, 1, 2, tzinfo=SH),
                             datetime.datetime(2024, 1, 3, tzinfo=PARIS), time(1, tzinfo=timezone.utc)]),
    ("date", date(2024, 2, 29)),
    ("date_min", date.min),
    ("time", time(1, 2, 3)),
    ("time_us_tz", time(23, 59, 59, 1, tzinfo=timezone.utc)),
    ("time_fixed_tz", time(12, 0, tzinfo=CST)),
    ("time_fold", time(1, 0, fold=1)),
    ("timedelta", timedelta(days=1, seconds=2, microseconds=3)),
    ("timedelta_neg", timedelta(days=-1, seconds=5)),
    ("timedelta_neg_us", -timedelta(microseconds=1)),
    ("timedelta_big", timedelta(days=999999999)),
    ("decimal", decimal.Decimal("1.50")),
    ("decimal_exp", decimal.Decimal("-1E+3")),
    ("decimal_nan", decimal.Decimal("NaN")),
    ("decimal_inf", decimal.Decimal("-Infinity")),
    ("decimal_small", decimal.Decimal("0.0000001")),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("uuid_small", uuid.UUID(int=5)),
    ("uuid_max", uuid.UUID(int=2**128 - 1)),
    ("uuids", [uuid.UUID(int=1), uuid.UUID(int=2**127)]),
    ("celery_task_body", ((2, 3), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})),
    ("celery_failure", {"exc_type": "ValueError", "exc_message": ("bad",), "exc_module": "builtins"}),
    ("celery_result_meta", {"status": "SUCCESS", "result": {"sum": 5, "at": datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=timezone.utc)},
                            "traceback": None, "children": [], "date_done": "2024-05-06T07:08:09.000010+00:00",
                            "task_id": str(uuid.UUID(int=42))}),
    ("everything", [None, True, 1, 2**70, 1.25, "s", b"b", bytearray(b"ba"), [1], (1,), {"k": "v"}, {1}, frozenset({2}),
                    datetime.datetime(2020, 2, 2, tzinfo=SH), date(2020, 2, 2), time(2, 2), timedelta(2),
                    decimal.Decimal("2.0"), uuid.UUID(int=2)]),
]

# Batching (protocols 2 and 4) and memo indices > 255.
BATCH_CASES = [
    ("list_1000", list(range(1000))),
    ("list_1001", list(range(1001))),
    ("dict_1000", {i: None for i in range(1000)}),
    ("dict_1001", {i: None for i in range(1001)}),
    ("set_1000", set(range(1000))),
    ("set_2001", set(range(2001))),
    ("frozenset_1001", frozenset(range(1001))),
    ("memo_300_strings", ["s%d" % i for i in range(300)]),
]

# Framing (protocol 4 frames of 64 KiB, payloads of 64 KiB or more outside frames).
FRAME_CASES = [
    ("frames_many_strings", ["string number %d" % i for i in range(4000)]),
    ("frames_big_str", ["head", "x" * 65536, "tail"]),
    ("frames_big_bytes", [b"\x01" * 65536, b"end"]),
]

# Decode-only: things our encoder writes differently by design (an OrderedDict decodes to a
# plain dict, pytz zones encode as ZoneInfo).
DECODE_ONLY = [
    ("ordered_dict", collections.OrderedDict([("z", 1), ("a", 2)])),
    ("pytz_zone", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=FakePytzZone("Asia/Shanghai"))),
    ("pytz_utc", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=FakePytzZone("UTC"))),
]


# ---------------------------------------------------------------- forbidden pickles
class Point:
    """A module-level class: its instances pickle as __main__.Point."""

    def __init__(self, x, y):
        self.x, self.y = x, y


class RunsShell:
    def __reduce__(self):
        return os.system, ("echo pwned",)


class CallsEval:
    def __reduce__(self):
        return eval, ("1+1",)


class GetattrEscape:
    def __reduce__(self):
        return getattr, (Point, "__init__")


FORBIDDEN = [
    ("os_system", RunsShell()),
    ("builtins_eval", CallsEval()),
    ("class_instance", Point(1, 2)),
    ("class_in_list", [1, {"p": Point(3, 4)}]),
    ("getattr_module", GetattrEscape()),
    ("collections_deque", collections.deque([1])),
    ("function_ref", os.path.join),
]


class Recorder(pickle.Unpickler):
    """Records the globals a pickle names without loading any of them."""

    def __init__(self, data):
        import io
        super().__init__(io.BytesIO(data))
        self.seen = []

    def find_class(self, module, name):
        self.seen.append((module, name))
        raise pickle.UnpicklingError("recorded")


def first_refused(data):
    rec = Recorder(data)
    try:
        rec.load()
    except Exception:
        pass
    for module, name in rec.seen:
        if (module, name) not in ALLOWED:
            return module, name
    # An allowed global was misused before a forbidden one: walk the opcodes instead.
    import pickletools
    stack = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            m, n = arg.split(" ", 1)
            if (m, n) not in ALLOWED:
                return m, n
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            stack.append(arg)
        elif op.name == "STACK_GLOBAL":
            m, n = stack[-2], stack[-1]
            if (m, n) not in ALLOWED:
                return m, n
    raise AssertionError("no refused global")


def main():
    values = []
    for group, cases, protocols, encode in (
        ("basic", CASES, range(6), True),
        ("batch", BATCH_CASES, (2, 4), True),
        ("frames", FRAME_CASES, (4,), True),
        ("frames", [("frames_big_bytearray", bytearray(b"\x03" * 65536))], (5,), True),
        ("decode_only", DECODE_ONLY, range(6), False),
    ):
        for name, value in cases:
            for proto in protocols:
                obj = fresh(value) if group != "decode_only" else value
                data = pickle.dumps(obj, protocol=proto)
                back = pickle.loads(data)
                r = repr(value)
                values.append({
                    "name": name,
                    "protocol": proto,
                    "hex": data.hex(),
                    "repr": r if len(r) <= 300 else r[:300] + "...",
                    "expect": typed(back),
                    "encode": encode and proto >= 2,
                })
    forbidden = []
    for name, value in FORBIDDEN:
        for proto in range(6):
            data = pickle.dumps(value, protocol=proto)
            module, gname = first_refused(data)
            forbidden.append({"name": name, "protocol": proto, "hex": data.hex(),
                              "module": module, "global": gname})
    doc = {
        "python": sys.version.split()[0],
        "generator": "python-fixtures/capture/capture_pickle.py",
        "values": values,
        "forbidden": forbidden,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: compact, yet diffs stay readable.
    lines = ["{"]
    lines.append(f' "python": {json.dumps(doc["python"])},')
    lines.append(f' "generator": {json.dumps(doc["generator"])},')
    for key in ("values", "forbidden"):
        lines.append(f' "{key}": [')
        items = [json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in doc[key]]
        lines.append(",\n".join("  " + i for i in items))
        lines.append(" ]," if key == "values" else " ]")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(values)} value pickles and {len(forbidden)} forbidden pickles to {OUT}")


if __name__ == "__main__":
    main()
