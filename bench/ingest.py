"""Ingest: POST /api/v1/recordings/batch against raw SQL, and the single POST
/api/v1/recordings before and after it shared the batch's write.

.venv/bin/python bench/ingest.py [--clients 4] [--batches 5] [--single-seconds 15]
    [--profiles 2000] [--base-ref f08203d] [--base-tree /tmp/ingest-base] [--keep-data]

- Seeds two databases (dropped first): `earshot_bench_ingest`, migrated by this
  checkout, and `earshot_bench_ingest_base`, migrated by a checkout of `--base-ref`
  (a git worktree at `--base-tree`, created when missing, with this .venv linked in):
  accounts over the usual jurisdictions, `--profiles` profiles (a tenth `dont_save`),
  two applied policies (`*`, audio and transcript, 365 days).
- **batch**: `--clients` processes, each sending `--batches` batches of 1,000 items
  (transcript and a 300-byte WAV already stored under ingest/, with its size) to
  gunicorn (2 sync workers) over HTTP; every item must answer `created`. The
  baseline, in the same run and database, inserts the same rows (recording, audio
  artefact, transcript artefact) through psycopg from as many processes, one multi-row
  INSERT per table per 1,000 recordings and one transaction each. Goal: the batch
  endpoint >= 25% of the baseline's recordings/s.
- **single**: `--clients` processes, one keep-alive connection each, POST
  /api/v1/recordings (JSON with transcript and flags) for `--single-seconds` against
  gunicorn (1 sync worker) serving first the base checkout, then this one. Recordings
  per CPU-second of the gunicorn worker and of the PostgreSQL backends serving it
  ("per core"). Goal: this checkout >= 3x the base's recordings per core.

Traffic goes to 127.0.0.1 only; every process started is stopped by its pid.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    HOST,
    REPO,
    BenchError,
    Goal,
    Insert,
    PostgresCpu,
    Server,
    _stop,
    _wait_ready,
    app_env,
    connect,
    cpu_seconds,
    fail,
    free_port,
    heading,
    print_summary,
    recreate_database,
    say,
)

BATCH = 1_000
CLIP = b"RIFF" + (292).to_bytes(4, "little") + b"WAVEfmt " + bytes(288)
RECORDED_AT = datetime(2026, 11, 1, 12, tzinfo=UTC)
OUT = REPO / "bench" / "out" / "ingest"


# --------------------------------------------------------------------------- setup


def run_in(tree: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(
            f"manage.py {' '.join(args)} in {tree} failed:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def base_tree(path: Path, ref: str) -> Path:
    """The files of `ref` at `path` (`git archive`, so that no worktree is added to the
    repository's list), with this .venv; its commit in `path`/.bench-ref."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{ref}^{{commit}}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    marker = path / ".bench-ref"
    if not (path / "manage.py").exists() or not marker.exists() or marker.read_text() != commit:
        say(f"git archive {commit} -> {path}")
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit], cwd=REPO, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, check=True)
        marker.write_text(commit)
    head = marker.read_text()
    venv = path / ".venv"
    if not venv.exists():
        venv.symlink_to((REPO / ".venv").resolve())
    say(f"base checkout: {path} at {head}")
    return path


def env_for(db: str, media: Path, broker: str = "redis://127.0.0.1:6379/15") -> dict[str, str]:
    env = app_env(db)
    env.update(
        MEDIA_ROOT=str(media),
        API_THROTTLE_CLIENT="100000000/min",  # measure the ingest, not the throttle
        CELERY_BROKER_URL=broker,
    )
    return env


def seed(db: str, profiles: int) -> None:
    accounts = max(1, profiles * 4 // 5)
    with connect(db) as conn:
        for insert in (
            Insert(
                "accounts",
                "accounts_account",
                {
                    "id": "i",
                    "external_id": "'acct-' || i",
                    "jurisdiction": "(ARRAY['US','DE','GB','FR','IE'])[1 + i % 5]",
                    "created_at": "now()",
                },
                f"generate_series(1, {accounts}) i",
            ),
            Insert(
                "profiles",
                "accounts_profile",
                {
                    "id": "i",
                    "external_id": "'prof-' || i",
                    "account_id": f"1 + i % {accounts}",
                    "is_child": "i % 20 = 0",
                    "retention_choice": "CASE WHEN i % 10 = 0 THEN 'dont_save' END",
                    "display_name": "''",
                    "created_at": "now()",
                },
                f"generate_series(1, {profiles}) i",
            ),
            Insert(
                "policies",
                "retention_retentionpolicy",
                {
                    "jurisdiction": "'*'",
                    "category": "c",
                    "applies_to": "'all'",
                    "retention_days": "365",
                    "version": "1",
                    "effective_from": "now() - interval '1 day'",
                    "applied_at": "now()",
                    "created_at": "now()",
                    "created_by": "'bench'",
                },
                "unnest(ARRAY['audio', 'transcript']) c",
            ),
        ):
            conn.execute(insert.sql(conn))
        for table in ("accounts_account", "accounts_profile"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) + 1 FROM {table}), false)"
            )
        conn.execute("VACUUM (ANALYZE)")


