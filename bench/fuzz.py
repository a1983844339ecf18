"""Hostile requests against the running service: how many answer 5xx (goal: none).

Usage:
    .venv/bin/python bench/fuzz.py [--requests 50000] [--clients 4] [--max-seconds 1800]
        [--seed 1] [--redis-db 3]

Creates the database `earshot_bench_fuzz` (dropped first), migrates it, seeds a small
data set (bench/_common.py's seed: 2,000 recordings over 200 profiles), creates a
service client holding every scope, a signed-in end user and a verified privacy
officer (sessions written straight into the session table), and serves it with
gunicorn (2 sync workers) on 127.0.0.1. Then `--clients` processes send generated
requests, each on its own keep-alive connection, until `--requests` are answered or
`--max-seconds` have passed:

- every operation of the OpenAPI schema (/api/schema/), with good values in all
  fields but one or two hostile ones, or a wholly hostile body (wrong JSON types, raw
  bytes that are not JSON or not UTF-8, nesting thousands deep);
- every form of the privacy and officer pages, as the signed-in user or officer, with
  a valid CSRF token, one or two fields hostile; the sign-in form; a few other paths;
- hostile values: NUL characters, lone surrogates (as JSON escapes and as the bytes a
  careless encoder writes), integers past 64 bits, floats, dates at the ends of the
  calendar, very long strings, text in other scripts, injection-shaped strings;
- in bodies, path segments, query strings, headers (Idempotency-Key, X-Forwarded-For,
  Accept, Content-Type, Authorization) and cookies (session and CSRF).

Prints the answers by status class, how many were 5xx with a sample of each kind, and
the server log's count of "Internal Server Error". Exits non-zero only when the run
broke (the server did not start or a worker died), not when 5xx were counted.
"""

import argparse
import http.client
import json
import multiprocessing
import random
import secrets
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import (
    HOST,
    SeedSpec,
    app_env,
    create_service_client,
    gunicorn,
    heading,
    manage,
    prepare_database,
    say,
)
from hostile import (
    BIG_NUMBERS,
    EDGE_TIMES,
    KILLERS,
    LONG_LENGTHS,
    NASTY_TEXT,
    schema_operations,
    url_part,
)
from hostile import good as good_value

DB = "earshot_bench_fuzz"
OUT = Path(__file__).resolve().parent / "out" / "fuzz"
SPEC = SeedSpec(recordings=2_000, profiles=200, accounts=160)

# The data set's ids (bench/_common.py's seed) in the good values around a hostile one.
IDS = {
    "profile": "prof-1",
    "account": "acc-1",
    "recording_id": "rec-1",
    "profile_id": "prof-1",
    "recordings": ["rec-1", "rec-2"],
}
CSRF = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"  # a 32-character CSRF secret, sent as cookie and field
FORMS = [  # (who, path, fields with good values)
    ("owner", "/privacy/profiles/prof-1/consents/human_review/", {"granted": "true"}),
    ("owner", "/privacy/profiles/prof-1/consents/model_training/", {"granted": "false"}),
    ("owner", "/privacy/profiles/prof-1/retention/", {"choice": "3_months", "confirm": "on"}),
    (
        "owner",
        "/privacy/profiles/prof-1/deletions/",
        {"scope": "range", "date_from": "2026-01-01", "date_to": "2026-02-01"},
    ),
    ("owner", "/privacy/profiles/prof-1/deletions/", {"scope": "one", "recording": "rec-1"}),
    (
        "officer",
        "/officer/policies/",
        {
            "jurisdiction": "US",
            "category": "audio",
            "applies_to": "all",
            "retention_days": "30",
            "effective_from": "2026-01-01T00:00",
            "action": "preview",
        },
    ),
    (
        "officer",
        "/officer/consent-defaults/",
        {"jurisdiction": "US", "purpose": "model_training", "granted": "true"},
    ),
    ("officer", "/officer/transfer-rules/", {"jurisdiction": "US", "reviewer_location": "IE"}),
    (
        "officer",
        "/officer/holds/",
        {
            "scope": "account",
            "target": "acc-1",
            "date_from": "2026-01-01",
            "date_to": "2026-02-01",
            "case_reference": "C-1",
            "reason": "r",
        },
    ),
    ("officer", "/officer/policies/1/retire/", {}),
    ("officer", "/officer/holds/1/release/", {}),
    ("officer", "/officer/consent-defaults/1/delete/", {}),
    ("officer", "/officer/transfer-rules/1/delete/", {}),
    ("anonymous", "/accounts/login/", {"username": "someone", "password": "x", "next": "/"}),
]
PAGES = [  # (who, path, query fields)
    ("owner", "/privacy/", {}),
    ("owner", "/privacy/profiles/prof-1/recordings/", {"page": "1"}),
    ("owner", "/privacy/deletions/x/", {}),
    ("officer", "/officer/", {}),
    ("officer", "/officer/holds/", {"released": "1"}),
    ("officer", "/officer/ledger/", {"kind": "consent", "page": "1"}),
    ("officer", "/officer/reports/retention.csv", {}),
    ("anonymous", "/metrics", {}),
    ("anonymous", "/healthz", {}),
    ("anonymous", "/readyz", {}),
    ("anonymous", "/api/docs/", {}),
    ("anonymous", "/admin/login/", {"next": "/admin/"}),
]


