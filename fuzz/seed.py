"""Seeds the fuzz corpora from the golden captures of real Celery.

Fills fuzz/corpus/<target>/ for every fuzz target with inputs taken from
python-fixtures/golden/ (messages, results and values captured from Celery 5.5 / kombu 5.5).
Files are named by a hash of their content, so running it again adds nothing twice and keeps
what fuzzing added. Run with the repository's venv (it needs kombu, for pickling metas as a
Python worker would store them):

    .venv/bin/python fuzz/seed.py
"""

import base64
import hashlib
import json
import pathlib
import pickle

from kombu.utils.json import loads as kombu_loads

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "python-fixtures" / "golden"
CORPUS = ROOT / "fuzz" / "corpus"

# Largest seed kept; the smoke run's -max_len is above it.
MAX_SEED = 8192

# fuzz/fuzz_targets/protocol.rs reads: one flags byte (content type in the low 3 bits,
# accept list in bits 3-4), headers JSON, NUL, properties JSON, NUL, body.
CONTENT_TYPE_BITS = {"application/json": 0, "application/x-python-serialize": 1}
ACCEPT_JSON_AND_PICKLE = 2 << 3


def captures(kind):
    return [json.loads(p.read_text()) for p in sorted((GOLDEN / kind).glob("*.json"))]


def protocol_input(envelope):
    props = envelope["properties"]
    info = props.get("delivery_info", {})
    flat = {
        "correlation_id": props.get("correlation_id"),
        "reply_to": props.get("reply_to"),
        "delivery_mode": props.get("delivery_mode"),
        "priority": props.get("priority"),
        "exchange": info.get("exchange", ""),
        "routing_key": info.get("routing_key", ""),
        "redelivered": bool(info.get("redelivered")),
    }
    flags = CONTENT_TYPE_BITS.get(envelope["content-type"], 0) | ACCEPT_JSON_AND_PICKLE
    body = base64.b64decode(envelope["body"])
    return bytes([flags]) + json.dumps(envelope["headers"]).encode() + b"\0" + json.dumps(flat).encode() + b"\0" + body


def restored(envelope):
    """The envelope as kombu's restore puts it back (redelivered set in two places)."""
    env = json.loads(json.dumps(envelope))
    env.setdefault("headers", {})["redelivered"] = True
    env["properties"].setdefault("delivery_info", {})["redelivered"] = True
    return json.dumps(env).encode()


def seeds():
    out = {name: [] for name in ("pickle_decode", "envelope", "protocol", "json", "result_meta")}
    for case in captures("messages"):
        raw = case["raw"].encode()
        envelope = json.loads(raw)
        body = base64.b64decode(envelope["body"])
        out["envelope"] += [raw, restored(envelope)]
        out["json"].append(raw)
        out["protocol"].append(protocol_input(envelope))
        if envelope["content-type"] == "application/json":
            out["json"].append(body)
        else:
            out["pickle_decode"].append(body)
    for case in captures("results"):
        metas = [case["raw"]] + [child["raw"] for child in case.get("children") or []]
        for meta in filter(None, metas):
            out["json"].append(meta.encode())
            out["result_meta"] += [meta.encode(), pickle.dumps(kombu_loads(meta), protocol=4)]
    values = json.loads((GOLDEN / "json_values.json").read_text())
    out["json"] += [case["json"].encode() for case in values["values"]]
    out["json"] += [case["input"].encode() for case in values["decode"]]
    pickles = json.loads((GOLDEN / "pickle_values.json").read_text())
    for key in ("values", "forbidden"):
        out["pickle_decode"] += [bytes.fromhex(case["hex"]) for case in pickles[key]]
    return out


def main():
    for target, inputs in seeds().items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        kept = {data for data in inputs if len(data) <= MAX_SEED}
        for data in kept:
            (directory / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
        print(f"{target}: {len(kept)} seeds")


if __name__ == "__main__":
    main()