def prepare(db: str, tree: Path, env: dict[str, str], profiles: int) -> str:
    """Database `db` migrated by `tree`'s code and seeded; a service client's key."""
    recreate_database(db)
    run_in(tree, env, "migrate", "--no-input", "-v", "0")
    seed(db, profiles)
    out = run_in(tree, env, "create_service_client", "bench-ingest", "--scopes", "recordings:write")
    return out.strip().splitlines()[-1].strip()


@contextlib.contextmanager
def serve(tree: Path, env: dict[str, str], workers: int) -> Iterator[Server]:
    """gunicorn on 127.0.0.1 serving `tree`'s code; stopped (by pid) on exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="bench-ingest-gunicorn-", suffix=".log")[1])
    command = [str(tree / ".venv" / "bin" / "gunicorn"), "config.wsgi:application"]
    command += ["-w", str(workers), "-b", f"{HOST}:{port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc=proc, port=port, log=log)
    try:
        _wait_ready(server, workers, 60)
        say(f"gunicorn ({tree.name}) up on {HOST}:{port}: workers {server.workers}")
        yield server
    finally:
        _stop(server)


# --------------------------------------------------------------------------- the batch


def _items(client: int, batch: int, media: Path) -> list[dict]:
    items = []
    for i in range(BATCH):
        n = (client * 1000 + batch) * BATCH + i
        key = f"ingest/c{client}/b{batch}/{i}.wav"
        items.append(
            {
                "external_id": f"b-{n}",
                "profile": f"prof-{1 + n % 2000}",
                "recorded_at": (RECORDED_AT + timedelta(seconds=n)).isoformat(),
                "transcript": f"turn on the lights in room {n}",
                "audio_key": key,
                "audio_size": len(CLIP),
            }
        )
    return items


def write_files(media: Path, clients: int, batches: int) -> None:
    for c in range(clients):
        for b in range(batches):
            directory = media / "ingest" / f"c{c}" / f"b{b}"
            directory.mkdir(parents=True, exist_ok=True)
            for i in range(BATCH):
                (directory / f"{i}.wav").write_bytes(CLIP)


def _http_client(job: tuple[int, str, int, int, str]) -> tuple[int, float, list[float]]:
    port, key, client, batches, media = job
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    created, latencies = 0, []
    bodies = [
        json.dumps({"recordings": _items(client, b, Path(media))}).encode() for b in range(batches)
    ]
    started = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        conn.request("POST", "/api/v1/recordings/batch", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        latencies.append(time.perf_counter() - t)
        if response.status != 200:
            raise BenchError(f"batch answered {response.status}: {data[:500]!r}")
        results = json.loads(data)["results"]
        bad = [r for r in results if r["status"] != "created"]
        if bad:
            raise BenchError(f"{len(bad)} items not created, e.g. {bad[:3]}")
        created += len(results)
    conn.close()
    return created, time.perf_counter() - started, latencies


def _sql_client(job: tuple[str, int, int]) -> tuple[int, float]:
    db, client, batches = job
    rows_per_batch = [_items(client + 100, b, Path()) for b in range(batches)]
    created = 0
    with connect(db) as conn:
        profiles = dict(conn.execute("SELECT external_id, id FROM accounts_profile").fetchall())
        started = time.perf_counter()
        for items in rows_per_batch:
            now = datetime.now(UTC)
            with conn.transaction():
                recs = [
                    (
                        it["external_id"],
                        profiles[it["profile"]],
                        it["recorded_at"],
                        False,
                        False,
                        "active",
                        now,
                        "",
                        "",
                    )
                    for it in items
                ]
                one = "(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                cur = conn.execute(
                    "INSERT INTO recordings_recording (external_id, profile_id, recorded_at,"
                    " sensitive, false_wake, state, created_at, purge_reason, purge_policy)"
                    f" VALUES {', '.join([one] * len(recs))} RETURNING id, external_id",
                    [v for r in recs for v in r],
                )
                ids = dict((e, i) for i, e in cur.fetchall())
                columns = (
                    "recording_id, category, storage_key, text, size_bytes, created_at, state,"
                    " expires_at, expiry_basis, purge_blocked, purge_attempt, purge_reason"
                )
                one = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                expires = RECORDED_AT + timedelta(days=365)
                audio = [
                    (ids[it["external_id"]], "audio", it["audio_key"].replace("ingest/", "sql/"),
                     "", len(CLIP), now, "active", expires, "policy:1", False, 0, "")
                    for it in items
                ]  # fmt: skip
                text = [
                    (ids[it["external_id"]], "transcript", "", it["transcript"],
                     len(it["transcript"]), now, "active", expires, "policy:2", False, 0, "")
                    for it in items
                ]  # fmt: skip
                for rows in (audio, text):
                    conn.execute(
                        f"INSERT INTO recordings_artefact ({columns})"
                        f" VALUES {', '.join([one] * len(rows))}",
                        [v for r in rows for v in r],
                    )
            created += len(items)
        return created, time.perf_counter() - started


def run_pool(function, jobs):
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        started = time.perf_counter()
        out = pool.map(function, jobs)
        return out, time.perf_counter() - started


# --------------------------------------------------------------------------- the single POST


def _single_client(job: tuple[int, str, int, float]) -> tuple[int, int]:
    port, key, client, seconds = job
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    done = errors = 0
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        body = json.dumps(
            {
                "external_id": f"s-{client}-{n}",
                "profile": f"prof-{1 + (client * 7919 + n) % 2000}",
                "recorded_at": (RECORDED_AT + timedelta(seconds=n)).isoformat(),
                "transcript": f"what is the weather {n}",
                "flags": ["false_wake"] if n % 50 == 0 else [],
            }
        ).encode()
        conn.request("POST", "/api/v1/recordings", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status == 201:
            done += 1
        else:
            errors += 1
            if errors == 1:
                print(f"single POST answered {response.status}: {data[:300]!r}", flush=True)
    conn.close()
    return done, errors


def single_rate(
    tree: Path, env: dict[str, str], db: str, key: str, clients: int, seconds: float, run: int = 0
) -> dict[str, float]:
    with serve(tree, env, workers=1) as server, connect("postgres") as pg:
        warm = [(server.port, key, 1000 * run + 90 + c, 2.0) for c in range(clients)]
        run_pool(_single_client, warm)
        pg_cpu = PostgresCpu(pg, db)
        app_before = cpu_seconds(server.workers)
        jobs = [(server.port, key, 1000 * run + c, seconds) for c in range(clients)]
        with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
            started = time.perf_counter()
            pending = pool.map_async(_single_client, jobs)
            while not pending.ready():
                pg_cpu.poll()
                pending.wait(0.5)
            out = pending.get()
            elapsed = time.perf_counter() - started
        pg_cpu.poll()
        app = cpu_seconds(server.workers) - app_before
        server.check_workers()
    done = sum(d for d, _ in out)
    errors = sum(e for _, e in out)
    if errors:
        raise BenchError(f"{errors} single POSTs failed against {tree}")
    return {
        "recordings": done,
        "seconds": elapsed,
        "rate": done / elapsed,
        "app_cpu": app,
        "pg_cpu": pg_cpu.seconds,
        "per_app_core": done / app if app else 0.0,
        "per_core": done / (app + pg_cpu.seconds) if app + pg_cpu.seconds else 0.0,
    }


def summed(runs: list[dict[str, float]]) -> dict[str, float]:
    """Several rounds as one: their recordings over their seconds and CPU."""
    n = sum(r["recordings"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    app = sum(r["app_cpu"] for r in runs)
    pg = sum(r["pg_cpu"] for r in runs)
    return {
        "recordings": n,
        "seconds": seconds,
        "rate": n / seconds,
        "app_cpu": app,
        "pg_cpu": pg,
        "per_app_core": n / app if app else 0.0,
        "per_core": n / (app + pg) if app + pg else 0.0,
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000 per client")
    parser.add_argument("--single-seconds", type=float, default=15)
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--base-ref", default="f08203d")
    parser.add_argument(
        "--base-tree", type=Path, default=Path(tempfile.gettempdir()) / "ingest-base"
    )
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument(
        "--db", default="earshot_bench_ingest", help="its database; the base's is <db>_base"
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--rounds", type=int, default=1, help="single-POST rounds, base and this alternating"
    )
    parser.add_argument("--skip-batch", action="store_true", help="measure the single POST only")
    args = parser.parse_args()
    if args.profiles < 2000:
        parser.error("--profiles: at least 2000 (the items name prof-1..prof-2000)")

    say(f"load average: {os.getloadavg()}")
    media = OUT / "media"
    shutil.rmtree(OUT, ignore_errors=True)
    media.mkdir(parents=True)
    db, db_base = args.db, f"{args.db}_base"
    env, env_base = env_for(db, media, args.broker), env_for(db_base, media, args.broker)
    base = base_tree(args.base_tree, args.base_ref)
    try:
        heading("Seeding")
        key = prepare(db, REPO, env, args.profiles)
        key_base = prepare(db_base, base, env_base, args.profiles)
        write_files(media, args.clients, args.batches)
        say(f"  {args.clients * args.batches * BATCH:,} audio objects under {media}/ingest")

        sql_n = sql_s = http_n = http_s = p50 = 0.0
        if not args.skip_batch:
            heading(f"Batch: {args.clients} clients x {args.batches} x 1,000 recordings")
            sql_out, sql_s = run_pool(
                _sql_client, [(db, c, args.batches) for c in range(args.clients)]
            )
            sql_n = sum(n for n, _ in sql_out)
            say(
                f"  raw SQL baseline: {sql_n:,} recordings in {sql_s:.2f} s"
                f" = {sql_n / sql_s:,.0f}/s"
            )
            with serve(REPO, env, workers=2) as server:
                http_out, http_s = run_pool(
                    _http_client,
                    [(server.port, key, c, args.batches, str(media)) for c in range(args.clients)],
                )
                server.check_workers()
            http_n = sum(n for n, _, _ in http_out)
            latencies = sorted(x for _, _, lat in http_out for x in lat)
            p50 = latencies[len(latencies) // 2] * 1000
            say(
                f"  POST /recordings/batch: {http_n:,} recordings in {http_s:.2f} s"
                f" = {http_n / http_s:,.0f}/s; a batch p50 {p50:.0f} ms"
            )
            with connect(db) as conn:
                counts = conn.execute(
                    "SELECT count(*), (SELECT count(*) FROM recordings_artefact)"
                    " FROM recordings_recording"
                ).fetchone()
                ledger = conn.execute(
                    "SELECT count(*), coalesce(sum((payload->>'count')::int), 0)"
                    " FROM ledger_ledgerentry WHERE kind = 'recordings.registered'"
                ).fetchone()
            if counts != (sql_n + http_n, 2 * (sql_n + http_n)) or ledger[1] != http_n:
                raise BenchError(f"rows {counts}, ledger {ledger}: not what was sent")
            say(f"  checked: {counts[0]:,} recordings, {counts[1]:,} artefacts, ledger {ledger}")

        heading(f"Single POST /recordings: {args.clients} clients, 1 gunicorn worker")
        base_runs, this_runs = [], []
        for run in range(args.rounds):
            base_runs.append(
                single_rate(
                    base, env_base, db_base, key_base, args.clients, args.single_seconds, run
                )
            )
            this_runs.append(
                single_rate(REPO, env, db, key, args.clients, args.single_seconds, run)
            )
            say(
                f"  round {run + 1}: base {base_runs[-1]['per_core']:.0f}/s per core,"
                f" this {this_runs[-1]['per_core']:.0f}/s per core"
                f" ({this_runs[-1]['per_core'] / base_runs[-1]['per_core']:.2f}x)"
            )
        before, after = summed(base_runs), summed(this_runs)
        for name, r in (("base", before), ("this", after)):
            say(
                f"  {name}: {r['recordings']:,} in {r['seconds']:.1f} s = {r['rate']:.0f}/s;"
                f" CPU app {r['app_cpu']:.1f} s + PostgreSQL {r['pg_cpu']:.1f} s;"
                f" {r['per_app_core']:.0f}/s per app core, {r['per_core']:.0f}/s per core"
            )
    finally:
        if not args.keep_data:
            shutil.rmtree(OUT, ignore_errors=True)
            with connect("postgres") as conn:
                for name in (db, db_base):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    batch_ratio = (http_n / http_s) / (sql_n / sql_s) if sql_n and http_n else 0.0
    single_ratio = after["per_core"] / before["per_core"]
    print_summary(
        "ingest",
        [
            ("load average", " ".join(f"{x:.2f}" for x in os.getloadavg())),
            ("raw SQL baseline", f"{sql_n / sql_s:,.0f} recordings/s" if sql_s else "skipped"),
            (
                "POST /recordings/batch",
                f"{http_n / http_s:,.0f} recordings/s, p50 {p50:.0f} ms" if http_s else "skipped",
            ),
            ("single POST, base", f"{before['rate']:.0f}/s, {before['per_core']:.0f}/s per core"),
            ("single POST, this", f"{after['rate']:.0f}/s, {after['per_core']:.0f}/s per core"),
            (
                "single POST per app core",
                f"base {before['per_app_core']:.0f}/s, this {after['per_app_core']:.0f}/s",
            ),
        ],
        [
            *(
                []
                if args.skip_batch
                else [
                    Goal(
                        "batch >= 25% of the raw SQL baseline",
                        f"{batch_ratio:.0%}",
                        batch_ratio >= 0.25,
                    )
                ]
            ),
            Goal("single POST >= 3x per core", f"{single_ratio:.2f}x", single_ratio >= 3),
        ],
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        fail(str(error))
        sys.exit(1)
