"""Purge benchmark: how fast Earshot deletes what has expired, against a plain delete.

    .venv/bin/python bench/purge.py [--recordings 1000000] [--expire 0.4] [--keep-data]
        [--deletion-recordings 10000] [--ingest-rate 200] [--ingest-seconds 180]
        [--profile /tmp/purge.raw]

What it does, on this machine only (127.0.0.1, Redis database 14):
1. Seeds `earshot_bench_purge` (dropped, migrated, set-based SQL): two retention policies
   (`*`, audio and transcript, 365 days, applied), accounts and profiles, --recordings
   recordings each with an `audio` artefact (a real 300-byte WAV file under
   bench/out/purge/media_ours/audio/bench/<shard>/<id>.wav, 10,000 a directory) and a
   `transcript` artefact (text). --expire of them (evenly spread over the ids) were
   recorded more than 365 days ago: both artefacts have `expires_at` in the past, as the
   policy engine would have set it (`policy:1`, `policy:2`). Also a profile with
   --deletion-recordings recordings (not expired) for the deletion request, and 100
   profiles whose retention choice is `dont_save` for the ingest. Then an identical copy
   for the baseline: `CREATE DATABASE earshot_bench_purge_base TEMPLATE ...` and the
   files written a second time into media_base/ (not hard links).
2. Baseline, on the copy: batched `DELETE ... WHERE id IN (SELECT id ... WHERE
   expires_at <= now() LIMIT 10000) RETURNING storage_key` through psycopg, every
   returned file unlinked, then the emptied recordings deleted the same way (keyset on
   id). Nothing else: no ledger, no tombstones, no locks, no holds.
3. Ours, on the original: a real Celery worker (prefork, 2 processes, the project's
   settings) is sent `retention.purge_expired` twice, so that both processes purge (a
   task that runs out of its 50 s budget enqueues its successor on the default queue,
   which the worker also consumes). Timed until nothing is due or being purged (end:
   the last `purge.batch` ledger entry). Then checked: every expired recording and
   artefact tombstoned, nothing else touched, every expired file gone and every other
   one present, the ledger verifies (`manage.py verify_ledger`) and its `purge.batch`
   entries count every purged artefact and recording. The worker's processes' VmRSS is
   sampled every 0.5 s throughout; CPU time of the worker vs. the whole machine.
   `manage.py purge_expired` (the command) runs the same `purge_expired` in one
   process: only the worker is measured here.
4. A deletion request for the profile with --deletion-recordings recordings, created
   with `deletion_request_create` (manage.py shell) and also sent to the worker as
   `retention.run_deletion_request`: time from its creation to `done` (database clock).
5. Purge lag under ingest: `celery beat` with the project's schedule (purge every 30 s)
   and --ingest-rate recordings a second for --ingest-seconds through
   `compliance.actions.ingest.recording_create` (audio file and transcript), in
   --ingest-processes processes, for the `dont_save` profiles (expired at ingest); or,
   with --ingest-batch N, through `POST /api/v1/recordings/batch` (gunicorn, 2 workers),
   N items a request, the bodies built before the start and sent on kept-alive
   connections. Lag per artefact: from `expires_at` to the commit of the batch that
   purged it (its ledger entry); `purged_at`, stamped when the batch claimed it, is shown
   too. The rate reached is the registrations committed over the offered window (or
   until the last answer came, if later); the offered rate is what the clients sent.
   CPU by role over the run (clients, web, worker, beat, and the PostgreSQL backends of
   each, told apart by PGAPPNAME), in cores and per recording.

Goals: purge throughput (ledger and tombstones included) >= 50% of the baseline's
recordings/s; purge lag (max) < 2 minutes while ingesting 200 recordings/s; a deletion
request of 10,000 recordings done < 60 s; the worker's resident memory flat while it
purges (growth <= 10% from the end of its first tenth of the purge to its peak). Exit
code 0 when goals fail, 1 when something broke (a process died, a check failed).
Figures share 2 cores between PostgreSQL, the worker and the benchmark: compare ratios
within one run. The script waits while bench/eligibility.py or bench/sampling.py runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from _common import (
    HOST,
    PYTHON,
    REPO,
    BenchError,
    Goal,
    Insert,
    PostgresCpu,
    RssSampler,
    Server,
    TaskSender,
    Worker,
    app_env,
    celery_beat,
    celery_worker,
    clear_queues,
    connect,
    cpu_seconds,
    create_service_client,
    fail,
    gunicorn,
    heading,
    machine_busy_seconds,
    manage,
    mark_database,
    percentile,
    print_summary,
    recreate_database,
    say,
    start_py_spy,
    stop_process,
)

DB = "earshot_bench_purge"
BASE_DB = "earshot_bench_purge_base"
OUT = REPO / "bench" / "out" / "purge"
MEDIA_OURS = OUT / "media_ours"
MEDIA_BASE = OUT / "media_base"
BROKER = f"redis://{HOST}:6379/14"
DEFAULT_QUEUE = "celery"  # where a purge task that ran out of budget enqueues its successor
SHARD = 10_000  # files a directory
RETENTION_DAYS = 365
BATCH = 10_000  # the baseline's batch
LAG_PROFILES = 100
OTHER_BENCHMARKS = ("bench/eligibility.py", "bench/sampling.py")
GOAL_RATIO, GOAL_LAG_S, GOAL_DELETION_S, GOAL_RSS_GROWTH = 0.50, 120.0, 60.0, 0.10
TRANSCRIPT = "turn on the kitchen lights and set a timer for twelve minutes please"


def wav(samples: int = 128) -> bytes:
    """A tiny valid WAV file: 16-bit mono 8 kHz silence."""
    data = bytes(2 * samples)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + fmt
        + b"data"
        + (struct.pack("<I", len(data)) + data)
    )


AUDIO = wav()


def audio_key(n: int) -> str:
    return f"audio/bench/{n // SHARD:04d}/{n}.wav"


# --------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Plan:
    """Recordings 1..recordings (every expire_permille-th per mille expired, spread by
    `n*k/1000 > (n-1)*k/1000`), then `deletion` recordings of the deletion profile."""

    recordings: int
    expire_permille: int
    deletion: int
    profiles: int
    accounts: int

    @property
    def expired(self) -> int:
        return self.recordings * self.expire_permille // 1000

    @property
    def total(self) -> int:
        return self.recordings + self.deletion

    @property
    def deletion_profile(self) -> int:
        return self.profiles + 1

    def is_expired(self, n: int) -> bool:
        k = self.expire_permille
        return n <= self.recordings and n * k // 1000 > (n - 1) * k // 1000

    def expired_sql(self, col: str) -> str:
        k = self.expire_permille
        spread = f"{col}::bigint * {k} / 1000 > ({col} - 1) * {k} / 1000"
        return f"({col} <= {self.recordings} AND {spread})"

    @property
    def marker(self) -> str:
        return (
            f"earshot bench purge seed v1: recordings={self.recordings}"
            f" expire={self.expire_permille}/1000 deletion={self.deletion}"
        )


def seed_inserts(plan: Plan) -> list[Insert]:
    n_rec, p, a = plan.recordings, plan.profiles, plan.accounts
    audio = "category = 'audio'"
    text = f"'transcript of ' || external_id || ': {TRANSCRIPT}'"
    long_ago = "now() - interval '1000 days'"
    return [
        Insert(
            "2 retention policies (*, audio / transcript, 365 days, applied)",
            "retention_retentionpolicy",
            {
                "id": "id",
                "jurisdiction": "'*'",
                "category": "c",
                "applies_to": "'all'",
                "retention_days": str(RETENTION_DAYS),
                "version": "1",
                "effective_from": long_ago,
                "retired_at": "NULL",
                "applied_at": long_ago,
                "created_at": long_ago,
                "created_by": "'bench'",
            },
            "(VALUES (1, 'audio'), (2, 'transcript')) v(id, c)",
        ),
        Insert(
            f"{a:,} accounts",
            "accounts_account",
            {
                "id": "n",
                "external_id": "'acc-' || n",
                "jurisdiction": "CASE WHEN n % 2 = 0 THEN 'DE' ELSE 'US' END",
                "created_at": long_ago,
                "user_id": "NULL",
            },
            f"generate_series(1, {a}) n",
        ),
        Insert(
            f"{p:,} profiles + 1 for the deletion request + {LAG_PROFILES} dont_save",
            "accounts_profile",
            {
                "id": "n",
                "external_id": f"CASE WHEN n <= {p} THEN 'prof-' || n"
                f" WHEN n = {p + 1} THEN 'prof-deletion' ELSE 'prof-lag-' || (n - {p + 2}) END",
                "account_id": f"1 + (n - 1) % {a}",
                "is_child": "false",
                "display_name": "''",
                "retention_choice": f"CASE WHEN n > {p + 1} THEN 'dont_save' END",
                "created_at": long_ago,
            },
            f"generate_series(1, {p + 1 + LAG_PROFILES}) n",
        ),
        Insert(
            f"{n_rec:,} recordings ({plan.expired:,} expired)"
            f" + {plan.deletion:,} of the deletion profile",
            "recordings_recording",
            {
                "id": "n",
                "external_id": f"CASE WHEN n <= {n_rec} THEN 'rec-' || n"
                f" ELSE 'del-' || (n - {n_rec}) END",
                "profile_id": f"CASE WHEN n > {n_rec} THEN {plan.deletion_profile}"
                f" ELSE 1 + floor(random() * {p})::bigint END",
                "recorded_at": "t",
                "created_at": "t + interval '2 seconds'",
                "sensitive": "false",
                "false_wake": "false",
                "state": "'active'",
                "purged_at": "NULL",
                "purge_reason": "''",
                "purge_policy": "''",
            },
            "(SELECT n, CASE WHEN expired"
            f" THEN now() - interval '{RETENTION_DAYS + 1} days' - x * interval '300 days'"
            f" ELSE now() - interval '1 day' - x * interval '{RETENTION_DAYS - 5} days' END AS t"
            f" FROM (SELECT n, {plan.expired_sql('n')} AS expired, random() AS x"
            f" FROM generate_series(1::bigint, {plan.total}) n OFFSET 0) q) s",
        ),
        Insert(
            "an audio and a transcript artefact per recording",
            "recordings_artefact",
            {
                "recording_id": "rid",
                "category": "category",
                "storage_key": f"CASE WHEN {audio} THEN 'audio/bench/'"
                f" || lpad((rid / {SHARD})::text, 4, '0') || '/' || rid || '.wav' ELSE '' END",
                "text": f"CASE WHEN {audio} THEN '' ELSE {text} END",
                "size_bytes": f"CASE WHEN {audio} THEN {len(AUDIO)} ELSE octet_length({text}) END",
                "created_at": "recorded_at + interval '2 seconds'",
                "state": "'active'",
                "expires_at": f"recorded_at + interval '{RETENTION_DAYS} days'",
                "expiry_basis": f"CASE WHEN {audio} THEN 'policy:1' ELSE 'policy:2' END",
                "purge_blocked": "false",
                "purge_attempt": "0",
                "purge_started_at": "NULL",
                "purged_at": "NULL",
                "purge_reason": "''",
            },
            "(SELECT r.id AS rid, r.external_id, r.recorded_at, c.category"
            " FROM recordings_recording r"
            " CROSS JOIN unnest(ARRAY['audio', 'transcript']) AS c(category)"
            " ORDER BY r.id, c.category) s",
        ),
    ]


def seed_database(plan: Plan) -> float:
    started = time.perf_counter()
    with connect(DB) as conn:
        conn.execute("SET session_replication_role = replica")  # consistent by construction
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.42)")
        for insert in seed_inserts(plan):
            step = time.perf_counter()
            rows = conn.execute(insert.sql(conn)).rowcount
            say(f"  {insert.label}: {rows:,} rows, {time.perf_counter() - step:.1f} s")
        for table in (
            "retention_retentionpolicy",
            "accounts_account",
            "accounts_profile",
            "recordings_recording",
        ):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        step = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        say(f"  VACUUM (ANALYZE) + CHECKPOINT: {time.perf_counter() - step:.1f} s")
    return time.perf_counter() - started


def write_files(job: tuple[str, int]) -> float:
    """Every recording's audio file under `root` (os.open/os.write); seconds taken."""
    root, total = job
    started = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    prefix, shard = "", -1
    for n in range(1, total + 1):
        if n // SHARD != shard:
            shard = n // SHARD
            directory = Path(root, audio_key(n)).parent
            directory.mkdir(parents=True, exist_ok=True)
            prefix = f"{directory}/"
        fd = os.open(f"{prefix}{n}.wav", flags, 0o644)
        try:
            os.write(fd, AUDIO)
        finally:
            os.close(fd)
    return time.perf_counter() - started