# --------------------------------------------------------------------------- values


def text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(KILLERS)
    if roll < 0.55:
        return rng.choice(NASTY_TEXT)
    if roll < 0.7:
        return rng.choice(EDGE_TIMES)
    if roll < 0.8:
        return "x" * rng.choice(LONG_LENGTHS)
    return "".join(
        chr(rng.choice([0, 0xD800, 0xDFFF, 0x41, 0x3B1, 0x1F600, 0x7F, 0x202E]))
        for _ in range(rng.randint(1, 6))
    )


def hostile(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.45 or depth > 1:
        return text(rng)
    if roll < 0.65:
        return rng.choice(BIG_NUMBERS)
    if roll < 0.75:
        return rng.choice([None, True, False, [], {}])
    if roll < 0.87:
        return [hostile(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return {text(rng): hostile(rng, depth + 1) for _ in range(rng.randint(1, 2))}


def good(name: str, spec: dict[str, Any]) -> Any:
    return good_value(name, spec, IDS)


def bad(rng: random.Random, spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if kind == "array" and rng.random() < 0.6:
        return [text(rng) for _ in range(rng.randint(1, 3))]
    if spec.get("format") == "date-time" and rng.random() < 0.6:
        return rng.choice(EDGE_TIMES)
    if kind == "string" and rng.random() < 0.6:
        return text(rng)
    return hostile(rng)


def wire(value: str) -> bytes:
    """A str as bytes on the wire; a lone surrogate as the bytes a careless encoder writes."""
    return value.encode("utf-8", "surrogatepass")


def json_bytes(value: Any, rng: random.Random) -> bytes:
    """JSON; lone surrogates escaped (\\udfff), or now and then as raw bytes (not UTF-8)."""
    if rng.random() < 0.1:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def broken_body(rng: random.Random) -> bytes:
    return rng.choice(
        [
            b"{",
            b'{"purpose": "human_review", "recordings": ["a"',
            b"\xff\xfe{\x00}",
            b'{"a": "\xed\xa0\x80"}',
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b'{"size": 1' + b"0" * 5000 + b"}",
            b"NaN",
            b'{"size": Infinity}',
            b"\x00\x00\x00",
            b'{"purpose": "human_review", "purpose": "model_training"}',
        ]
    )


# --------------------------------------------------------------------------- requests


class Generator:
    def __init__(self, rng: random.Random, schema: dict[str, Any], sessions: dict[str, str]):
        self.rng = rng
        self.sessions = sessions
        self.operations = [
            (path, method.upper(), operation, props)
            for path, method, operation, props in schema_operations(schema)
        ]

    def headers(self, who: str) -> dict[str, bytes]:
        rng = self.rng
        headers: dict[str, bytes] = {}
        cookies = []
        if who in self.sessions:
            cookies.append(f"sessionid={self.sessions[who]}".encode())
        if who == "key":
            headers["Authorization"] = f"Api-Key {self.sessions['key']}".encode()
        cookies.append(f"csrftoken={CSRF}".encode())
        if rng.random() < 0.3:
            headers["Idempotency-Key"] = wire(text(rng))
        if rng.random() < 0.2:
            headers["X-Forwarded-For"] = wire(text(rng))
        if rng.random() < 0.1:
            headers["Accept"] = rng.choice([b"text/html", b"*/*", b"application/xml", b"\x00"])
        if rng.random() < 0.1:
            cookies.append(
                rng.choice(
                    [
                        b'sessionid="abc\\000defghijk"',
                        b"sessionid=" + wire(text(rng)),
                        b"csrftoken=" + wire(text(rng)),
                        b'sessionid="' + b"\\" * 300 + b'"',
                    ]
                )
            )
        if rng.random() < 0.05:
            headers["Authorization"] = rng.choice(
                [b"Api-Key ", b"Api-Key esk_\x00", b"Api-Key " + b"x" * 5000, b"Bearer x"]
            )
        headers["Cookie"] = b"; ".join(cookies)
        return headers

    def api(self) -> tuple[str, str, dict[str, bytes], bytes | None]:
        rng = self.rng
        path, method, operation, props = rng.choice(self.operations)
        query = []
        for parameter in operation.get("parameters", []):
            name, spec = parameter["name"], parameter.get("schema", {})
            raw = good(name, spec) if rng.random() < 0.6 else bad(rng, spec)
            if parameter["in"] == "path":
                path = path.replace("{" + name + "}", url_part(raw) or "x")
            elif parameter["in"] == "query" and rng.random() < 0.8:
                query.append(f"{url_part(name)}={url_part(raw)}")
        if rng.random() < 0.05:
            query.append(f"{url_part(text(rng))}={url_part(text(rng))}")
        who = "key" if rng.random() < 0.85 else rng.choice(["owner", "officer", "anonymous"])
        headers = self.headers(who)
        body = None
        if method in ("POST", "PUT", "PATCH"):
            headers.setdefault("X-CSRFToken", CSRF.encode())
            roll = rng.random()
            if roll < 0.08:
                body = broken_body(rng)
            elif roll < 0.16:
                body = json_bytes(hostile(rng), rng)
            else:
                value = {k: good(k, spec) for k, spec in props.items()}
                for target in rng.sample(sorted(props), min(len(props), rng.randint(1, 2))):
                    value[target] = bad(rng, props[target])
                if rng.random() < 0.15:
                    value[text(rng)] = hostile(rng)
                body = json_bytes(value, rng)
                if rng.random() < 0.05:  # the same JSON in UTF-16, which json.loads detects
                    body = body.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
            headers["Content-Type"] = (
                b"application/json"
                if rng.random() < 0.92
                else rng.choice([b"application/json; charset=utf-16", b"text/plain", b"", b"\x00"])
            )
        return method, path + ("?" + "&".join(query) if query else ""), headers, body

    def form(self) -> tuple[str, str, dict[str, bytes], bytes | None]:
        rng = self.rng
        who, path, fields = rng.choice(FORMS)
        values: dict[str, Any] = dict(fields)
        names = sorted(values)
        for target in rng.sample(names, min(len(names), rng.randint(1, 2))) if names else []:
            values[target] = text(rng) if rng.random() < 0.8 else rng.choice(BIG_NUMBERS)
        if rng.random() < 0.15:
            values[text(rng)] = text(rng)
        values["csrfmiddlewaretoken"] = CSRF
        body = "&".join(f"{url_part(k)}={url_part(v)}" for k, v in values.items()).encode()
        headers = self.headers(who)
        headers["Content-Type"] = b"application/x-www-form-urlencoded"
        return "POST", path, headers, body

    def page(self) -> tuple[str, str, dict[str, bytes], bytes | None]:
        rng = self.rng
        who, path, fields = rng.choice(PAGES)
        query = [f"{url_part(k)}={url_part(text(rng))}" for k in fields]
        if rng.random() < 0.3:
            query.append(f"{url_part(text(rng))}={url_part(text(rng))}")
        return "GET", path + ("?" + "&".join(query) if query else ""), self.headers(who), None

    def next(self) -> tuple[str, str, dict[str, bytes], bytes | None]:
        roll = self.rng.random()
        if roll < 0.7:
            return self.api()
        if roll < 0.9:
            return self.form()
        return self.page()


# --------------------------------------------------------------------------- clients


def _send(conn: http.client.HTTPConnection, request: tuple) -> tuple[int, bytes]:
    method, path, headers, body = request
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(body or b"")))
    conn.endheaders(body)
    response = conn.getresponse()
    return response.status, response.read()


def _client(job: tuple[int, int, int, dict, dict, float]) -> dict[str, Any]:
    index, port, count, schema, sessions, deadline = job
    rng = random.Random(index)
    generator = Generator(rng, schema, sessions)
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    statuses: Counter[int] = Counter()
    samples: list[dict[str, Any]] = []
    errors = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        request = generator.next()
        try:
            status, content = _send(conn, request)
        except (OSError, http.client.HTTPException):
            # gunicorn refuses some raw header bytes by closing the connection
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            continue
        statuses[status] += 1
        if status >= 500 and len(samples) < 20:
            method, path, headers, body = request
            samples.append(
                {
                    "status": status,
                    "request": f"{method} {path[:200]}",
                    "headers": {k: v[:80] for k, v in headers.items() if k != "Cookie"},
                    "body": (body or b"")[:200],
                    "answer": content[:200],
                }
            )
    conn.close()
    return {"statuses": statuses, "samples": samples, "errors": errors}


def _forget_queued_tasks(db: int) -> None:
    """The deletion requests the fuzz filed queued tasks for a worker that never ran: drop
    that queue (and the throttle counters) rather than leave them to the next worker."""
    import redis

    client = redis.Redis(host=HOST, port=6379, db=db)
    keys = [b"celery", *client.scan_iter(match="earshot:*", count=1000)]
    client.delete(*keys)
    client.close()


SESSION_SCRIPT = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from compliance.accounts.models import Account
from compliance.security.roles import OFFICERS_GROUP

def session(user, device=None):
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    if device is not None:
        store[DEVICE_ID_SESSION_KEY] = device.persistent_id
    store.create()
    return store.session_key

owner = User.objects.create_user("fuzz-owner", password="{password}")
Account.objects.filter(external_id="acc-1").update(user=owner)
officer = User.objects.create_user("fuzz-officer", password="{password}")
officer.groups.add(Group.objects.get_or_create(name=OFFICERS_GROUP)[0])
device = TOTPDevice.objects.create(user=officer, name="fuzz", confirmed=True)
print("owner", session(owner))
print("officer", session(officer, device))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-db", type=int, default=3, help="broker and cache database")
    args = parser.parse_args()

    env = app_env(DB)
    env.update(
        CELERY_BROKER_URL=f"redis://{HOST}:6379/{args.redis_db}",
        # every request must reach the code under test, not the brake in front of it
        API_THROTTLE_CLIENT="100000000/min",
        API_THROTTLE_USER="100000000/min",
        SIGN_IN_MAX_FAILURES="100000000",
        SIGN_IN_MAX_FAILURES_PER_ADDRESS="100000000",
        MEDIA_ROOT=str(OUT / "media"),
        STATIC_ROOT=str(OUT / "static"),
        # the database is new each run, so its published ledger must be too: an export
        # left by an earlier run is another history, which the service refuses to extend
        LEDGER_EXPORT=str(OUT / "ledger-export"),
        LEDGER_KEY_DIR=str(OUT / "ledger-key"),
    )
    shutil.rmtree(OUT / "ledger-export", ignore_errors=True)
    heading("Database")
    prepare_database(DB, SPEC, env, keep=False)
    manage(env, "collectstatic", "--no-input", "-v", "0")  # the pages' manifest
    scopes = manage(
        env,
        "shell",
        "--no-imports",
        "-c",
        "from compliance.clients.scopes import SCOPES; print(*sorted(SCOPES))",
    ).split()
    sessions = {"key": create_service_client(env, DB, "fuzz", scopes)}
    password = secrets.token_urlsafe(16)
    script = SESSION_SCRIPT.replace("{password}", password)
    for line in manage(env, "shell", "--no-imports", "-c", script).splitlines():
        who, _, session_key = line.partition(" ")
        if who in ("owner", "officer"):
            sessions[who] = session_key.strip()

    heading("Load")
    with gunicorn(env, workers=2) as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        conn.request("GET", "/api/schema/?format=json")
        schema = json.loads(conn.getresponse().read())
        conn.close()
        per_client = -(-args.requests // args.clients)
        deadline = time.monotonic() + args.max_seconds
        jobs = [
            (args.seed * 1000 + i, server.port, per_client, schema, sessions, deadline)
            for i in range(args.clients)
        ]
        say(
            f"{args.clients} clients x {per_client:,} requests to {HOST}:{server.port}, "
            f"at most {args.max_seconds:.0f} s"
        )
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            results = pool.map(_client, jobs)
        seconds = time.monotonic() - started
        server.check_workers()
        log = server.log.read_text(errors="replace")

    _forget_queued_tasks(args.redis_db)
    statuses: Counter[int] = Counter()
    samples = []
    errors = 0
    for result in results:
        statuses.update(result["statuses"])
        samples.extend(result["samples"])
        errors += result["errors"]
    answered = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    heading("Result")
    say(f"answered: {answered:,} in {seconds:.0f} s ({answered / seconds:.0f}/s)")
    say(f"connections closed without an answer: {errors:,}")
    by_class = Counter(f"{status // 100}xx" for status in statuses.elements())
    say("by class: " + ", ".join(f"{c} {n:,}" for c, n in sorted(by_class.items())))
    say("by status: " + ", ".join(f"{s} {n:,}" for s, n in sorted(statuses.items())))
    say(f"server log 'Internal Server Error': {log.count('Internal Server Error')}")
    verdict = "PASS" if server_errors == 0 else "FAIL"
    say(f"5xx: {server_errors:,} (goal 0) {verdict}")
    for sample in samples[:10]:
        say(f"  {sample}")
    if answered + errors < args.requests:
        say(f"note: {args.requests - answered - errors:,} requests not sent (time bound)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
