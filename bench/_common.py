"""Helpers that every benchmark in bench/ can reuse.

- a PostgreSQL database of its own, migrated with the project's migrations and seeded
  with set-based SQL (INSERT ... SELECT generate_series), at the size asked for;
- a service client created through `manage.py create_service_client`;
- gunicorn started and always stopped by its pid, its workers' resident memory;
- load: wrk with a generated Lua script (apt-get installs wrk only when it is missing),
  or a Python load generator (http.client, several processes) when wrk cannot be had;
- Celery: a worker (prefork) and beat started and always stopped by pid, tasks sent by
  name to a Redis broker, queues cleared;
- processes: resident memory sampled in a thread (`RssSampler`), CPU time from /proc of
  our processes and of the PostgreSQL backends serving one database (`PostgresCpu`);
- a py-spy profile of one worker, summarised per function;
- a summary block with PASS/FAIL per goal.

Traffic goes to HOST (127.0.0.1) only, never anywhere else.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
HOST = "127.0.0.1"  # the one address a benchmark sends traffic to
PG_PORT = 5432
PG_USER = "postgres"


class BenchError(RuntimeError):
    """Something broke, as opposed to a goal being missed: the run exits non-zero."""


def say(message: str = "") -> None:
    print(message, flush=True)


def heading(title: str) -> None:
    say()
    say(f"== {title}")


# --------------------------------------------------------------------------- database


def use_pg_port(port: int) -> None:
    """Point every later connection (the bench's and the app's DATABASE_URL) at the
    PostgreSQL on `port` of HOST, e.g. a private cluster a benchmark started."""
    global PG_PORT
    PG_PORT = port


def database_url(db: str) -> str:
    return f"postgres://{PG_USER}@{HOST}:{PG_PORT}/{db}"


def connect(db: str) -> psycopg.Connection:
    """Autocommit, and no automatic prepared statements: Django's backend plans every
    query afresh with its values, and a baseline must get the plans the app gets."""
    return psycopg.connect(
        host=HOST, port=PG_PORT, user=PG_USER, dbname=db, autocommit=True, prepare_threshold=None
    )


def app_env(db: str) -> dict[str, str]:
    """The environment for manage.py and gunicorn against benchmark database `db`."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(db),
        SECRET_KEY="bench",  # noqa: S106 (a throwaway database on 127.0.0.1)
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DEBUG="0",
        ALLOWED_HOSTS=HOST,
        LOG_LEVEL="WARNING",
        CELERY_BROKER_URL=f"redis://{HOST}:6379/15",
    )
    return env


def database_comment(db: str) -> str | None:
    """The comment on database `db`; None when the database does not exist."""
    with connect("postgres") as conn:
        row = conn.execute(
            "SELECT coalesce(shobj_description(oid, 'pg_database'), '')"
            " FROM pg_database WHERE datname = %s",
            [db],
        ).fetchone()
    return None if row is None else row[0]


def recreate_database(db: str) -> None:
    with connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def mark_database(db: str, marker: str) -> None:
    with connect("postgres") as conn:
        conn.execute(f"COMMENT ON DATABASE \"{db}\" IS '{marker}'")