def check_disk(plan: Plan, ingest: int) -> None:
    """Refuse politely when the files and both databases would not fit."""
    OUT.mkdir(parents=True, exist_ok=True)
    files = 2 * plan.total + ingest
    need = files * 4096 + 2 * plan.total * 1200 + 2 * 1024**3
    free = shutil.disk_usage(OUT).free
    inodes = os.statvfs(OUT).f_favail
    say(
        f"Disk: {free / 1024**3:.1f} GiB and {inodes:,} inodes free;"
        f" this run needs about {need / 1024**3:.1f} GiB and {files:,} inodes"
    )
    if free < need or inodes < files * 1.1:
        raise BenchError(f"not enough room under {OUT}: free some disk space or lower --recordings")


def seed(plan: Plan, env: dict[str, str]) -> dict[str, float]:
    times: dict[str, float] = {}
    heading(f"Seeding {DB} ({plan.marker})")
    for media in (MEDIA_OURS, MEDIA_BASE):
        if media.exists():
            step = time.perf_counter()
            shutil.rmtree(media)
            say(f"  removed {media} of an earlier run: {time.perf_counter() - step:.1f} s")
    recreate_database(DB)
    step = time.perf_counter()
    manage(env, "migrate", "--no-input", "-v", "0")
    say(f"  migrate: {time.perf_counter() - step:.1f} s")
    times["database"] = seed_database(plan)
    mark_database(DB, plan.marker)
    step = time.perf_counter()
    jobs = [(str(MEDIA_OURS), plan.total), (str(MEDIA_BASE), plan.total)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        writers = pool.map(write_files, jobs)
    os.sync()
    times["files"] = time.perf_counter() - step
    say(
        f"  {2 * plan.total:,} audio files ({len(AUDIO)} bytes) in media_ours/ and media_base/:"
        f" {times['files']:.1f} s (writers {writers[0]:.1f} s, {writers[1]:.1f} s; then sync)"
    )
    step = time.perf_counter()
    with connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BASE_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BASE_DB}" TEMPLATE "{DB}" STRATEGY FILE_COPY')
    times["copy"] = time.perf_counter() - step
    say(f"  {BASE_DB} created from template {DB}: {times['copy']:.1f} s")
    times["total"] = times["database"] + times["files"] + times["copy"]
    say(f"Seeding took {times['total']:.1f} s")
    return times


# --------------------------------------------------------------------------- baseline

BASE_ARTEFACTS = (
    "DELETE FROM recordings_artefact WHERE id IN (SELECT id FROM recordings_artefact"
    f" WHERE expires_at <= now() LIMIT {BATCH}) RETURNING storage_key"
)
BASE_RECORDINGS = (
    "DELETE FROM recordings_recording WHERE id IN (SELECT r.id FROM recordings_recording r"
    " WHERE r.id > %s AND NOT EXISTS (SELECT 1 FROM recordings_artefact a"
    f" WHERE a.recording_id = r.id) ORDER BY r.id LIMIT {BATCH}) RETURNING id"
)


