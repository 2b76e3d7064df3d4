"""Captures kombu's JSON encoding of a broad set of values.

Run with the pinned venv (python-fixtures/requirements.txt):

    .venv/bin/python python-fixtures/capture/capture_json.py

Writes python-fixtures/golden/json_values.json:
- "values": for each value, its Python ``repr``, the exact text of
  ``kombu.utils.json.dumps(value)``, and the ``repr`` of ``kombu.utils.json.loads`` of that text;
- "decode": for each JSON input text, the ``repr`` of ``loads(text)`` (or the exception
  type name when kombu raises) and ``dumps(loads(text))``.
"""
import datetime
import decimal
import json
import pathlib
import sys
import uuid

import kombu
from kombu.utils.json import dumps, loads

UTC = datetime.timezone.utc
CST = datetime.timezone(datetime.timedelta(hours=8))
MINUS = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))

VALUES = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 42,
    "neg_int": -7,
    "i64_max": 2**63 - 1,
    "i64_min": -(2**63),
    "above_i64": 2**63,
    "big_2_100": 2**100,
    "big_neg_2_70": -(2**70),
    "float_one": 1.0,
    "float_0_1": 0.1,
    "float_1e16": 1e16,
    "float_1e15": 1e15,
    "float_1e-5": 1e-5,
    "float_1_5e-5": 1.5e-5,
    "float_neg_zero": -0.0,
    "float_inf": float("inf"),
    "float_neg_inf": float("-inf"),
    "float_nan": float("nan"),
    "float_big": 1.7976931348623157e308,
    "float_tiny": 5e-324,
    "float_third": 1 / 3,
    "str_empty": "",
    "str_ascii": "hello world",
    "str_chinese": "邮件发送成功 OK",
    "str_emoji": "ok \U0001F600 \U0001F680",
    "str_controls": "a\x00b\x01\x08\x09\x0a\x0b\x0c\x0d\x1f\x7f",
    "str_quotes": "say \"hi\" \\ it's /path/",
    "str_latin1": "caf\xe9 \xa0 \u00ff",
    "str_line_sep": "\u2028\u2029\ufeff",
    "str_lone_high_surrogate": "\ud800",
    "str_lone_low_surrogate_inside": "a\udc00b",
    "str_lone_surrogates_reversed": "\udfff\ud800",
    "str_surrogate_code_points_pair": "\ud83d\ude00",
    "dict_lone_surrogate_key": {"k\udc80": ["\ud800", "x\u00e9\udbff"]},
    "bytes_utf8": b"hello bytes",
    "bytes_utf8_multibyte": "é漢".encode(),
    "bytes_non_utf8": b"\xff\x00\xfe",
    "bytes_empty": b"",
    "list_empty": [],
    "list_mixed": [1, "two", 3.0, None, True],
    "tuple": (1, 2, "three"),
    "tuple_single": (1,),
    "tuple_empty": (),
    "nested": {"a": [1, {"b": (2, 3)}], "c": {"d": {"e": None}}},
    "dict_empty": {},
    "dict_non_str_keys": {1: "int", 2.5: "float", True: "bool", None: "none", "s": "str"},
    "dict_float_keys": {float("inf"): 1, 1e16: 2, -0.0: 3},
    "dict_big_key": {2**70: "big"},
    "datetime_naive": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "datetime_naive_midnight": datetime.datetime(2024, 1, 2),
    "datetime_utc": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "datetime_plus8": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=CST),
    "datetime_minus530": datetime.datetime(2024, 6, 1, 12, 0, tzinfo=MINUS),
    "datetime_micros": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "datetime_micros_naive": datetime.datetime(1999, 12, 31, 23, 59, 59, 1),
    "date": datetime.date(2024, 2, 29),
    "date_early": datetime.date(33, 1, 2),
    "time": datetime.time(3, 4, 5),
    "time_micros": datetime.time(23, 59, 59, 999999),
    "time_aware": datetime.time(12, 30, tzinfo=CST),
    "decimal_1_50": decimal.Decimal("1.50"),
    "decimal_neg_1e3": decimal.Decimal("-1E+3"),
    "decimal_small": decimal.Decimal("0.0000001"),
    "decimal_nan": decimal.Decimal("NaN"),
    "decimal_inf": decimal.Decimal("-Infinity"),
    "uuid": uuid.UUID("6e9788d2-dc48-4974-ae79-858845b262a1"),
    "uuid_nil": uuid.UUID(int=0),
    "task_args": [[2, 3], {"x": 1}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
}

