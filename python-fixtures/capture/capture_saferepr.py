"""Captures Python's repr() and Celery's saferepr() (as used for argsrepr/kwargsrepr).

Run with the pinned venv (python-fixtures/requirements.txt):

    .venv/bin/python python-fixtures/capture/capture_saferepr.py

Each input is given as kombu JSON (so the Rust side can build the same value with the JSON
decoder); with "tuple" true the decoded top-level list is turned into a tuple, as Celery's
``args`` are. Writes python-fixtures/golden/saferepr_values.json with, per case, the input,
``repr(value)`` and ``saferepr(value, maxlen)`` for each listed maxlen (0 meaning None).

saferepr writes a str's lone surrogates as they are, and UTF-8 cannot hold them: such an
output is written as ``{"code_points": [...], "backslashreplace": "..."}`` (its code points,
and its text encoded with the ``backslashreplace`` handler, as stderr shows it).
"""
import json
import pathlib
import sys

import celery
from celery.utils.saferepr import saferepr
from kombu.utils.json import loads

CASES = [
    ('[[2, 3], {"a": 1}]', True),
    ('[1, [2, [3, [4, [5]]]]]', True),
    ('[{"a": {"b": {"c": {"d": 1}}}}]', True),
    ('["it\'s", "say \\"hi\\"", "both \' and \\"", "new\\nline", "\\u00e9\\u4e2d\\ud83d\\ude00"]', True),
    ('[{"__type__": "bytes", "__value__": "abc"}, {"__type__": "base64", "__value__": "/wE="}]', True),
    ('[null, true, false, 1.5, 1e16, -0.0, 123456789012345678901234567890]', True),
    ('[{"__type__": "decimal", "__value__": "1.50"}, {"__type__": "uuid", "__value__": {"hex": "6e9788d2dc484974ae79858845b262a1"}}]', True),
    ('[{"__type__": "datetime", "__value__": "2024-01-02T03:04:05+00:00"}, {"__type__": "datetime", "__value__": "2024-01-02T03:04:05.000006+08:00"}, {"__type__": "date", "__value__": "2024-01-02"}, {"__type__": "time", "__value__": "03:04:00"}]', True),
    ('[' + ", ".join(str(i) for i in range(600)) + ']', True),
    ('[[' + ", ".join(["1"] * 600) + ']]', True),
    ('["' + "word " * 300 + '"]', True),
    ('["' + "x" * 2000 + '"]', True),
    ('[{"__type__": "bytes", "__value__": "' + "y" * 2000 + '"}]', True),
    ('[{"__type__": "base64", "__value__": "' + "/w" * 600 + '=="}]', True),
    ('{"k' + "e" * 50 + '": [' + ", ".join(['"v"'] * 300) + '], "other": {"nested": [1, 2]}}', False),
    ('{"a": "' + "z" * 1030 + '", "b": 2}', False),
    ('[]', True),
    ('[1]', True),
    ('{}', False),
    ('{"__type__": "decimal", "__value__": "NaN"}', False),
    ('"plain string"', False),
    ('["\\ud800", "a\\udc00b", "it\'s \\udfff", "\\ud83d\\ude00"]', True),
    ('{"k\\udc80": "\\ud800\\ud800\\ud800 \\ud800 x", "\\udfff": [1, "\\ud800"]}', False),
    ('["' + "\\ud800" * 30 + ' end"]', True),
    ('"\\udfff"', False),
]

MAXLENS = [1024, 64, 10, 0]


def as_json_text(s):
    """`s` as JSON can carry it: itself, or its code points when it holds a lone surrogate."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return {
            "code_points": [ord(c) for c in s],
            "backslashreplace": s.encode("utf-8", "backslashreplace").decode("utf-8"),
        }
    return s


def main():
    out = []
    for text, as_tuple in CASES:
        value = loads(text)
        if as_tuple:
            value = tuple(value)
        out.append({
            "json": text,
            "tuple": as_tuple,
            "repr": repr(value),
            "saferepr": {str(m): as_json_text(saferepr(value, m or None)) for m in MAXLENS},
        })
    doc = {"python": sys.version.split()[0], "celery": celery.__version__, "cases": out}
    # An optional argument names another directory (golden-5.5/ for the older line).
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parent.parent / "golden"
    path = out_dir.resolve() / "saferepr_values.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(out)} cases)")


if __name__ == "__main__":
    main()