def manage(env: dict[str, str], *args: str) -> str:
    """Run `manage.py *args`; its stdout. Raises BenchError with its output on failure."""
    done = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(
            f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


@dataclass(frozen=True)
class SeedSpec:
    """How much data to seed. The marker records it on the database once seeding is done,
    so that --keep-db reuses only a database seeded completely and at the same size."""

    recordings: int
    profiles: int
    accounts: int
    version: int = 3  # 3: the recordings carry their profile's facts (recordings/0009)
    # "random": recorded_at drawn at random, every EXPIRED_EVERY-th recording past its
    # retention (spread over the whole table). "time-ordered": ids registered in time
    # order, the oldest 1/EXPIRED_EVERY of them past their retention (a contiguous
    # slice, as in production, where what expires together was registered together),
    # and every EXPIRED_EVERY-th of the rest due in SPREAD_DUE_DAYS (a spread slice,
    # the worst case, that a benchmark can make due by moving its expiry).
    layout: str = "random"

    @property
    def marker(self) -> str:
        layout = "" if self.layout == "random" else f" layout={self.layout}"
        return (
            f"earshot bench seed v{self.version}: recordings={self.recordings}"
            f" profiles={self.profiles} accounts={self.accounts}{layout}"
        )


# Jurisdictions and their weights (out of 100), consent defaults, transfer rules.
JURISDICTIONS = (("US", 40), ("DE", 20), ("GB", 15), ("FR", 15), ("IE", 10))
CONSENT_DEFAULTS = (  # (jurisdiction, purpose, granted): the US is opt-out for both purposes
    ("US", "human_review", True),
    ("US", "model_training", True),
    ("GB", "model_training", False),
    ("FR", "human_review", False),
)
TRANSFER_RULES = (  # (jurisdiction, reviewer_location)
    ("FR", "DE"),
    ("IE", "DE"),
    ("GB", "DE"),
    ("DE", "IE"),
    ("GB", "IE"),
    ("US", "IE"),
)
PURPOSES = ("human_review", "model_training")
CATEGORIES = ("audio", "transcript")
EXPIRED_EVERY = 97  # every 97th recording's artefacts are past their retention, awaiting purge
SPREAD_DUE_DAYS = 7  # layout "time-ordered": the spread slice is due in a week
SPREAD_BASIS = "policy:bench-spread"  # and its expiry_basis tells it apart


def _jurisdiction_case(var: str) -> str:
    """SQL: a jurisdiction picked by weight from `var`, a number in [0, 100)."""
    arms, upto = [], 0
    for code, weight in JURISDICTIONS[:-1]:
        upto += weight
        arms.append(f"WHEN {var} < {upto} THEN '{code}'")
    return f"CASE {' '.join(arms)} ELSE '{JURISDICTIONS[-1][0]}' END"


def _values(rows: Sequence[tuple[object, ...]]) -> str:
    def literal(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else f"'{value}'"

    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


@dataclass(frozen=True)
class Insert:
    """INSERT INTO table (columns) SELECT expressions FROM source.

    Rendered against the live schema: a column that the table no longer has is left
    out, and a NOT NULL column without a default that `columns` does not fill stops
    the seeding with a clear message (Django sets no column defaults in the database).
    `OFFSET 0` in a source keeps each random() drawn once per row.
    """

    label: str
    table: str
    columns: dict[str, str]
    source: str

    def sql(self, conn: psycopg.Connection) -> str:
        live = conn.execute(
            "SELECT column_name, is_nullable = 'NO' AND column_default IS NULL"
            " AND is_identity = 'NO' FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s",
            [self.table],
        ).fetchall()
        if not live:
            raise BenchError(f"table {self.table} does not exist after migrate")
        unfilled = [name for name, required in live if required and name not in self.columns]
        if unfilled:
            raise BenchError(
                f"{self.table} has NOT NULL columns the seed does not fill: {unfilled};"
                " update bench/_common.py"
            )
        names = {name for name, _ in live}
        columns = {c: e for c, e in self.columns.items() if c in names}
        return (
            f"INSERT INTO {self.table} ({', '.join(columns)})"
            f" SELECT {', '.join(columns.values())} FROM {self.source}"
        )


def seed_inserts(spec: SeedSpec) -> list[Insert]:
    """The data, in order.

    Accounts spread over JURISDICTIONS; profiles 1-2 per account, ~5% children; one
    consent state per profile and purpose (60% granted, 20% withdrawn, 20% no event
    yet; a child's human_review is never granted); recordings 'rec-1'..'rec-N' over
    the last 18 months, ~2% purged tombstones (no profile, purge time, reason, policy;
    no artefacts), ~1% sensitive, ~1% false wake; an audio and a transcript artefact
    per active recording, half with a retention expiry 18 months after recording,
    every EXPIRED_EVERY-th recording's already past it (awaiting purge). With
    `spec.layout` "time-ordered", see SeedSpec: the artefacts follow their recordings
    in id order (a sequential scan of a freshly loaded table returns them so).
    """
    a, p, r = spec.accounts, spec.profiles, spec.recordings
    purposes = ", ".join(f"'{x}'" for x in PURPOSES)
    categories = ", ".join(f"'{x}'" for x in CATEGORIES)
    granted = (
        "CASE WHEN x < 0.6 AND (purpose <> 'human_review' OR NOT is_child) THEN true"
        " WHEN x >= 0.6 AND x < 0.8 THEN false END"
    )
    ordered = spec.layout == "time-ordered"
    oldest = max(1, r // EXPIRED_EVERY)
    expired = f"rid <= {oldest}" if ordered else f"rid % {EXPIRED_EVERY} = 0"
    spread = f"rid > {oldest} AND rid % {EXPIRED_EVERY} = 0" if ordered else "false"
    # time-ordered: the oldest registered expire first, in id order, as under one policy
    past = (
        f"now() - interval '1 day' + rid::float8 / {oldest} * interval '1 hour'"
        if ordered
        else "now() - d * interval '1 day'"
    )
    expires = (
        f"CASE WHEN {expired} THEN {past}"
        f" WHEN {spread} THEN now() + interval '{SPREAD_DUE_DAYS} days'"
        " WHEN rid % 2 = 0 THEN recorded_at + interval '548 days' END"
    )
    basis = (
        f"CASE WHEN {spread} THEN '{SPREAD_BASIS}'"
        f" WHEN ({expires}) IS NULL THEN '' ELSE 'policy:bench' END"
    )
    # time-ordered: recording n of N registered at the n-th step of 540 days (the
    # tombstones among them too), so that ids, pages and time go together
    when = (
        f"now() - (1 - (n - 0.5) / {r}) * interval '540 days'"
        if ordered
        else "CASE WHEN purged THEN now() - interval '100 days' - x * interval '440 days'"
        " ELSE now() - x * interval '540 days' END"
    )
    purged_at = (
        "LEAST(t + interval '90 days', now() - interval '1 hour')"
        if ordered
        else "t + interval '90 days'"
    )
    audio = "category = 'audio'"
    return [
        Insert(
            f"{a:,} accounts",
            "accounts_account",
            {
                "id": "n",
                "external_id": "'acc-' || n",
                "jurisdiction": _jurisdiction_case("j"),
                "created_at": "t",
                "user_id": "NULL",
            },
            "(SELECT n, random() * 100 AS j, now() - random() * interval '900 days' AS t"
            f" FROM generate_series(1, {a}) n OFFSET 0) s",
        ),
        Insert(
            f"{p:,} profiles",
            "accounts_profile",
            {
                "id": "n",
                "external_id": "'prof-' || n",
                "account_id": f"1 + (n - 1) % {a}",
                "is_child": "child",
                "display_name": "''",
                "retention_choice": "NULL",
                "created_at": "t",
            },
            "(SELECT n, random() < 0.05 AS child, now() - random() * interval '800 days' AS t"
            f" FROM generate_series(1, {p}) n OFFSET 0) s",
        ),
        Insert(
            f"{len(PURPOSES) * p:,} consent states",
            "consent_consentstate",
            {
                "profile_id": "id",
                "purpose": "purpose",
                "granted": granted,
                "updated_at": f"CASE WHEN ({granted}) IS NOT NULL THEN t END",
                "last_event_id": "NULL",
            },
            "(SELECT pr.id, pr.is_child, pu.purpose, random() AS x,"
            " now() - random() * interval '700 days' AS t FROM accounts_profile pr"
            f" CROSS JOIN unnest(ARRAY[{purposes}]) AS pu(purpose) OFFSET 0) s",
        ),
        Insert(
            f"{len(CONSENT_DEFAULTS)} consent defaults",
            "consent_consentdefault",
            {
                "jurisdiction": "j",
                "purpose": "pu",
                "granted": "g",
                "created_at": "now()",
                "created_by": "'bench'",
            },
            f"(VALUES {_values(CONSENT_DEFAULTS)}) v(j, pu, g)",
        ),
        Insert(
            f"{len(TRANSFER_RULES)} transfer rules",
            "transfers_transferrule",
            {
                "jurisdiction": "j",
                "reviewer_location": "loc",
                "created_at": "now()",
                "created_by": "'bench'",
            },
            f"(VALUES {_values(TRANSFER_RULES)}) v(j, loc)",
        ),
        Insert(
            f"{r:,} recordings",
            "recordings_recording",
            {
                "id": "n",
                "external_id": "'rec-' || n",
                "profile_id": "CASE WHEN purged THEN NULL ELSE profile END",
                # the copies of the profile's and account's facts (recordings/0009),
                # which the database's trigger sets outside a seed (triggers are off here)
                "is_child": "NOT purged AND coalesce("
                "(SELECT pr.is_child FROM accounts_profile pr WHERE pr.id = profile), false)",
                "jurisdiction": "CASE WHEN purged THEN '' ELSE coalesce("
                "(SELECT ac.jurisdiction FROM accounts_profile pr JOIN accounts_account ac"
                " ON ac.id = pr.account_id WHERE pr.id = profile), '') END",
                "recorded_at": "t",
                "created_at": "t + interval '2 seconds'",
                "sensitive": "NOT purged AND sens < 0.01",
                "false_wake": "NOT purged AND wake < 0.01",
                "state": "CASE WHEN purged THEN 'purged' ELSE 'active' END",
                "purged_at": f"CASE WHEN purged THEN {purged_at} END",
                "purge_reason": "CASE WHEN purged THEN 'retention' ELSE '' END",
                "purge_policy": "CASE WHEN purged THEN 'bench-policy-v1' ELSE '' END",
            },
            f"(SELECT n, purged, profile, sens, wake, {when} AS t FROM"
            " (SELECT n, random() < 0.02 AS purged,"
            f" 1 + floor(random() * {p})::bigint AS profile,"
            " random() AS sens, random() AS wake, random() AS x"
            f" FROM generate_series(1, {r}) n OFFSET 0) q) s",
        ),
        Insert(
            f"{len(CATEGORIES)} artefacts per active recording",
            "recordings_artefact",
            {
                "recording_id": "rid",
                "category": "category",
                "storage_key": f"CASE WHEN {audio} THEN 'audio/' || external_id || '.opus'"
                " ELSE '' END",
                "text": f"CASE WHEN {audio} THEN '' ELSE 'transcript of ' || external_id END",
                "size_bytes": f"CASE WHEN {audio} THEN 16000 + (d * 64000)::int ELSE 40 END",
                "created_at": "recorded_at + interval '2 seconds'",
                "state": "'active'",
                "expires_at": expires,
                "expiry_basis": basis,
                "purge_blocked": "false",
                "purge_attempt": "0",
                "purge_started_at": "NULL",
                "purged_at": "NULL",
                "purge_reason": "''",
            },
            "(SELECT r.id AS rid, r.external_id, r.recorded_at, c.category, random() AS d"
            f" FROM recordings_recording r CROSS JOIN unnest(ARRAY[{categories}]) AS c(category)"
            " WHERE r.state = 'active' OFFSET 0) s",
        ),
    ]


def _reset_identities(conn: psycopg.Connection) -> None:
    """Rows seeded with explicit ids: move each identity past them."""
    for table in ("accounts_account", "accounts_profile", "recordings_recording"):
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
        )


# The largest tables: their secondary indexes are built after the load (one sort each,
# instead of a random insert into each per row).
BUILT_AFTER_LOAD = ("recordings_recording", "recordings_artefact")


def _drop_secondary_indexes(conn: psycopg.Connection, table: str) -> list[str]:
    """Drop `table`'s indexes that no foreign key depends on, except its primary key;
    the statements that make them again (unique and exclusion constraints as such)."""
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text, c.conname, pg_get_indexdef(i.indexrelid),"
        " pg_get_constraintdef(c.oid)"
        " FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid"
        " AND c.conrelid = i.indrelid"
        " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f'"
        " AND f.conindid = i.indexrelid)",
        [table],
    ).fetchall()
    again = []
    for index, constraint, index_def, constraint_def in rows:
        if constraint:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
            again.append(f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {constraint_def}')
        else:
            conn.execute(f"DROP INDEX {index}")
            again.append(index_def)
    return again


def seed(db: str, spec: SeedSpec) -> float:
    """Fill `db` (migrated, empty) per `spec`; VACUUM ANALYZE and CHECKPOINT. Seconds taken."""
    started = time.perf_counter()
    with connect(db) as conn:
        # Seed data is consistent by construction: skip the FK triggers (deferred, one
        # queued event per row otherwise) and the WAL flush per statement. Every trigger
        # is off: what the schema's own triggers would write (the recordings' copies of
        # their profile's facts), the inserts below write themselves.
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SELECT setseed(0.42)")
        rebuild = [
            sql for table in BUILT_AFTER_LOAD for sql in _drop_secondary_indexes(conn, table)
        ]
        for insert in seed_inserts(spec):
            step = time.perf_counter()
            rows = conn.execute(insert.sql(conn)).rowcount
            say(f"  {insert.label}: {rows:,} rows, {time.perf_counter() - step:.1f} s")
        step = time.perf_counter()
        for sql in rebuild:
            conn.execute(sql)
        say(f"  {len(rebuild)} indexes built after the load: {time.perf_counter() - step:.1f} s")
        _reset_identities(conn)
        step = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        _all_visible(conn)
        conn.execute("CHECKPOINT")
        say(f"  VACUUM (ANALYZE) + CHECKPOINT: {time.perf_counter() - step:.1f} s")
    return time.perf_counter() - started


def _all_visible(conn: psycopg.Connection, tries: int = 5) -> None:
    """VACUUM again the tables whose pages VACUUM did not mark all-visible.

    VACUUM marks a page all-visible only if no transaction of the database that was
    running when it started could still need an older view of it. An autovacuum
    worker's ANALYZE of a table just loaded can be such a transaction: one seed's
    consent states were left with no page all-visible, and every look-up of them
    through the covering index then also read the table (`Heap Fetches`), which made
    that size's requests dearer than a server in its steady state serves them.
    """
    query = (
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind = 'r' AND c.relpages > 0 AND c.relallvisible < c.relpages"
    )
    for _ in range(tries):
        behind = [name for (name,) in conn.execute(query).fetchall()]
        if not behind:
            return
        time.sleep(1)
        for name in behind:
            conn.execute(f'VACUUM "{name}"')
    say(f"  not all-visible after {tries} VACUUMs: {', '.join(behind)}")


def prepare_database(db: str, spec: SeedSpec, env: dict[str, str], *, keep: bool) -> float | None:
    """A migrated database seeded per `spec`; seconds spent seeding, None if reused."""
    comment = database_comment(db)
    if keep and comment == spec.marker:
        say(f"Reusing database {db} ({spec.marker}); migrating it")
        manage(env, "migrate", "--no-input", "-v", "0")
        return None
    if keep:
        why = "does not exist" if comment is None else f"is not seeded as asked ({comment!r})"
        say(f"--keep-db: database {db} {why}; recreating it")
    say(f"Creating database {db} on {HOST}:{PG_PORT} and migrating it")
    recreate_database(db)
    step = time.perf_counter()
    manage(env, "migrate", "--no-input", "-v", "0")
    say(f"  migrate: {time.perf_counter() - step:.1f} s")
    say(f"Seeding {db} ({spec.marker})")
    seconds = seed(db, spec)
    mark_database(db, spec.marker)
    say(f"Seeding took {seconds:.1f} s")
    return seconds


def create_service_client(env: dict[str, str], db: str, name: str, scopes: Sequence[str]) -> str:
    """A new client's key. On a reused database `name` may exist: then `name-2`, `name-3`..."""
    with connect(db) as conn:
        taken = {row[0] for row in conn.execute("SELECT name FROM clients_serviceclient")}
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name}-{n}"
    out = manage(env, "create_service_client", unique, "--scopes", ",".join(scopes))
    lines = out.strip().splitlines()
    if not lines or " " in lines[-1]:
        raise BenchError(f"create_service_client printed no key on its last line:\n{out}")
    say(f"Service client {unique!r} created with scopes {','.join(scopes)}")
    return lines[-1].strip()


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


class Http:
    """One keep-alive connection to the server under test, with the API key."""

    def __init__(self, port: int, key: str | None = None, timeout: float = 60) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.headers = {"Authorization": f"Api-Key {key}"} if key else {}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: list[int] = field(default_factory=list)

    def worker_rss(self) -> dict[int, int]:
        return {pid: rss_kib(pid) for pid in self.workers}

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_workers(self) -> None:
        """Raise when a worker died or was replaced (a crash or a timeout)."""
        now = child_pids(self.proc.pid)
        if self.proc.poll() is not None or now != self.workers:
            raise BenchError(
                f"gunicorn workers changed ({self.workers} -> {now}):\n{self.log_tail()}"
            )


def _wait_ready(server: Server, workers: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"gunicorn exited ({server.proc.returncode}):\n{server.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            client = Http(server.port, timeout=2)
            try:
                status, _ = client.request("GET", "/healthz")
            finally:
                client.close()
            server.workers = child_pids(server.proc.pid)
            if status == 200 and len(server.workers) == workers:
                return
        time.sleep(0.2)
    raise BenchError(f"/healthz did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def _stop(server: Server) -> None:
    """SIGTERM to the master by its pid, then SIGKILL to what is left of it and its workers."""
    workers = server.workers or child_pids(server.proc.pid)
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def gunicorn(env: dict[str, str], workers: int = 2, timeout: float = 60) -> Iterator[Server]:
    """gunicorn (sync workers, no access log) on a free port of HOST, stopped on exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1])
    command = [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi:application",
        "-w",
        str(workers),
        "-b",
        f"{HOST}:{port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc=proc, port=port, log=log)
    try:
        _wait_ready(server, workers, timeout)
        say(f"gunicorn up on {HOST}:{port}: master {proc.pid}, workers {server.workers}")
        yield server
    finally:
        _stop(server)
        say(f"gunicorn stopped (master {proc.pid}); its log: {log}")


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class RequestMix:
    """GET paths drawn uniformly from `templates`; a `{n}` in a template becomes a random
    integer in [1, id_max], drawn anew for every request."""

    templates: tuple[str, ...]
    id_max: int = 1

    def sample(self, rng: random.Random) -> str:
        template = rng.choice(self.templates)
        if "{n}" not in template:
            return template
        return template.replace("{n}", str(rng.randint(1, self.id_max)))

    def lua(self, key: str) -> str:
        """A wrk script: the API key header, a random path per request, a seed per thread."""
        parts = ",\n  ".join(
            "{" + ", ".join(json.dumps(s) for s in t.split("{n}", 1)) + "}" for t in self.templates
        )
        return f"""-- generated by bench/_common.py
wrk.headers["Authorization"] = {json.dumps("Api-Key " + key)}
local templates = {{
  {parts}
}}
local id_max = {self.id_max}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
  local t = templates[math.random(#templates)]
  if #t == 1 then
    return wrk.format("GET", t[1])
  end
  return wrk.format("GET", t[1] .. math.random(1, id_max) .. t[2])
end
"""


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    output: str = ""

    def line(self) -> str:
        return (
            f"{self.rps:>9,.0f} req/s   p50 {self.p50_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms"
            f"   ({self.requests:,} requests, non-2xx {self.non_2xx},"
            f" socket errors {self.socket_errors})"
        )


def find_wrk() -> str | None:
    """wrk's path; installs it with apt-get (saying so) only when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    attempts = (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"])
    for command in (attempts[0], attempts[1], attempts[0]):
        say(f"wrk is missing: running `{' '.join(command)}`")
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        except OSError as error:
            say(f"  cannot run apt-get: {error}")
            break
        if done.returncode != 0:
            say(f"  `{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        elif command[1] == "install":
            break
    found = shutil.which("wrk")
    if not found:
        say("wrk could not be installed: falling back to the Python load generator")
    return found


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, p50 and p99 (from --latency's distribution), non-2xx and socket errors."""

    def grab(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"cannot read {pattern!r} from wrk's output:\n{output}")
        return match

    done = grab(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    p50 = grab(r"^\s*50(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    p99 = grab(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        tool="wrk",
        requests=int(done[1]),
        seconds=_ms(done[2], done[3]) / 1000,
        rps=float(grab(r"^Requests/sec:\s*([\d.]+)")[1]),
        p50_ms=_ms(p50[1], p50[2]),
        p99_ms=_ms(p99[1], p99[2]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(x) for x in sockets.groups()) if sockets else 0,
        output=output,
    )


def run_wrk(
    wrk: str, port: int, key: str, mix: RequestMix, seconds: float, connections: int, threads: int
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", prefix="bench-", suffix=".lua") as script:
        script.write(mix.lua(key))
        script.flush()
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            f"http://{HOST}:{port}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def _py_connection(
    port: int, key: str, mix: RequestMix, deadline: float, seed: int, out: list
) -> None:
    rng = random.Random(seed)
    client = Http(port, key, timeout=10)
    latencies: list[float] = []
    non_2xx = errors = 0
    while time.monotonic() < deadline:
        path = mix.sample(rng)
        start = time.perf_counter()
        try:
            status, _ = client.request("GET", path)
        except (OSError, http.client.HTTPException):
            errors += 1
            client.close()
            client = Http(port, key, timeout=10)
            continue
        latencies.append((time.perf_counter() - start) * 1000)
        non_2xx += not 200 <= status < 300
    client.close()
    out.append((latencies, non_2xx, errors))


def _py_process(job: tuple[int, str, RequestMix, float, int, int]) -> tuple[list[float], int, int]:
    port, key, mix, seconds, connections, seed = job
    deadline = time.monotonic() + seconds
    out: list[tuple[list[float], int, int]] = []
    threads = [
        threading.Thread(target=_py_connection, args=(port, key, mix, deadline, seed + i, out))
        for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = [x for lat, _, _ in out for x in lat]
    return latencies, sum(n for _, n, _ in out), sum(e for _, _, e in out)


def run_python_load(
    port: int, key: str, mix: RequestMix, seconds: float, connections: int, processes: int
) -> LoadResult:
    """The fallback: `connections` keep-alive connections (threads) over `processes`."""
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    jobs = [(port, key, mix, seconds, n, 1000 * i + int(time.time())) for i, n in enumerate(shares)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.map(_py_process, jobs)
    elapsed = time.perf_counter() - started
    latencies = [x for lat, _, _ in parts for x in lat]
    if not latencies:
        raise BenchError("the Python load generator completed no request")
    return LoadResult(
        tool="python",
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        non_2xx=sum(n for _, n, _ in parts),
        socket_errors=sum(e for _, _, e in parts),
    )


@dataclass(frozen=True)
class LoadGenerator:
    """wrk when it can be had, else the Python load generator; `threads` as wrk's -t."""

    wrk: str | None
    threads: int = 2

    @property
    def name(self) -> str:
        return f"wrk ({self.wrk})" if self.wrk else "python (http.client, processes x threads)"

    def run(
        self, port: int, key: str, mix: RequestMix, seconds: float, connections: int
    ) -> LoadResult:
        if self.wrk:
            return run_wrk(self.wrk, port, key, mix, seconds, connections, self.threads)
        return run_python_load(port, key, mix, seconds, connections, self.threads)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- processes


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of `pids` (those still alive), from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (not idle, not waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    guest = sum(values[8:10])  # already counted in user and nice
    return (sum(values) - idle - guest) / _CLK_TCK


def _started_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except OSError:
        return None


class PostgresCpu:
    """CPU time of the PostgreSQL processes serving database `db`, plus the server's
    writers (checkpointer, background writer, WAL writer), from /proc: polled through
    pg_stat_activity on `conn` (whose own backend is left out). A backend that ends
    between two polls loses what it used since the last one: poll every second or so."""

    WRITERS = ("checkpointer", "background writer", "walwriter")

    def __init__(self, conn: psycopg.Connection, db: str) -> None:
        self.conn, self.db = conn, db
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        self.since_ticks = uptime * _CLK_TCK
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.poll()

    def poll(self) -> None:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND (datname = %s OR backend_type = ANY(%s))",
            [self.db, list(self.WRITERS)],
        ).fetchall()
        for (pid,) in rows:
            started = _started_ticks(pid)
            if started is None:
                continue
            used = cpu_seconds([pid])
            if pid not in self.first:
                self.first[pid] = used if started < self.since_ticks else 0.0
            self.last[pid] = used

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.first)


def stop_process(
    proc: subprocess.Popen[bytes], extra: Sequence[int] = (), wait: float = 30
) -> None:
    """SIGTERM to `proc` by its pid, SIGKILL if it outlives `wait`; then SIGKILL to each of
    `extra` (its children, by pid) that is still there."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in extra:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class RssSampler:
    """VmRSS of a set of processes (asked anew each time from `pids`) every `interval`
    seconds, in a background thread; `samples[pid]` is a list of (monotonic time, KiB)."""

    def __init__(self, pids: Callable[[], Sequence[int]], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: dict[int, list[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        now = time.monotonic()
        for pid in self.pids():
            with contextlib.suppress(OSError, BenchError):
                self.samples.setdefault(pid, []).append((now, rss_kib(pid)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# --------------------------------------------------------------------------- celery


@dataclass
class Worker:
    """A Celery worker a benchmark started: the main process and its pool's children."""

    proc: subprocess.Popen[bytes]
    log: Path
    children: list[int] = field(default_factory=list)

    def pids(self) -> list[int]:
        return [self.proc.pid, *child_pids(self.proc.pid)]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check(self) -> None:
        """Raise when the worker exited or a pool process was replaced (a crash, a kill,
        a time limit)."""
        now = child_pids(self.proc.pid)
        if self.proc.poll() is not None or now != self.children:
            raise BenchError(
                f"celery worker changed ({self.children} -> {now}):\n{self.log_tail()}"
            )


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str],
    queues: Sequence[str],
    log: Path,
    *,
    concurrency: int = 2,
    timeout: float = 60,
) -> Iterator[Worker]:
    """`celery -A config worker` (prefork, `concurrency` processes) consuming `queues`,
    ready when it says so in its log; stopped on exit (SIGTERM, then SIGKILL by pid)."""
    command = [str(PYTHON), "-m", "celery", "-A", "config", "worker", "-Q", ",".join(queues)]
    command += ["--concurrency", str(concurrency), "-n", f"bench-{os.getpid()}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    worker = Worker(proc=proc, log=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise BenchError(f"celery worker exited ({proc.returncode}):\n{worker.log_tail()}")
            worker.children = child_pids(proc.pid)
            if " ready." in log.read_text(errors="replace") and len(worker.children) == concurrency:
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"celery worker not ready in {timeout:.0f} s:\n{worker.log_tail()}"
                )
            time.sleep(0.2)
        say(f"celery worker up: main {proc.pid}, pool {worker.children}, queues {list(queues)}")
        yield worker
    finally:
        children = worker.children or child_pids(proc.pid)
        stop_process(proc, children)
        say(f"celery worker stopped (main {proc.pid}); its log: {log}")


@contextlib.contextmanager
def celery_beat(env: dict[str, str], workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`celery -A config beat` with the project's schedule (a fresh schedule file in
    `workdir`, so every entry first fires one period after the start); stopped on exit."""
    schedule = workdir / "celerybeat-schedule"
    for stale in workdir.glob("celerybeat*"):
        stale.unlink()
    command = [str(PYTHON), "-m", "celery", "-A", "config", "beat", "-l", "info"]
    command += ["-s", str(schedule), "--pidfile", str(workdir / "celerybeat.pid")]
    log = workdir / "beat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(1)
        if proc.poll() is not None:
            raise BenchError(f"celery beat exited ({proc.returncode}): {log.read_text()[-2000:]}")
        say(f"celery beat up: pid {proc.pid}; its log: {log}")
        yield proc
    finally:
        stop_process(proc, wait=10)
        say(f"celery beat stopped (pid {proc.pid})")


class TaskSender:
    """Sends tasks by name to a Redis broker, as a producer that is not the app."""

    def __init__(self, broker: str) -> None:
        from celery import Celery  # only the benchmarks that drive workers need it

        self.app = Celery("bench-producer", broker=broker)

    def send(self, name: str, queue: str, args: Sequence[object] = ()) -> None:
        self.app.send_task(name, args=list(args), queue=queue)

    def close(self) -> None:
        self.app.close()


def clear_queues(broker: str, queues: Sequence[str], *, bindings: bool = False) -> int:
    """Drop the messages waiting in `queues` (kombu's Redis lists, every priority) of
    the Redis database `broker` names; how many there were. With `bindings`, also
    kombu's routing entries for them (for a queue of one run that is gone now)."""
    import redis  # only the benchmarks that drive workers need it

    client = redis.Redis.from_url(broker)
    try:
        keys = [
            q + suffix for q in queues for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")
        ]
        dropped = sum(client.llen(k) for k in keys)
        if bindings:
            keys += [f"_kombu.binding{kind}.{q}" for q in queues for kind in ("", "_permanent")]
        client.delete(*keys)
    finally:
        client.close()
    return dropped


# --------------------------------------------------------------------------- profiling


def start_py_spy(
    pid: int, seconds: float, out: Path, *, idle: bool = False
) -> subprocess.Popen[bytes] | None:
    """py-spy recording `pid` (raw collapsed stacks) in the background; None without py-spy.
    `idle` also samples a thread blocked in a system call (e.g. waiting for PostgreSQL's
    answer), which py-spy leaves out by default."""
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        say("py-spy is not installed in .venv (`.venv/bin/pip install py-spy`): no profile")
        return None
    command = [str(spy), "record", "--nonblocking", "-r", "200", "-d", str(max(1, int(seconds)))]
    command += ["-p", str(pid), "-o", str(out), "--format", "raw"]
    command += ["--idle"] if idle else []
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarise_py_spy(raw: Path, top: int = 25, keep_lines: str | None = None) -> str:
    """Inclusive and self share of samples per function, from py-spy's raw output. Frames
    whose file path contains `keep_lines` keep their line numbers (which statement)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [
            f if keep_lines and keep_lines in f else re.sub(r":\d+\)$", ")", f)
            for f in stack.split(";")
        ]
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        own[frames[-1]] += int(count)
    if not total:
        return "  (no samples)"
    lines = [f"  {total:,} samples; inclusive share (top {top}):"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines.append(f"  self share (top {top}):")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Goal:
    name: str
    figure: str
    passed: bool


def print_summary(title: str, figures: Sequence[tuple[str, str]], goals: Sequence[Goal]) -> None:
    width = max(len(k) for k, _ in figures) if figures else 0
    say()
    say("=" * 78)
    say(f"SUMMARY: {title}")
    say("-" * 78)
    for name, value in figures:
        say(f"  {name:<{width}}  {value}")
    say("-" * 78)
    for goal in goals:
        say(f"  [{'PASS' if goal.passed else 'FAIL'}] {goal.name}: {goal.figure}")
    say("=" * 78)


def fail(message: str) -> None:
    """Loudly, to stderr, as the run is about to exit non-zero."""
    print(f"\nBENCHMARK BROKEN: {message}", file=sys.stderr, flush=True)