@dataclass
class BaselineFigures:
    artefacts: int = 0
    files: int = 0
    recordings: int = 0
    artefact_s: float = 0.0
    recording_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.artefact_s + self.recording_s


def note_load() -> None:
    """Other work on the 2 cores (or the disk) skews every figure: say so when there is some."""
    load = os.getloadavg()[0]
    busy = " (WARNING: the machine is busy with other work)" if load > 1.0 else ""
    say(f"  load average (1 min): {load:.2f}{busy}")


def run_baseline(plan: Plan) -> BaselineFigures:
    heading(f"Baseline on {BASE_DB}: batched DELETE ... LIMIT {BATCH:,} + unlink, from Python")
    note_load()
    say(f"  artefacts: {BASE_ARTEFACTS}")
    say(f"  recordings: {BASE_RECORDINGS}")
    figures = BaselineFigures()
    root = str(MEDIA_BASE)
    with connect(BASE_DB) as conn:
        started = time.perf_counter()
        while True:
            keys = conn.execute(BASE_ARTEFACTS).fetchall()
            if not keys:
                break
            figures.artefacts += len(keys)
            for (key,) in keys:
                if key:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{root}/{key}")
                    figures.files += 1
        figures.artefact_s = time.perf_counter() - started
        started = time.perf_counter()
        last = 0
        while True:
            ids = conn.execute(BASE_RECORDINGS, [last]).fetchall()
            if not ids:
                break
            figures.recordings += len(ids)
            last = max(i for (i,) in ids)
        figures.recording_s = time.perf_counter() - started
    say(
        f"  {figures.artefacts:,} artefacts deleted and {figures.files:,} files unlinked in"
        f" {figures.artefact_s:.2f} s; {figures.recordings:,} recordings deleted in"
        f" {figures.recording_s:.2f} s"
    )
    say(f"  {plan.expired / figures.seconds:,.0f} recordings/s")
    want = (2 * plan.expired, plan.expired, plan.expired)
    if (figures.artefacts, figures.files, figures.recordings) != want:
        raise BenchError(f"the baseline deleted {figures}, expected {want}")
    return figures


# --------------------------------------------------------------------------- ours

DUE = "state = 'active' AND NOT purge_blocked AND expires_at IS NOT NULL AND expires_at <= now()"
LEFT_SQL = (
    f"SELECT EXISTS (SELECT 1 FROM recordings_artefact WHERE {DUE}),"
    " EXISTS (SELECT 1 FROM recordings_artefact WHERE state = 'purging')"
)
LEDGER_SQL = (
    "SELECT max(created_at), count(*), coalesce(sum((payload->>'artefacts')::bigint), 0),"
    " coalesce(sum((payload->>'recordings')::bigint), 0) FROM ledger_ledgerentry"
    " WHERE kind = 'purge.batch'"
)


@dataclass
class RssFigure:
    role: str
    first: int
    warm: int
    peak: int
    last: int

    @property
    def steady_growth(self) -> float:
        return self.peak / self.warm - 1

    def line(self) -> str:
        def mib(kib: int) -> str:
            return f"{kib / 1024:.1f}"

        return (
            f"{self.role}: first {mib(self.first)} / after 1st tenth {mib(self.warm)} /"
            f" peak {mib(self.peak)} / last {mib(self.last)} MiB;"
            f" growth {self.peak / self.first - 1:+.1%} from first,"
            f" {self.steady_growth:+.1%} after the 1st tenth"
        )


@dataclass
class OursFigures:
    seconds: float
    batches: int
    worker_cpu_s: float
    postgres_cpu_s: float
    machine_cpu_s: float
    wall_s: float
    rss: list[RssFigure]
    ledger_artefacts: int
    ledger_recordings: int
    auditlog_rows: int | None = None  # django-auditlog entries written, if it is installed
    problems: list[str] = field(default_factory=list)

    def cpu_line(self) -> str:
        return (
            f"worker {self.worker_cpu_s:.1f} s, PostgreSQL (its backends + writers)"
            f" {self.postgres_cpu_s:.1f} s, whole machine {self.machine_cpu_s:.1f} s"
            f" of {2 * self.wall_s:.1f} s (2 cores x {self.wall_s:.1f} s)"
        )


def rss_figures(
    sampler: RssSampler, worker: Worker, started: float, ended: float
) -> list[RssFigure]:
    warm_at = started + max(2.0, (ended - started) / 10)
    roles = {worker.proc.pid: "main"} | {
        pid: f"pool {i + 1}" for i, pid in enumerate(worker.children)
    }
    figures = []
    for pid, samples in sampler.samples.items():
        kib = [k for _, k in samples]
        after = [k for t, k in samples if t >= warm_at] or kib[-1:]
        figures.append(
            RssFigure(f"{roles.get(pid, 'other')} ({pid})", kib[0], after[0], max(kib), kib[-1])
        )
    return figures