DECODE = [
    '"\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t"',
    '"\\u00E9\\u4E2D"',
    '"\\ud800"',
    '"\\udc00x"',
    '"\\ud800\\u0041"',
    '"\\ud800\\ud800\\udc00"',
    '"\\ude00\\ud83d"',
    '"\\uDBFF\\uDFFF\\uDFFF"',
    '{"\\ud800": 1, "\\udc00": 2, "\\ud800": 3}',
    '"\\ud800\\u12"',
    "1E5",
    "1e-7",
    "-0",
    "-0.0",
    "123456789012345678901234567890",
    "[NaN, Infinity, -Infinity]",
    ' \t\n{"a" : 1 , "b":[ ] }\r\n',
    '{"a": 1, "b": 2, "a": 3}',
    '{"__type__": "decimal", "__value__": "1e3"}',
    '{"__type__": "decimal", "__value__": 1.1}',
    '{"__type__": "decimal", "__value__": 10}',
    '{"__value__": " 1_000.50 ", "__type__": "decimal"}',
    '{"__type__": "uuid", "__value__": {"hex": "6e9788d2dc484974ae79858845b262a1", "version": 4}}',
    '{"__type__": "uuid", "__value__": {"hex": "{6E9788D2-DC48-4974-AE79-858845B262A1}"}}',
    '{"__type__": "uuid", "__value__": {"int": 5}}',
    '{"__type__": "datetime", "__value__": "2024-01-02T03:04:05Z"}',
    '{"__type__": "datetime", "__value__": "2024-01-02 03:04:05.5+0800"}',
    '{"__type__": "datetime", "__value__": "2024-01-02"}',
    '{"__type__": "date", "__value__": "2024-01-02T03:04:05"}',
    '{"__type__": "time", "__value__": "03:04:05.123+01:00"}',
    '{"__type__": "base64", "__value__": "/w\\nA="}',
    '{"__type__": "bytes", "__value__": "\\u00e9"}',
    '{"__type__": "bytes", "__value__": "x", "extra": 1}',
    '{"__type__": "bytes"}',
    '[{"__type__": "date", "__value__": "2024-01-02"}, {"k": {"__type__": "decimal", "__value__": "2"}}]',
    '{"__type__": "nope", "__value__": 1}',
    '{"__type__": "datetime", "__value__": "not a date"}',
    '{"__type__": "decimal", "__value__": "abc"}',
    '{"__type__": "base64", "__value__": "YWJ"}',
    "[1, 2,]",
    '{"a": 1,}',
    "[01]",
    "1.",
    '"\\x"',
    '"tab\tinside"',
    "nan",
    "",
    "[1] x",
]


def describe(value):
    text = dumps(value)
    return {"repr": repr(value), "json": text, "loads_repr": repr(loads(text))}


def decode_case(text):
    try:
        value = loads(text)
    except Exception as exc:  # kombu raises these for malformed input
        return {"input": text, "error": type(exc).__name__}
    return {"input": text, "loads_repr": repr(value), "dumps": dumps(value)}


def main():
    out = {
        "python": sys.version.split()[0],
        "kombu": kombu.__version__,
        "values": [dict(name=name, **describe(v)) for name, v in VALUES.items()],
        "decode": [decode_case(t) for t in DECODE],
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "golden" / "json_values.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(out['values'])} values, {len(out['decode'])} decode cases)")


if __name__ == "__main__":
    main()
