"""The hostile values, and the good ones around them, that both fuzzers send.

`bench/fuzz.py` draws from these lists at random against a running server (50,000
requests); `tests/security/test_fuzz_inputs.py` draws from them with hypothesis in CI.
Each class here has reached a 500 before (docs/reliability.md, "Faults found by
attacking the service"): a value added for one fuzzer is sent by both. Plain Python,
no Django: the benchmark's clients import it outside the project's settings.
"""

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

# Dates at the ends of the calendar, the two that have reached the database as a 500.
KILLER_TIMES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
# What has reached the database as a 500 before: drawn often.
KILLERS = ["\x00", "a\x00b", "\udfff", "x\ud800y", "\ud83d", *KILLER_TIMES]
EDGE_TIMES = [
    *KILLER_TIMES,
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "1969-12-31T23:59:59Z",
    "9000-12-31T23:59:59+14:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00+25:00",
    "+275760-09-13T00:00:00Z",
    "2026-01-01T00:00:00",
    "9999-12-31",
    "0001-01-01",
    "0000-00-00",
    "2026-13-01",
    "9999-12-31T23:59",
    "0001-01-01T00:00",
]
NASTY_TEXT = [
    "",
    " ",
    "\u202e\u0301",
    "\ufeff",
    "%00",
    "\\u0000",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "items",
    "keys",
    "__proto__",
    "null",
    "true",
    "on",
    "NaN",
    "-1",
    "0",
    "18446744073709551616",
    "1e400",
    "Straße",
    "日本語の録音",
    "🎙️",
]
BIG_NUMBERS = [2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), -1, 0, 1.5, 1e308, -0.0, 10**400]
LONG_LENGTHS = [129, 257, 10_001, 100_001]  # past the usual max_length values, and far past

# Values that pass each field's first checks, so that the one hostile value of a
# request reaches the deep end of the validation (and the database) behind them. The
# ids of the data set (profile, account, recordings) are each fuzzer's own.
GOOD = {
    "purpose": "human_review",
    "jurisdiction": "US",
    "reviewer_location": "US",
    "category": "audio",
    "applies_to": "all",
    "retention_days": 30,
    "size": 1,
    "recorded_at": "2026-01-01T00:00:00Z",
    "granted": True,
    "channel": "api",
    "notice_version": "v1",
    "choice": "3_months",
    "reason": "a reason",
    "case_reference": "C-1",
    "text": "an annotation",
    "is_child": False,
    "flags": ["sensitive"],
    "transcript": "turn on the lights",
    "id": 1,
    "pk": 1,
    "from": "2026-01-01T00:00:00Z",
    "to": "2026-02-01T00:00:00Z",
}


def good(name: str, spec: Mapping[str, Any], ids: Mapping[str, Any]) -> Any:
    """A good value for the field or parameter `name` of the OpenAPI schema `spec`:
    the data set's id (`ids`), a known good value, else one the schema allows."""
    if name in ids:
        return ids[name]
    if name in GOOD:
        return GOOD[name]
    if spec.get("enum"):
        return spec["enum"][0]
    if spec.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    return {"integer": 1, "boolean": True, "array": ["x"], "number": 1}.get(
        spec.get("type", ""), "fuzz-1"
    )


def schema_operations(
    schema: Mapping[str, Any],
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Every operation of an OpenAPI schema as (path, method, operation, the properties
    of its JSON body but files), the method in lower case."""
    components = schema.get("components", {}).get("schemas", {})
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = operation.get("requestBody", {}).get("content", {})
            ref = (body.get("application/json") or {}).get("schema", {}).get("$ref", "")
            properties = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            properties = {
                name: spec for name, spec in properties.items() if spec.get("format") != "binary"
            }
            found.append((path, method, operation, properties))
    return found


def url_part(value: Any) -> str:
    """A value as one percent-encoded part of a URL; lone surrogates as the bytes a
    careless encoder writes for them."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")