def run_ours(
    plan: Plan, args: argparse.Namespace, worker: Worker, sender: TaskSender, queue: str
) -> OursFigures:
    heading(f"Ours on {DB}: retention.purge_expired on a Celery worker (2 processes)")
    note_load()
    with connect(DB) as conn:
        due = conn.execute(f"SELECT count(*) FROM recordings_artefact WHERE {DUE}").fetchone()[0]
        if due != 2 * plan.expired or any(conn.execute(LEFT_SQL).fetchone()[1:]):
            raise BenchError(f"{due:,} artefacts due before the run, or some purging")
        t0_db = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        cpu0, busy0 = cpu_seconds(worker.pids()), machine_busy_seconds()
        postgres = PostgresCpu(conn, DB)
        started = time.monotonic()
        spy = None
        with RssSampler(worker.pids) as sampler:
            for _ in worker.children:
                sender.send("retention.purge_expired", queue)
            if args.profile:
                spy = start_py_spy(
                    worker.children[0], args.profile_seconds, args.profile, idle=True
                )
            last_report = started
            while any(conn.execute(LEFT_SQL).fetchone()):
                postgres.poll()
                worker.check()
                now = time.monotonic()
                if now - last_report >= 10:
                    last_report = now
                    done = int(conn.execute(LEDGER_SQL).fetchone()[2])
                    say(
                        f"  {now - started:5.0f} s: {done:,} artefacts purged"
                        f" ({done / (now - started):,.0f}/s)"
                    )
                if now - started > args.timeout:
                    raise BenchError(f"the purge did not finish within {args.timeout:.0f} s")
                time.sleep(1)
            ended = time.monotonic()
            postgres.poll()
        worker_cpu = cpu_seconds(worker.pids()) - cpu0
        machine_cpu = machine_busy_seconds() - busy0
        end_db, batches, artefacts, recordings = conn.execute(LEDGER_SQL).fetchone()
    seconds = (end_db - t0_db).total_seconds()
    say(
        f"  done: {plan.expired:,} recordings ({2 * plan.expired:,} artefacts) in"
        f" {seconds:.2f} s, {batches} batches: {plan.expired / seconds:,.0f} recordings/s"
        f" (the poll saw it after {ended - started:.1f} s)"
    )
    figures = OursFigures(
        seconds=seconds,
        batches=batches,
        worker_cpu_s=worker_cpu,
        postgres_cpu_s=postgres.seconds,
        machine_cpu_s=machine_cpu,
        wall_s=ended - started,
        rss=rss_figures(sampler, worker, started, ended),
        ledger_artefacts=int(artefacts),
        ledger_recordings=int(recordings),
    )
    say(f"  CPU: {figures.cpu_line()}")
    for rss in figures.rss:
        say(f"  RSS {rss.line()}")
    if spy is not None and args.profile:
        _, err = spy.communicate(timeout=args.profile_seconds + 60)
        if spy.returncode == 0 and args.profile.exists():
            say(f"  py-spy --idle of pool process {worker.children[0]} (wall time): {args.profile}")
            say(profile_breakdown(args.profile))
        else:
            say(f"  py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
    return figures


PROFILE_KINDS = (  # (what, a frame that says so), the first that matches a stack wins
    ("db wait", "Connection.wait (psycopg/"),
    ("unlink", "FileSystemStorage.delete ("),
    ("ORM+driver", "django/db/"),
    ("ORM+driver", "psycopg/"),
)


def profile_breakdown(raw: Path, top: int = 25) -> str:
    """py-spy --idle samples of a purge process, by the app statement they fall under (the
    deepest frame in compliance/, with its line) and by what the time went to below it:
    waiting for PostgreSQL, unlinking files, the ORM and driver in Python, other Python."""
    kinds = [*dict.fromkeys(k for k, _ in PROFILE_KINDS), "other"]
    by_line: dict[str, Counter[str]] = {}
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        app = [f for f in frames if "compliance/" in f]
        where = app[-1] if app else "(outside compliance/)"
        kind = next((k for k, mark in PROFILE_KINDS if mark in stack), "other")
        by_line.setdefault(where, Counter())[kind] += n
        leaves[re.sub(r":\d+\)$", ")", frames[-1])] += n
    if not total:
        return "  (no samples)"
    sums = Counter()
    for counts in by_line.values():
        sums.update(counts)
    header = "".join(f"{k:>11}" for k in kinds)
    out = [f"  {total:,} samples (wall time, --idle); by kind: "]
    out[0] += ", ".join(f"{k} {sums[k] / total:.1%}" for k in kinds)
    out.append(f"  by app statement (deepest compliance/ frame):  share{header}")
    ranked = sorted(by_line.items(), key=lambda item: -sum(item[1].values()))
    for where, counts in ranked[:top]:
        cells = "".join(f"{counts[k] / total:>11.1%}" for k in kinds)
        out.append(f"    {sum(counts.values()) / total:6.1%}{cells}  {where}")
    out.append("  self share (top 15):")
    out += [f"    {n / total:6.1%}  {f}" for f, n in leaves.most_common(15)]
    return "\n".join(out)


def present_files(root: Path, total: int) -> set[int]:
    """The ids 1..total whose audio file exists under `root`."""
    present: set[int] = set()
    for shard in range(total // SHARD + 1):
        directory = root / "audio" / "bench" / f"{shard:04d}"
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
            present.update(int(e.name.removesuffix(".wav")) for e in entries)
    return present


def check_ours(plan: Plan, env: dict[str, str], figures: OursFigures) -> list[str]:
    heading("Checking the purge")
    problems: list[str] = []
    expired = plan.expired_sql("r.id")
    with connect(DB) as conn:
        row = conn.execute(
            "SELECT"
            f" count(*) FILTER (WHERE {expired} AND r.state = 'purged'"
            "   AND r.purge_reason = 'retention_policy' AND r.purged_at IS NOT NULL"
            "   AND r.purge_policy IN ('policy:1', 'policy:2')),"
            f" count(*) FILTER (WHERE NOT {expired} AND (r.state <> 'active'"
            "   OR r.purged_at IS NOT NULL))"
            " FROM recordings_recording r"
        ).fetchone()
        say(f"  expired recordings tombstoned: {row[0]:,} of {plan.expired:,}")
        say(f"  other recordings touched: {row[1]:,}")
        if row[0] != plan.expired or row[1]:
            problems.append(f"recordings: {row[0]:,} tombstoned, {row[1]:,} others touched")
        row = conn.execute(
            "SELECT"
            f" count(*) FILTER (WHERE {expired} AND a.state = 'purged' AND a.storage_key = ''"
            "   AND a.text = '' AND a.size_bytes = 0 AND a.purged_at IS NOT NULL"
            "   AND a.purge_reason = 'retention_policy'),"
            f" count(*) FILTER (WHERE NOT {expired} AND (a.state <> 'active'"
            "   OR a.purge_attempt <> 0 OR a.purged_at IS NOT NULL OR a.purge_blocked))"
            " FROM recordings_artefact a JOIN recordings_recording r ON r.id = a.recording_id"
        ).fetchone()
        say(f"  expired artefacts tombstoned: {row[0]:,} of {2 * plan.expired:,}")
        say(f"  other artefacts touched: {row[1]:,}")
        if row[0] != 2 * plan.expired or row[1]:
            problems.append(f"artefacts: {row[0]:,} tombstoned, {row[1]:,} others touched")
    present = present_files(MEDIA_OURS, plan.total)
    doomed = {n for n in range(1, plan.total + 1) if plan.is_expired(n)}
    left = len(doomed & present)
    missing = plan.total - len(doomed) - len(present - doomed)
    say(f"  expired files left: {left:,}; other files missing: {missing:,}")
    if left or missing:
        problems.append(f"files: {left:,} expired left, {missing:,} others missing")
    say(
        f"  ledger purge.batch entries: {figures.batches}, counting {figures.ledger_artefacts:,}"
        f" artefacts and {figures.ledger_recordings:,} recordings"
    )
    if (figures.ledger_artefacts, figures.ledger_recordings) != (2 * plan.expired, plan.expired):
        problems.append(
            f"ledger counts {figures.ledger_artefacts:,} artefacts /"
            f" {figures.ledger_recordings:,} recordings"
        )
    with connect(DB) as conn:
        if conn.execute("SELECT to_regclass('auditlog_logentry')").fetchone()[0]:
            figures.auditlog_rows, size = conn.execute(
                "SELECT count(*), pg_total_relation_size('auditlog_logentry')"
                " FROM auditlog_logentry"
            ).fetchone()
            say(
                f"  auditlog entries written: {figures.auditlog_rows:,}; the table with its"
                f" indexes {size / 2**20:,.1f} MiB, {size / plan.expired:,.0f} bytes a purged"
                " recording"
            )
    problems += verify_ledger(env)
    for problem in problems:
        say(f"  PROBLEM: {problem}")
    return problems


def verify_ledger(env: dict[str, str]) -> list[str]:
    try:
        say(f"  manage.py verify_ledger: {manage(env, 'verify_ledger').strip()}")
    except BenchError as error:
        say(f"  manage.py verify_ledger: {error}")
        return ["the ledger does not verify"]
    return []


# --------------------------------------------------------------------------- deletion


@dataclass
class DeletionFigures:
    seconds: float
    wall_s: float
    deleted: int
    problems: list[str]


CREATE_REQUEST = (
    "from compliance.accounts.models import Profile\n"
    "from compliance.retention.services import deletion_request_create\n"
    "profile = Profile.objects.get(external_id='prof-deletion')\n"
    "request = deletion_request_create(profile=profile, recorded_from=None,"
    " recorded_to=None, actor='bench')\n"
    "print(request.public_id)\n"
)


def run_deletion(
    plan: Plan, env: dict[str, str], worker: Worker, sender: TaskSender, queue: str
) -> DeletionFigures:
    heading(f"Deletion request: {plan.deletion:,} recordings of one profile")
    started = time.monotonic()
    public_id = manage(env, "shell", "-c", CREATE_REQUEST).strip().splitlines()[-1]
    # deletion_request_create enqueued the task on commit (default queue); so do we
    sender.send("retention.run_deletion_request", queue, [public_id])
    say(f"  {public_id} created (manage.py shell) and sent to the worker")
    with connect(DB) as conn:
        while True:
            status, created, finished, deleted = conn.execute(
                "SELECT status, created_at, finished_at, recordings_deleted"
                " FROM retention_deletionrequest WHERE public_id = %s",
                [public_id],
            ).fetchone()
            if status == "done":
                break
            if time.monotonic() - started > 600:
                raise BenchError(f"deletion request {public_id} not done within 600 s")
            worker.check()
            time.sleep(0.2)
        wall = time.monotonic() - started
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE r.state = 'purged'"
            "   AND r.purge_reason = 'deletion_request'),"
            " (SELECT count(*) FROM recordings_artefact a JOIN recordings_recording x"
            "   ON x.id = a.recording_id WHERE x.profile_id = %s AND a.state <> 'purged')"
            " FROM recordings_recording r WHERE r.profile_id = %s",
            [plan.deletion_profile, plan.deletion_profile],
        ).fetchone()
    seconds = (finished - created).total_seconds()
    left = len(
        present_files(MEDIA_OURS, plan.total) & set(range(plan.recordings + 1, plan.total + 1))
    )
    say(
        f"  done: {deleted:,} recordings deleted in {seconds:.2f} s (created -> done,"
        f" database clock); {wall:.1f} s wall including manage.py shell's start"
    )
    say(f"  recordings tombstoned: {row[0]:,}; artefacts left: {row[1]:,}; files left: {left:,}")
    problems = []
    if (deleted, row[0], row[1], left) != (plan.deletion, plan.deletion, 0, 0):
        problems.append(
            f"deletion request: {deleted} deleted, {row[0]} tombstoned, {row[1]} artefacts"
            f" and {left} files left"
        )
    return DeletionFigures(seconds, wall, deleted, problems)


# --------------------------------------------------------------------------- lag


@dataclass
class LagFigures:
    target_rate: float
    created: int
    rate: float  # committed registrations a second over the offered window (see _run_lag)
    per_second_min: int
    per_second_p50: int
    ingest_p50_ms: float
    ingest_p99_ms: float
    lags: list[float]
    claim_lags: list[float]
    unpurged: int
    problems: list[str]
    offered: float = 0.0  # what the clients sent a second, over --ingest-seconds
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by role
    cpu_seconds: float = 0.0  # the window `cpu` covers
    machine_busy: float = 0.0  # CPU seconds the whole machine was busy in it


CLK_TCK = os.sysconf("SC_CLK_TCK")


def started_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except OSError:
        return None


class RoleCpu:
    """CPU seconds by role, from /proc, polled every half second in a thread: the
    processes of each role (`roles`: name -> a callable giving their pids) and the
    PostgreSQL backends of `db` by their application_name (each role's processes are
    started with PGAPPNAME=bench-<role>), as "pg <role>". A backend that ends between
    two polls loses what it used since the last one."""

    def __init__(self, db: str, roles: dict[str, Callable[[], Sequence[int]]]) -> None:
        self.db, self.roles = db, roles
        self.since_ticks = float(Path("/proc/uptime").read_text().split()[0]) * CLK_TCK
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.started = time.monotonic()
        self.busy = machine_busy_seconds()
        self.stop = threading.Event()
        self.conn = connect(db)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _see(self, pid: int, role: str) -> None:
        started = started_ticks(pid)
        if started is None:
            return
        used = cpu_seconds([pid])
        if pid not in self.first:
            self.first[pid] = used if started < self.since_ticks else 0.0
        self.last[pid] = (role, used)

    def poll(self) -> None:
        for role, pids in self.roles.items():
            for pid in pids():
                self._see(pid, role)
        for pid, name in self.conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.db],
        ).fetchall():
            self._see(pid, "pg " + (name.removeprefix("bench-") or "other"))

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            with contextlib.suppress(Exception):  # a role's process gone mid-poll
                self.poll()

    def finish(self) -> tuple[dict[str, float], float, float]:
        """CPU seconds by role, the seconds measured, the machine's busy CPU seconds."""
        self.stop.set()
        self.thread.join()
        self.poll()
        self.conn.close()
        by_role: Counter[str] = Counter()
        for pid, (role, used) in self.last.items():
            by_role[role] += used - self.first[pid]
        return (
            dict(by_role.most_common()),
            time.monotonic() - self.started,
            machine_busy_seconds() - self.busy,
        )


def ingest_child(argv: Sequence[str]) -> int:
    """One ingest process: `rate` recordings a second through recording_create."""
    index, processes, rate, seconds, start_at = argv
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from compliance.actions.ingest import recording_create
    from compliance.recordings.services import RecordingInput

    period = 1 / float(rate)
    n, latencies, behind = 0, [], 0.0
    start = (
        time.monotonic()
        + max(0.0, float(start_at) - time.time())
        + int(index) * period / int(processes)
    )
    while True:
        due = start + n * period
        if due - start >= float(seconds):
            break
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        behind = max(behind, -pause)
        begun = time.perf_counter()
        recording_create(
            data=RecordingInput(
                external_id=f"lag-{index}-{n}",
                profile_external_id=f"prof-lag-{(n * int(processes) + int(index)) % LAG_PROFILES}",
                recorded_at=timezone.now(),
                transcript=TRANSCRIPT,
                audio=ContentFile(AUDIO, name="clip.wav"),
            ),
            actor="bench",
        )
        latencies.append((time.perf_counter() - begun) * 1000)
        n += 1
    report = {"created": n, "sent": n, "latencies_ms": latencies, "behind_s": behind}
    print(json.dumps(report | {"done_at": time.time()}), flush=True)
    return 0


def ingest_batch_child(argv: Sequence[str]) -> int:
    """One ingest process over HTTP: batches of `batch` items to POST
    /api/v1/recordings/batch, `rate` recordings a second, each item's audio a file
    already written under ingest/lag/<index>/ (see `write_lag_files`).

    Cheap and honest: every body is built before the start (only `recorded_at` would
    differ, and the dont_save expiry runs from the registration, not from it), sent on
    one kept-alive connection; a batch goes at its scheduled time, or at once when the
    one before came back late (`behind_s` says by how much). What the process reports
    is what it sent and when each answer came (the registrations are committed then)."""
    index, processes, rate, seconds, start_at, port, key, batch = argv
    import http.client
    from datetime import UTC
    from datetime import datetime as dt

    size, i = int(batch), int(index)
    period = size / float(rate)
    count = 0
    while count * period < float(seconds):
        count += 1
    recorded_at = dt.now(UTC).isoformat()
    bodies = [
        json.dumps(
            {
                "recordings": [
                    {
                        "external_id": f"lag-{i}-{m}",
                        "profile": f"prof-lag-{(m * int(processes) + i) % LAG_PROFILES}",
                        "recorded_at": recorded_at,
                        "transcript": TRANSCRIPT,
                        "audio_key": f"ingest/lag/{i}/{m}.wav",
                        "audio_size": len(AUDIO),
                    }
                    for m in range(n * size, (n + 1) * size)
                ]
            }
        ).encode()
        for n in range(count)
    ]
    conn = http.client.HTTPConnection(HOST, int(port), timeout=120)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    latencies, behind, created, done_at = [], 0.0, 0, 0.0
    wall_start = float(start_at) + i * period / int(processes)
    start = time.monotonic() + max(0.0, wall_start - time.time())
    for n, body in enumerate(bodies):
        pause = start + n * period - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        behind = max(behind, -pause)
        begun = time.perf_counter()
        conn.request("POST", "/api/v1/recordings/batch", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        latencies.append((time.perf_counter() - begun) * 1000)
        done_at = time.time()
        if response.status != 200:
            raise BenchError(f"batch answered {response.status}: {data[:300]!r}")
        results = json.loads(data)["results"]
        bad = [r for r in results if r["status"] != "created"]
        if bad:
            raise BenchError(f"{len(bad)} items not created, e.g. {bad[:2]}")
        created += len(results)
    conn.close()
    print(
        json.dumps(
            {
                "created": created,
                "sent": count * size,
                "latencies_ms": latencies,
                "behind_s": behind,
                "done_at": done_at,
            }
        )
    )
    return 0


def write_lag_files(processes: int, per_process: int) -> None:
    """The objects the batch ingest registers: ingest/lag/<process>/<n>.wav."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for i in range(processes):
        directory = MEDIA_OURS / "ingest" / "lag" / str(i)
        directory.mkdir(parents=True, exist_ok=True)
        for m in range(per_process):
            fd = os.open(f"{directory}/{m}.wav", flags, 0o644)
            try:
                os.write(fd, AUDIO)
            finally:
                os.close(fd)


def lag_rows(conn: psycopg.Connection, since: datetime) -> tuple[list[float], list[float], int]:
    """Per purged ingest artefact: seconds from expiry to the commit of the batch that
    purged it (the first purge.batch ledger entry after its purged_at whose id range
    holds it), and to purged_at; and how many are not purged."""
    batches = conn.execute(
        "SELECT created_at, (payload->>'first_artefact')::bigint,"
        " (payload->>'last_artefact')::bigint FROM ledger_ledgerentry"
        " WHERE kind = 'purge.batch' AND created_at >= %s ORDER BY created_at",
        [since],
    ).fetchall()
    rows = conn.execute(
        "SELECT a.id, a.expires_at, a.purged_at FROM recordings_artefact a"
        " JOIN recordings_recording r ON r.id = a.recording_id"
        " WHERE r.external_id LIKE 'lag-%%'"
    ).fetchall()
    lags, claim_lags, unpurged = [], [], 0
    for pk, expires_at, purged_at in rows:
        if purged_at is None:
            unpurged += 1
            continue
        claim_lags.append((purged_at - expires_at).total_seconds())
        gone = next((at for at, lo, hi in batches if at >= purged_at and lo <= pk <= hi), purged_at)
        lags.append((gone - expires_at).total_seconds())
    return lags, claim_lags, unpurged


def run_lag(args: argparse.Namespace, env: dict[str, str], worker: Worker) -> LagFigures:
    rate, seconds, processes = args.ingest_rate, args.ingest_seconds, args.ingest_processes
    how = (
        f"POST /recordings/batch of {args.ingest_batch:,}, gunicorn 2 workers"
        if args.ingest_batch
        else "recording_create"
    )
    heading(
        f"Purge lag: celery beat (the project's schedule) while {rate:g} recordings/s are ingested"
        f" for {seconds:g} s ({processes} processes, {how}, dont_save profiles)"
    )
    with contextlib.ExitStack() as stack:
        server = None
        extra: list[str] = []
        if args.ingest_batch:
            per_process = int(rate / processes * seconds) + args.ingest_batch
            step = time.perf_counter()
            write_lag_files(processes, per_process)
            say(
                f"  {processes * per_process:,} audio objects under ingest/lag/:"
                f" {time.perf_counter() - step:.1f} s"
            )
            key = create_service_client(env, DB, "bench-lag", ["recordings:write"])
            web_env = env | {"API_THROTTLE_CLIENT": "100000000/min", "PGAPPNAME": "bench-web"}
            server = stack.enter_context(gunicorn(web_env, workers=2))
            extra = [str(server.port), key, str(args.ingest_batch)]
        figures = _run_lag(args, env, worker, extra, server)
        if server is not None:
            server.check_workers()
        return figures


def _run_lag(
    args: argparse.Namespace,
    env: dict[str, str],
    worker: Worker,
    extra: list[str],
    server: Server | None = None,
) -> LagFigures:
    rate, seconds, processes = args.ingest_rate, args.ingest_seconds, args.ingest_processes
    children: list[subprocess.Popen[bytes]] = []
    roles: dict[str, Callable[[], Sequence[int]]] = {
        "clients": lambda: [c.pid for c in children if c.poll() is None],
        "worker": worker.pids,
    }
    if server is not None:
        roles["web"] = lambda: [server.proc.pid, *server.workers]
    with connect(DB) as conn:
        since = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        with celery_beat(env | {"PGAPPNAME": "bench-beat"}, OUT) as beat:
            roles["beat"] = lambda: [beat.pid]
            cpu = RoleCpu(DB, roles)
            start_at = time.time() + 5
            mode = "--ingest-batch-child" if extra else "--ingest-child"
            command = [str(PYTHON), str(Path(__file__).resolve()), mode]
            share = [str(processes), str(rate / processes), str(seconds), str(start_at), *extra]
            children += [
                subprocess.Popen(
                    [*command, str(i), *share],
                    cwd=REPO,
                    env=env | {"PGAPPNAME": "bench-clients"},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                for i in range(processes)
            ]
            results = []
            try:
                for child in children:
                    try:  # on a busy machine a client falls behind its schedule
                        out, err = child.communicate(timeout=3 * seconds + 120)
                    except subprocess.TimeoutExpired as late:
                        raise BenchError(f"ingest process {child.pid} still running") from late
                    if child.returncode != 0:
                        raise BenchError(
                            f"ingest process {child.pid} failed ({child.returncode}):\n"
                            f"{err.decode(errors='replace')[-3000:]}"
                        )
                    results.append(json.loads(out.decode().strip().splitlines()[-1]))
            finally:
                for child in children:
                    stop_process(child, wait=5)
            worker.check()
            say(f"  ingest done; waiting for the beat's next purges (up to {args.lag_wait:g} s)")
            deadline = time.monotonic() + args.lag_wait
            while time.monotonic() < deadline:
                # nothing due or being purged (what the partial indexes artefact_due and
                # artefact_purging hold): a scan of every ingested row every 2 s took
                # more CPU than the worker's own backends while it drained
                left = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM recordings_artefact WHERE state = 'active'"
                    " AND NOT purge_blocked AND expires_at IS NOT NULL AND expires_at <= now())"
                    " OR EXISTS (SELECT 1 FROM recordings_artefact WHERE state = 'purging')"
                ).fetchone()[0]
                if not left:
                    break
                time.sleep(2)
            by_role, cpu_window, machine_busy = cpu.finish()
            worker.check()
        created, first, last = conn.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM recordings_recording"
            " WHERE external_id LIKE 'lag-%%'"
        ).fetchone()
        per_second = [
            c
            for (c,) in conn.execute(
                "SELECT count(*) FROM recordings_recording WHERE external_id LIKE 'lag-%%'"
                " GROUP BY date_trunc('second', created_at) ORDER BY date_trunc('second',"
                " created_at)"
            ).fetchall()
        ][1:-1] or [0]
        lags, claim_lags, unpurged = lag_rows(conn, since)
    latencies = [x for r in results for x in r["latencies_ms"]]
    # Reached: the registrations committed, over the offered window (--ingest-seconds
    # from the start) or, when the last answer came later, until it came. (The rows'
    # created_at is each batch's transaction start: first to last misses a batch.)
    window = max(seconds, max(r["done_at"] for r in results) - start_at)
    achieved = created / window
    offered = sum(r["sent"] for r in results) / seconds
    say(
        f"  offered {offered:,.1f}/s; committed {created:,} recordings in {window:.1f} s:"
        f" {achieved:,.1f}/s (target {rate:g}/s; rows' created_at first to last:"
        f" {created / max((last - first).total_seconds(), 1e-9):,.1f}/s); per"
        f" second: min {min(per_second)}, median {percentile(per_second, 50)};"
        f" recording_create p50 {percentile(latencies, 50):.1f} ms,"
        f" p99 {percentile(latencies, 99):.1f} ms; at most"
        f" {max(r['behind_s'] for r in results):.2f} s behind schedule"
        + (" (latencies: per batch)" if extra else "")
    )
    figures = LagFigures(
        rate,
        created,
        achieved,
        min(per_second),
        percentile(per_second, 50),
        percentile(latencies, 50),
        percentile(latencies, 99),
        lags,
        claim_lags,
        unpurged,
        [],
        offered,
        by_role,
        cpu_window,
        machine_busy,
    )
    say(f"  CPU by role: {cpu_line(figures)}")
    if lags:
        say(f"  purge lag (expiry -> batch committed): {lag_line(lags)}")
        say(f"  purge lag (expiry -> purged_at, the claim): {lag_line(claim_lags)}")
    say(f"  artefacts not purged {args.lag_wait:g} s after the ingest ended: {unpurged:,}")
    leftovers = [
        p
        for p in (MEDIA_OURS / "audio").rglob("*")
        if p.is_file() and (MEDIA_OURS / "audio" / "bench") not in p.parents
    ]
    if extra:  # registered objects: those of the recordings created, process by process
        leftovers = [
            path
            for i, r in enumerate(results)
            for m in range(r["created"])
            if (path := MEDIA_OURS / "ingest" / "lag" / str(i) / f"{m}.wav").exists()
        ]
    say(f"  ingested audio files left in storage: {len(leftovers):,}")
    if created != sum(r["created"] for r in results):
        figures.problems.append("ingest: the processes and the database disagree on the count")
    if not unpurged and leftovers:
        figures.problems.append(f"{len(leftovers)} ingested files left after their purge")
    return figures


def cpu_line(lag: LagFigures) -> str:
    """CPU seconds by role over the run (ingest and the purges after it), in cores
    and per recording registered and purged."""
    per = max(lag.created, 1)
    parts = [
        f"{role} {used:.1f} s ({used / lag.cpu_seconds:.2f} cores, {used / per * 1000:.2f} ms/rec)"
        for role, used in lag.cpu.items()
    ]
    ours = sum(lag.cpu.values())
    return (
        f"{'; '.join(parts)}; all of these {ours:.1f} s ({ours / lag.cpu_seconds:.2f} cores,"
        f" {ours / per * 1000:.2f} ms/rec) of the machine's {lag.machine_busy:.1f} busy CPU-s"
        f" in {lag.cpu_seconds:.0f} s"
    )


def lag_line(lags: list[float]) -> str:
    return (
        f"p50 {percentile(lags, 50):.1f} s, p95 {percentile(lags, 95):.1f} s,"
        f" p99 {percentile(lags, 99):.1f} s, max {max(lags):.1f} s ({len(lags):,} artefacts)"
    )


# --------------------------------------------------------------------------- main


@dataclass
class Figures:
    seed: dict[str, float]
    baseline: BaselineFigures
    ours: OursFigures
    deletion: DeletionFigures
    lag: LagFigures


def other_benchmarks() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if any(b in cmdline for b in OTHER_BENCHMARKS):
                    found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def wait_for_quiet(max_load: float, patience: float) -> None:
    """Benchmarks running at once skew each other on 2 cores: wait while another one
    runs; and, for up to `patience` seconds, while the load average says other work
    keeps the cores busy."""
    deadline = time.monotonic() + patience
    while True:
        busy = other_benchmarks()
        load = os.getloadavg()[0]
        if busy:
            say(f"Another benchmark is running ({'; '.join(busy)}); checking again in 30 s")
        elif load <= max_load:
            return
        elif time.monotonic() > deadline:
            say(f"  the load average is still {load:.2f}: going on (figures will be noisy)")
            return
        else:
            say(f"  load average {load:.2f} > {max_load:g}: other work is running; waiting 30 s")
        time.sleep(30)


def use_database(db: str, broker: str) -> None:
    """Another database (and its media tree under bench/out/<db>) and broker than the
    defaults: two runs at once on one machine must not share them."""
    global DB, BASE_DB, OUT, MEDIA_OURS, MEDIA_BASE, BROKER
    if db != DB:
        DB, BASE_DB = db, f"{db}_base"
        OUT = REPO / "bench" / "out" / db
        MEDIA_OURS, MEDIA_BASE = OUT / "media_ours", OUT / "media_base"
    BROKER = broker


def measure(args: argparse.Namespace, plan: Plan) -> Figures | LagFigures:
    ingest = int(args.ingest_rate * args.ingest_seconds)
    check_disk(plan, ingest)
    wait_for_quiet(args.max_load, args.load_wait)
    # the database is new each run, so its published ledger must be too: an export of
    # an earlier run's longer chain would fail the check of this one
    export = OUT / "ledger-export"
    shutil.rmtree(export, ignore_errors=True)
    ours_env = app_env(DB) | {
        "CELERY_BROKER_URL": BROKER,
        "MEDIA_ROOT": str(MEDIA_OURS),
        "LEDGER_EXPORT": str(export),
    }
    seeding = seed(plan, ours_env)
    wait_for_quiet(args.max_load, 180)  # the seeding's own load, mostly
    if args.lag_only:
        return measure_lag_only(args, plan, ours_env, seeding)
    baseline = run_baseline(plan)
    queue = f"bench-purge-{uuid.uuid4().hex[:12]}"
    dropped = clear_queues(BROKER, [DEFAULT_QUEUE])
    if dropped:
        say(f"Dropped {dropped} stale messages from queue {DEFAULT_QUEUE!r} on {BROKER}")
    sender = TaskSender(BROKER)
    log = OUT / "worker.log"
    try:
        worker_env = ours_env | {"PGAPPNAME": "bench-worker"}
        with celery_worker(worker_env, [queue, DEFAULT_QUEUE], log) as worker:
            ours = run_ours(plan, args, worker, sender, queue)
            ours.problems = check_ours(plan, ours_env, ours)
            deletion = run_deletion(plan, ours_env, worker, sender, queue)
            lag = run_lag(args, ours_env, worker)
            worker.check()
        lag.problems += verify_ledger(ours_env)
    finally:
        sender.close()
        clear_queues(BROKER, [queue], bindings=True)
    return Figures(seeding, baseline, ours, deletion, lag)


def measure_lag_only(
    args: argparse.Namespace, plan: Plan, env: dict[str, str], seeding: dict[str, float]
) -> LagFigures:
    """The purge-lag run alone (--lag-only): the worker and the beat, the ingest."""
    dropped = clear_queues(BROKER, [DEFAULT_QUEUE])
    if dropped:
        say(f"Dropped {dropped} stale messages from queue {DEFAULT_QUEUE!r} on {BROKER}")
    queue = f"bench-purge-{uuid.uuid4().hex[:12]}"
    try:
        worker_env = env | {"PGAPPNAME": "bench-worker"}
        with celery_worker(worker_env, [queue, DEFAULT_QUEUE], OUT / "worker.log") as w:
            lag = run_lag(args, env, w)
            w.check()
        lag.problems += verify_ledger(env)
    finally:
        clear_queues(BROKER, [queue], bindings=True)
    return lag


def report_lag(args: argparse.Namespace, lag: LagFigures) -> None:
    lag_max = max(lag.lags) if lag.lags else float("inf")
    rate_ok = lag.rate >= 0.95 * lag.target_rate
    how = f"POST /recordings/batch of {args.ingest_batch:,}" if args.ingest_batch else "single"
    latency = "a batch" if args.ingest_batch else "recording_create"
    print_summary(
        "purge lag",
        [
            (
                "ingest",
                f"{lag.created:,} recordings at {lag.rate:,.1f}/s committed (offered"
                f" {lag.offered:,.1f}/s, target {lag.target_rate:g}/s, {how}; per second min"
                f" {lag.per_second_min}, median {lag.per_second_p50}); {latency} p50"
                f" {lag.ingest_p50_ms:.1f} ms, p99 {lag.ingest_p99_ms:.1f} ms",
            ),
            ("CPU by role", cpu_line(lag)),
            ("purge lag", lag_line(lag.lags) if lag.lags else "nothing purged"),
            ("purge lag to claim", lag_line(lag.claim_lags) if lag.claim_lags else "-"),
            ("lag not purged", f"{lag.unpurged:,} artefacts {args.lag_wait:g} s after the ingest"),
        ],
        [
            Goal(
                f"offered rate reached (>= 95% of {lag.target_rate:g}/s)",
                f"{lag.rate:,.1f}/s",
                rate_ok,
            ),
            Goal(
                f"purge lag (max) < 2 min at {lag.target_rate:g} recordings/s ingested",
                f"max {lag_max:.1f} s"
                + (f"; {lag.unpurged:,} never purged" if lag.unpurged else ""),
                not lag.unpurged and lag_max < GOAL_LAG_S,
            ),
        ],
    )


def purge_cpu_line(ours: OursFigures, recordings: int) -> str:
    """CPU per purged recording: the worker's and its PostgreSQL's (backends, writers)."""
    both = ours.worker_cpu_s + ours.postgres_cpu_s
    return (
        f"{both / recordings * 1000:.3f} ms (worker {ours.worker_cpu_s / recordings * 1000:.3f},"
        f" PostgreSQL {ours.postgres_cpu_s / recordings * 1000:.3f}):"
        f" {recordings / both:,.0f} recordings a CPU-second"
    )


def report(args: argparse.Namespace, plan: Plan, f: Figures) -> None:
    base_rate = plan.expired / f.baseline.seconds
    ours_rate = plan.expired / f.ours.seconds
    ratio = ours_rate / base_rate
    growth = max(r.steady_growth for r in f.ours.rss)
    lag = f.lag
    lag_max = max(lag.lags) if lag.lags else float("inf")
    rate_ok = lag.rate >= 0.95 * lag.target_rate
    figures = [
        ("data", f"{plan.total:,} recordings ({plan.expired:,} expired), {DB}"),
        (
            "seeding",
            f"{f.seed['total']:.1f} s (SQL {f.seed['database']:.1f} s, files"
            f" {f.seed['files']:.1f} s, copy {f.seed['copy']:.1f} s)",
        ),
        (
            "baseline",
            f"{base_rate:>9,.0f} rec/s   {f.baseline.seconds:7.2f} s (artefacts + unlink"
            f" {f.baseline.artefact_s:.2f} s, recordings {f.baseline.recording_s:.2f} s)",
        ),
        (
            "purge (worker)",
            f"{ours_rate:>9,.0f} rec/s   {f.ours.seconds:7.2f} s ({f.ours.batches} batches,"
            f" {2 * plan.expired / f.ours.seconds:,.0f} artefacts/s)",
        ),
        ("purge/baseline", f"{ratio:.0%}"),
        ("purge CPU", f.ours.cpu_line()),
        ("purge CPU a recording", purge_cpu_line(f.ours, plan.expired)),
        (
            "purge writes",
            f"{f.ours.batches} ledger entries; auditlog entries:"
            f" {'-' if f.ours.auditlog_rows is None else f'{f.ours.auditlog_rows:,}'}",
        ),
        *((f"worker RSS {r.role}", r.line().split(": ", 1)[1]) for r in f.ours.rss),
        (
            "purge command",
            "not measured: manage.py purge_expired runs the same loop in one process",
        ),
        (
            "deletion request",
            f"{f.deletion.deleted:,} recordings in {f.deletion.seconds:.2f} s"
            f" ({f.deletion.wall_s:.1f} s wall incl. manage.py shell)",
        ),
        (
            "ingest",
            f"{lag.created:,} recordings at {lag.rate:,.1f}/s (target {lag.target_rate:g}/s;"
            f" per second min {lag.per_second_min}, median {lag.per_second_p50});"
            f" recording_create p50 {lag.ingest_p50_ms:.1f} ms, p99 {lag.ingest_p99_ms:.1f} ms",
        ),
        ("ingest CPU by role", cpu_line(lag)),
        ("purge lag", lag_line(lag.lags) if lag.lags else "nothing purged"),
        ("purge lag to claim", lag_line(lag.claim_lags) if lag.claim_lags else "-"),
        ("lag not purged", f"{lag.unpurged:,} artefacts {args.lag_wait:g} s after the ingest"),
    ]
    goals = [
        Goal("purge >= 50% of the baseline's recordings/s", f"{ratio:.0%}", ratio >= GOAL_RATIO),
        Goal(
            f"purge lag (max) < 2 min at {lag.target_rate:g} recordings/s ingested",
            f"max {lag_max:.1f} s at {lag.rate:,.1f}/s achieved"
            + ("" if rate_ok else " (ingest below 95% of the target: not judged)")
            + (f"; {lag.unpurged:,} never purged" if lag.unpurged else ""),
            rate_ok and not lag.unpurged and lag_max < GOAL_LAG_S,
        ),
        Goal(
            f"deletion request of {plan.deletion:,} recordings < 60 s",
            f"{f.deletion.seconds:.2f} s",
            f.deletion.seconds < GOAL_DELETION_S,
        ),
        Goal(
            "worker RSS flat while purging (<= 10% after its first tenth)",
            f"{growth:+.1%} (largest of the processes)",
            growth <= GOAL_RSS_GROWTH,
        ),
    ]
    print_summary("purge", figures, goals)


def cleanup(keep: bool) -> None:
    if keep:
        say(f"\n--keep-data: kept {DB}, {BASE_DB}, {MEDIA_OURS} and {MEDIA_BASE}")
        return
    started = time.perf_counter()
    with connect("postgres") as conn:
        for db in (DB, BASE_DB):
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    for media in (MEDIA_OURS, MEDIA_BASE, OUT / "ledger-export"):
        shutil.rmtree(media, ignore_errors=True)
    say(f"\nRemoved {DB}, {BASE_DB} and the media trees ({time.perf_counter() - started:.1f} s)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--expire", type=float, default=0.4, help="the share that has expired")
    parser.add_argument("--deletion-recordings", type=int, default=10_000)
    parser.add_argument("--profiles", type=int, default=None, help="default: recordings / 20")
    parser.add_argument("--ingest-rate", type=float, default=200, help="recordings a second")
    parser.add_argument("--ingest-seconds", type=float, default=180)
    parser.add_argument("--ingest-processes", type=int, default=4)
    parser.add_argument(
        "--ingest-batch",
        type=int,
        default=0,
        help="ingest through POST /recordings/batch, this many items a batch (0: single)",
    )
    parser.add_argument(
        "--lag-only", action="store_true", help="only the purge-lag run (seeds all the same)"
    )
    parser.add_argument("--db", default=DB, help="its database; the baseline's is <db>_base")
    parser.add_argument("--broker", default=BROKER)
    parser.add_argument(
        "--lag-wait", type=float, default=200, help="seconds to wait for the last purges"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="for the worker's purge")
    parser.add_argument(
        "--max-load", type=float, default=1.5, help="wait for a lower load average first"
    )
    parser.add_argument(
        "--load-wait", type=float, default=1800, help="seconds to wait for --max-load at most"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep databases and files")
    parser.add_argument(
        "--profile", type=Path, help="py-spy (--idle) one worker process into this raw file"
    )
    parser.add_argument("--profile-seconds", type=float, default=30)
    args = parser.parse_args(argv)
    if not 0 < args.expire <= 1:
        parser.error("--expire is a share in (0, 1]")
    sizes = (args.recordings, args.deletion_recordings, args.ingest_rate, args.ingest_seconds)
    if min(sizes) <= 0 or args.ingest_processes < 1:
        parser.error("sizes, rates and durations must be positive")
    return args


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--ingest-child"]:
        return ingest_child(argv[1:])
    if argv[:1] == ["--ingest-batch-child"]:
        return ingest_batch_child(argv[1:])
    args = parse_args(argv)
    use_database(args.db, args.broker)
    profiles = args.profiles or max(10, args.recordings // 20)
    plan = Plan(
        recordings=args.recordings,
        expire_permille=round(args.expire * 1000),
        deletion=args.deletion_recordings,
        profiles=profiles,
        accounts=max(1, profiles * 4 // 5),
    )
    say(f"Purge benchmark against {HOST}: {plan.marker}")
    try:
        measured = measure(args, plan)
        if isinstance(measured, LagFigures):
            report_lag(args, measured)
        else:
            report(args, plan, measured)
    except BenchError as error:
        fail(str(error))
        return 1
    finally:
        cleanup(args.keep_data)
    if isinstance(measured, LagFigures):
        if measured.problems:
            fail("; ".join(measured.problems))
            return 1
        return 0
    figures = measured
    problems = figures.ours.problems + figures.deletion.problems + figures.lag.problems
    if problems:
        fail("; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
