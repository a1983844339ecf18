"""Scale benchmark: does ten times the data cost more per request?

    .venv/bin/python bench/scale.py [--sizes 1000000,10000000] [--duration 15]
        [--connections 16] [--batches 20] [--draws 20] [--draws-dense] [--rounds 3] [--keep-db]
        [--seed-only] [--skip-purge] [--skip-spread] [--purge-rounds 1]
        [--private-cluster DIR [--port N]]

What it does, on this machine only (127.0.0.1):
1. With --private-cluster DIR, runs everything on a PostgreSQL 15 cluster of its own
   in DIR (initdb the first time, as the `postgres` OS user, trust authentication on
   127.0.0.1 only, port --port), configured as a production server for this machine
   (cluster_settings(): two fifths of the memory as shared buffers, backed by huge
   pages that the run reserves and gives back, huge_pages_reserved(); ...), started
   for the run and stopped after it (pg_ctl stop), whatever happens. Without it, the
   server on 127.0.0.1:5432 as it is.
2. Checks the free disk first (shutil.disk_usage) and refuses politely, saying what it
   needs, when the databases would not fit.
3. One database per size, `earshot_scale_<size>` (e.g. earshot_scale_1m,
   earshot_scale_10m), migrated and seeded with the set-based SQL of bench/_common.py
   (INSERT ... SELECT generate_series, not the API; the large tables' secondary
   indexes built after the load), layout "time-ordered": N recordings registered in
   time order, 2N artefacts (an audio and a transcript one per active recording), N/20
   profiles (so every size has the same 20 recordings a profile), 80% as many
   accounts, a consent state per profile and purpose. The oldest ~1% of the recordings
   (1/97) are past their retention: a contiguous slice, as in production, where what
   expires together was registered together. Another ~1% (every 97th of the rest) is
   due in a week: a slice spread over the whole table, the worst case. With --keep-db
   a database seeded completely at the same size and layout is reused.
4. For each size, in the same run:
   - bytes per recording: pg_total_relation_size (heap, TOAST and indexes) of the
     recording and artefact tables, and of every table, over the recordings;
   - on the private cluster, what the requests read is loaded into shared buffers
     first (pg_prewarm, PREWARM): the steady state of a server serving them;
   - --rounds times, each round with other random ids:
   - single eligibility: GET /api/v1/eligibility/rec-<random> through wrk (gunicorn,
     2 sync workers), req/s and p99 (the median of the rounds), one size after the
     other, alternating which goes first (other work on the machine then slows both
     alike);
   - then, with every size's server up at once, the sizes taking turns request by
     request (a burst of other work on the machine falls on both): a 10,000-id POST
     /api/v1/eligibility/batch, --batches times a size, p50 ms; then a 1,000-item POST
     /api/v1/samples (human review, reviewers in DE), --draws times a size, p50 ms
     (the review items are removed before and after), each draw right after a
     CHECKPOINT (untimed), so that each writes its locked rows' pages into the WAL
     whole, as a server that draws a few samples between two checkpoints does at any
     size (--draws-dense: without it, when dozens of draws in a row spare the small
     tables' pages that cost and not the large ones'; docs/capacity.md);
   - the CPU of the gunicorn workers and of PostgreSQL per request of each kind;
   - the floor, a reference and not a goal: 1,000 random keys probed in the
     recordings' primary key (FLOOR_SQL), 30 times a size, the sizes taking turns; at
     the largest size also over the smallest size's number of keys. What the
     simplest look-up gains at 10x on this machine, for the figures above to be read
     against (docs/capacity.md, "The floor");
   - purge, on a copy of the seeded database (CREATE DATABASE ... TEMPLATE, so the
     seeded one stays reusable; dropped after): the audio files are written only for
     the slice that expires (the rest of the storage keys name no file), then the
     project's purge loop (compliance.retention.purge.purge_expired, what `manage.py
     purge_expired` and the beat run) in one process, recordings purged a second:
     first the contiguous slice (due now), then the spread slice (purged at the time
     it falls due, on a copy of the copy whose contiguous slice is purged;
     --skip-spread leaves it out). --purge-rounds N purges each slice N times at each
     size, each time on a fresh copy, the sizes taking turns round by round, and
     reports the median round.
5. Prints each figure at every size and the ratio of the largest to the smallest size.
   A figure worse by more than 20% at the larger size FAILS.

Seeding 10,000,000 recordings takes a while on 2 cores: run it first with
`.venv/bin/python bench/scale.py --private-cluster DIR --seed-only`, then the measuring
runs with --keep-db. The exit code is 0 when goals fail, 1 when something broke.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from _common import (
    HOST,
    REPO,
    SPREAD_BASIS,
    BenchError,
    Goal,
    Http,
    LoadGenerator,
    LoadResult,
    PostgresCpu,
    SeedSpec,
    Server,
    app_env,
    connect,
    cpu_seconds,
    create_service_client,
    database_comment,
    database_url,
    fail,
    find_wrk,
    gunicorn,
    heading,
    manage,
    percentile,
    prepare_database,
    print_summary,
    say,
    use_pg_port,
)
from eligibility import BATCH_SIZE, ensure_clean, server_batch, single_mix
from sampling import api_draw

T = TypeVar("T")
OUT = REPO / "bench" / "out" / "scale"
BROKER = f"redis://{HOST}:6379/5"
BYTES_PER_RECORDING_GUESS = 1_600  # tables, indexes, WAL headroom: checked before seeding
SPARE = 4 * 1024**3
DEGRADE = 0.20  # a figure may be at most 20% worse at the larger size
LOCATION = "DE"
DRAW_SIZE = 1_000

PURGE_SCRIPT = """
import json, os, time
from datetime import datetime
from compliance.retention.purge import purge_expired
at = datetime.fromisoformat(os.environ["PURGE_AT"]) if os.environ.get("PURGE_AT") else None
started = time.perf_counter()
artefacts = recordings = batches = 0
while True:
    run = purge_expired(now=at, budget_seconds=3600.0)
    artefacts += run.purged
    recordings += run.recordings_purged
    batches += run.batches
    if not run.more:
        break
print(json.dumps({"artefacts": artefacts, "recordings": recordings, "batches": batches,
                  "seconds": time.perf_counter() - started}))
"""


# --------------------------------------------------------------------------- private cluster

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRIVATE_PORT = 18310
CLUSTER_USER = "postgres"  # the OS user that owns the data directory and runs the server
INCLUDE = "include_if_exists = 'earshot-bench.conf'"


def cluster_settings(port: int, datadir: Path) -> dict[str, str]:
    """A production server's settings for this machine (docs/capacity.md says why each).

    Durable as in production: fsync, full_page_writes and synchronous_commit stay on.
    """
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024**2
    return {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{datadir}'",
        "max_connections": "100",
        "shared_buffers": f"{ram_mb * 2 // 5}MB",
        "effective_cache_size": f"{ram_mb * 3 // 4}MB",
        "work_mem": "32MB",
        "maintenance_work_mem": "1GB",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "wal_buffers": "64MB",
        "max_wal_size": "16GB",
        "min_wal_size": "2GB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "jit": "off",
        # A draw's row locks and inserts touch pages all over tables ten times larger:
        # the first change of a page after a checkpoint writes the whole page to the
        # WAL, and compressed that WAL is half as large (docs/capacity.md).
        "wal_compression": "lz4",
        "log_checkpoints": "on",
        # "try": on when the kernel has huge pages to give (huge_pages_reserved() asks
        # for them), the usual 4 kB pages otherwise; the run says which it got.
        "huge_pages": "try",
    }


NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")


@contextmanager
def huge_pages_reserved(datadir: Path) -> Iterator[bool]:
    """Reserve the huge pages the cluster's shared memory needs (vm.nr_hugepages, as
    PostgreSQL's documentation describes), for the run, and give them back after it.

    Why: at 10M recordings the requests touch some 6 GB of shared buffers at random. With
    4 kB pages nearly every page access also misses the TLB, and walking the page tables
    of a 6 GB mapping costs more than of the 0.4 GB touched at 1M: a cost of the
    server's configuration, not of the design, that production servers avoid with huge
    pages. Without the right to set vm.nr_hugepages (not root, a read-only /proc/sys),
    the run goes on with 4 kB pages and says so.
    """
    datadir = datadir.resolve()
    asked = _as_cluster_user(
        str(PG_BIN / "postgres"), "-D", str(datadir), "-C", "shared_memory_size_in_huge_pages"
    )
    try:
        needed = int(asked.stdout.strip())
        before = int(NR_HUGEPAGES.read_text())
        NR_HUGEPAGES.write_text(f"{before + needed}\n")
    except (ValueError, OSError) as error:
        say(f"  huge pages: not reserved ({error or asked.stderr.strip()}); 4 kB pages")
        yield False
        return
    got = int(NR_HUGEPAGES.read_text()) - before
    say(f"  huge pages: {got:,} of 2 MB reserved for the cluster ({needed:,} needed)")
    try:
        yield got >= needed
    finally:
        NR_HUGEPAGES.write_text(f"{before}\n")


def huge_pages_taken() -> int:
    """Huge pages in use or promised to a mapping (/proc/meminfo): after the cluster
    started, zero means that PostgreSQL fell back to 4 kB pages (huge_pages = try)."""
    info = dict(
        line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line
    )
    count = {
        k: int(info.get(k, "0").split()[0])
        for k in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd")
    }
    return count["HugePages_Total"] - count["HugePages_Free"] + count["HugePages_Rsvd"]


def _as_cluster_user(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", CLUSTER_USER, "--", *command],
        capture_output=True,
        text=True,
        check=False,
    )


@contextmanager
def private_cluster(
    datadir: Path, port: int, extra: dict[str, str] | None = None
) -> Iterator[None]:
    """A PostgreSQL 15 cluster of the bench's own in `datadir` (made with initdb the
    first time, trust authentication on 127.0.0.1 only), started with
    cluster_settings() and stopped again (pg_ctl stop) whatever happens. Every
    connection of the bench and of the app goes to it meanwhile. `extra`: settings
    beside those (bench/purge_phases.py loads pg_stat_statements)."""
    if not (PG_BIN / "pg_ctl").exists():
        raise BenchError(f"--private-cluster needs PostgreSQL 15's binaries in {PG_BIN}")
    datadir = datadir.resolve()
    if not (datadir / "PG_VERSION").exists():
        datadir.mkdir(parents=True, exist_ok=True)
        shutil.chown(datadir, CLUSTER_USER, CLUSTER_USER)
        datadir.chmod(0o700)
        say(f"initdb {datadir}")
        done = _as_cluster_user(
            str(PG_BIN / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        if done.returncode != 0:
            raise BenchError(f"initdb failed:\n{done.stdout}{done.stderr}")
    conf = datadir / "postgresql.conf"
    if INCLUDE not in conf.read_text():
        with conf.open("a") as out:
            out.write(f"\n{INCLUDE}\n")
    settings = cluster_settings(port, datadir) | (extra or {})
    ours = datadir / "earshot-bench.conf"
    ours.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    shutil.chown(ours, CLUSTER_USER, CLUSTER_USER)
    ctl = str(PG_BIN / "pg_ctl")
    if _as_cluster_user(ctl, "status", "-D", str(datadir)).returncode == 0:
        raise BenchError(
            f"a server already runs on {datadir}; stop it first:"
            f" runuser -u {CLUSTER_USER} -- {ctl} stop -D {datadir}"
        )
    log = datadir / "server.log"
    say(
        f"Starting the private cluster {datadir} on {HOST}:{port}: "
        + ", ".join(f"{k}={v}" for k, v in settings.items() if k not in ("listen_addresses",
                    "port", "unix_socket_directories"))
    )  # fmt: skip
    with huge_pages_reserved(datadir):
        done = _as_cluster_user(ctl, "start", "-D", str(datadir), "-l", str(log), "-w", "-t", "300")
        if done.returncode != 0:
            raise BenchError(f"pg_ctl start failed:\n{done.stdout}{done.stderr}")
        taken = huge_pages_taken()
        say(
            f"  huge pages in use: {taken:,}"
            if taken
            else "  huge pages: none in use; the cluster runs on 4 kB pages"
        )
        use_pg_port(port)
        try:
            yield
        finally:
            say(f"Stopping the private cluster {datadir}")
            done = _as_cluster_user(
                ctl, "stop", "-D", str(datadir), "-m", "fast", "-w", "-t", "600"
            )
            if done.returncode != 0:
                say(f"pg_ctl stop failed ({done.returncode}): {done.stdout}{done.stderr}")


def label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    if size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def db_name(size: int) -> str:
    return f"earshot_scale_{label(size)}"


def spec_for(size: int) -> SeedSpec:
    profiles = max(1, size // 20)
    return SeedSpec(
        recordings=size,
        profiles=profiles,
        accounts=max(1, profiles * 4 // 5),
        layout="time-ordered",
    )


def env_for(size: int) -> dict[str, str]:
    env = app_env(db_name(size))
    env.update(MEDIA_ROOT=str(OUT / f"media_{label(size)}"), CELERY_BROKER_URL=BROKER)
    return env


def check_disk(sizes: Sequence[int], keep: bool) -> None:
    """Refuse politely when the databases to seed would not fit."""
    to_seed = [
        s for s in sizes if not (keep and _reusable(database_comment(db_name(s)), spec_for(s)))
    ]
    # and the copy of the largest that the purge works on
    need = (sum(to_seed) + max(sizes)) * BYTES_PER_RECORDING_GUESS + SPARE
    OUT.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(OUT).free
    seeding = ", ".join(map(label, to_seed)) or "nothing"
    say(
        f"Disk: {free / 1024**3:.1f} GiB free; seeding {seeding}"
        f" needs about {need / 1024**3:.1f} GiB (PostgreSQL's data directory is on the same disk)"
    )
    if free < need:
        raise BenchError(
            f"not enough disk: {need / 1024**3:.1f} GiB needed, {free / 1024**3:.1f} GiB free;"
            " free some space or pass smaller --sizes"
        )


def _reusable(comment: str | None, spec: SeedSpec) -> bool:
    return comment == spec.marker


def prepare(size: int, keep: bool) -> float | None:
    spec, db, env = spec_for(size), db_name(size), env_for(size)
    heading(f"Database {db}: {spec.marker}")
    return prepare_database(db, spec, env, keep=keep)


# What the measured requests read (their plans, docs/capacity.md "At 10x the data"):
# the recordings' heap (the draw probes by id), the rule's covering indexes, the index
# by which the draw finds the transcript it shows, the artefacts' heap (the draw reads
# the transcript it hands out from it, one random page an item) and the small tables
# whole; not the indexes only the writes use. At 10M that is 6.3 GB, which the shared
# buffers (cluster_settings) hold.
# What the purge changes, each with all its indexes (every one of which an update of a
# row writes to): loaded into shared buffers before a purge on the private cluster, at
# every size alike. A fresh copy of the 10M database (9 GB) sits in the OS cache or on
# disk by chance, beside two other copies, and a spread purge's reads from disk took
# 0.1-30 s of its 30-50 (track_io_timing): the figure measured the cache, not the
# purge (docs/capacity.md, "The purge at 10x").
PURGE_PREWARM = ("recordings_recording", "recordings_artefact")

PREWARM = (
    "recordings_artefact",
    "recordings_recording",
    "recordings_recording_pkey",
    "recording_external_id_cover",
    "artefact_one_audio",
    "artefact_one_transcript",
    "accounts_profile",
    "profile_id_cover",
    "accounts_account",
    "account_id_cover",
    "consent_consentstate",
    "consentstate_cover",
    "consent_consentdefault",
    "transfers_transferrule",
)


def prewarm(size: int) -> None:
    """Load what the requests read into shared buffers (pg_prewarm), as on a server that
    has been serving them: a measurement of the steady state, not of a cold start."""
    step = time.perf_counter()
    with connect(db_name(size)) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        pages = 0
        for name in PREWARM:
            if conn.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is None:
                say(f"  prewarm: no relation {name} (renamed? update PREWARM)")
                continue
            pages += conn.execute("SELECT pg_prewarm(%s::regclass)", [name]).fetchone()[0]
    say(
        f"  prewarmed {pages * 8 / 1024:,.0f} MiB into shared buffers:"
        f" {time.perf_counter() - step:.1f} s"
    )


# --------------------------------------------------------------------------- figures


@dataclass
class SizeFigures:
    size: int
    seeding_s: float | None = None
    bytes_core: float = 0.0  # recordings + artefacts tables, with indexes and TOAST
    bytes_all: float = 0.0  # every table of the schema
    table_bytes: dict[str, int] = field(default_factory=dict)
    singles: list[LoadResult] = field(default_factory=list)
    batch_ms: list[float] = field(default_factory=list)
    draw_ms: list[float] = field(default_factory=list)
    purge: dict[str, float] | None = None  # the contiguous slice (the median round)
    purge_rates: list[float] = field(default_factory=list)  # every round's
    purge_spread: dict[str, float] | None = None  # the spread slice (the median round)
    purge_spread_rates: list[float] = field(default_factory=list)  # every round's
    floor_ms: list[float] = field(default_factory=list)  # FLOOR_SQL over all the keys
    floor_narrow_ms: list[float] = field(default_factory=list)  # over the smallest size's
    # CPU seconds and requests: name -> [gunicorn workers, PostgreSQL (backends and
    # writers), requests], summed over the rounds
    cpu: dict[str, list[float]] = field(default_factory=dict)

    @property
    def single_rps(self) -> float | None:
        return percentile([r.rps for r in self.singles], 50) if self.singles else None

    @property
    def single_p99(self) -> float | None:
        return percentile([r.p99_ms for r in self.singles], 50) if self.singles else None

    def cpu_ms(self) -> dict[str, tuple[float, float]]:
        return {k: (a / n * 1000, p / n * 1000) for k, (a, p, n) in self.cpu.items() if n}

    @property
    def purge_rate(self) -> float | None:
        return _rate(self.purge)

    @property
    def purge_spread_rate(self) -> float | None:
        return _rate(self.purge_spread)


def _rate(run: dict[str, float] | None) -> float | None:
    if not run or not run["seconds"]:
        return None
    return run["recordings"] / run["seconds"]


def measure_bytes(size: int, f: SizeFigures) -> None:
    with connect(db_name(size)) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 2 DESC"
        ).fetchall()
        recordings = conn.execute("SELECT count(*) FROM recordings_recording").fetchone()[0]
    f.table_bytes = {name: int(total) for name, total in rows}
    core = sum(v for k, v in f.table_bytes.items() if k.startswith("recordings_"))
    f.bytes_core = core / recordings
    f.bytes_all = sum(f.table_bytes.values()) / recordings
    top = ", ".join(f"{k} {v / 1024**2:,.0f} MiB" for k, v in list(f.table_bytes.items())[:5])
    say(f"  bytes per recording: recordings tables {f.bytes_core:,.0f}, all {f.bytes_all:,.0f}")
    say(f"  largest tables (with indexes): {top}")


def _counted(
    f: SizeFigures,
    name: str,
    server: Server,
    pg: PostgresCpu,
    requests: Callable[[T], int],
    action: Callable[[], T],
) -> T:
    """`action`'s result; its CPU, of the app (`server`'s workers) and of PostgreSQL
    (`pg`: the size's database), and its `requests`, added to `f`'s under `name`."""
    pg.poll()
    before_pg, before_app = pg.seconds, cpu_seconds(server.workers)
    result = action()
    pg.poll()
    total = f.cpu.setdefault(name, [0.0, 0.0, 0])
    total[0] += cpu_seconds(server.workers) - before_app
    total[1] += pg.seconds - before_pg
    total[2] += requests(result)
    return result


def measure_single(size: int, f: SizeFigures, args: argparse.Namespace, gen: LoadGenerator) -> None:
    """Single eligibility under wrk's load, on a server of this size alone."""
    db, env = db_name(size), env_for(size)
    key = create_service_client(env, db, "bench-scale", ["eligibility:read"])
    with connect("postgres") as pg_conn, gunicorn(env) as server:
        mix = single_mix(size)
        ensure_clean(gen.run(server.port, key, mix, args.warmup, args.connections))
        pg = PostgresCpu(pg_conn, db)
        single = _counted(
            f,
            "single eligibility",
            server,
            pg,
            lambda r: r.requests,
            lambda: ensure_clean(gen.run(server.port, key, mix, args.duration, args.connections)),
        )
        f.singles.append(single)
        say(f"  single eligibility at {label(size)}: {single.line()}")
        server.check_workers()


@dataclass
class _Side:
    """One size's server, client and counters during the interleaved requests."""

    f: SizeFigures
    server: Server
    client: Http
    pg: PostgresCpu
    batches: list[list[str]]


def in_turn(items: list[T], n: int) -> list[T]:
    """`items` in order for an even `n`, reversed for an odd one: taking turns at going
    first, so that a burst of other work on the machine slows each alike."""
    return items if n % 2 == 0 else items[::-1]


def _taking_turns(
    sides: list[_Side],
    round_: int,
    count: int,
    name: str,
    request: Callable[[_Side, int], float],
    before: Callable[[], object] | None = None,
) -> dict[int, list[float]]:
    """`count` requests a size, the sizes taking turns request by request: each one's
    milliseconds (`request(side, n)`), by size, its CPU counted under `name`; `before`
    runs before each request, neither timed nor counted."""
    times: dict[int, list[float]] = {side.f.size: [] for side in sides}
    for n in range(count):
        for side in in_turn(sides, n + round_):
            if before is not None:
                before()
            one = functools.partial(request, side, n)
            times[side.f.size].append(
                _counted(side.f, name, side.server, side.pg, lambda _: 1, one)
            )
    for side in sides:
        ms = " ".join(f"{t:.0f}" for t in times[side.f.size])
        say(f"  {name} at {label(side.f.size)}, ms: {ms}")
    return times


def measure_interleaved(figures: list[SizeFigures], args: argparse.Namespace, round_: int) -> None:
    """The batches, then the draws, one request at a time, the sizes taking turns (and
    which goes first alternating): every size's server is up meanwhile, so that what
    else the machine does in those seconds slows every size alike. Minutes between
    the sizes' requests made a run's ratio swing by a third (docs/capacity.md)."""
    with contextlib.ExitStack() as stack:
        pg_conn = stack.enter_context(connect("postgres"))
        sides: list[_Side] = []
        for f in figures:
            db, env = db_name(f.size), env_for(f.size)
            with connect(db) as conn:
                conn.execute("DELETE FROM sampling_reviewitem")
            key = create_service_client(
                env, db, "bench-scale", ["eligibility:read", "samples:draw"]
            )
            server = stack.enter_context(gunicorn(env))
            client = Http(server.port, key, timeout=300)
            stack.callback(client.close)
            rng = random.Random(f.size * 100 + round_)  # other ids each round
            batches = [
                [f"rec-{rng.randint(1, f.size)}" for _ in range(BATCH_SIZE)]
                for _ in range(args.batches + 1)  # the first is the warm-up
            ]
            sides.append(_Side(f, server, client, PostgresCpu(pg_conn, db), batches))
        for side in sides:  # warm-up
            server_batch(side.client, side.batches[0])
            api_draw(side.client, DRAW_SIZE, LOCATION)

        batch_ms = _taking_turns(
            sides, round_, args.batches, "10k batch",
            lambda side, n: server_batch(side.client, side.batches[n + 1])[0],
        )  # fmt: skip
        draw_ms = _taking_turns(
            sides, round_, args.draws, "1,000-item draw",
            lambda side, _: api_draw(side.client, DRAW_SIZE, LOCATION)[0],
            None if args.draws_dense else lambda: pg_conn.execute("CHECKPOINT"),
        )  # fmt: skip
        for side in sides:
            side.f.batch_ms += batch_ms[side.f.size]
            side.f.draw_ms += draw_ms[side.f.size]
            side.server.check_workers()
            with connect(db_name(side.f.size)) as conn:
                conn.execute("DELETE FROM sampling_reviewitem")


# The floor: a reference, not a goal. The simplest look-up there is, FLOOR_KEYS random
# keys probed in the recordings' primary key (an index-only scan of one B-tree, as deep
# at 1M as at 10M here, the same pages read a probe), timed at every size the same way,
# the sizes taking turns. What it gains at the larger size is this machine's own
# price for ten times the data (the touched pages spread over ten times the memory),
# which no schema avoids: the growth of the requests above it is to be read against it
# (docs/capacity.md, "The floor"). At the largest size it is timed twice: over all the
# keys, and over the smallest size's number of keys (the same index, its memory
# touched no more widely than at the smallest size).
FLOOR_SQL = "SELECT count(*) FROM recordings_recording WHERE id = ANY(%s::bigint[])"
FLOOR_KEYS = 1_000
FLOOR_QUERIES = 30  # a size a round


def measure_floor(figures: list[SizeFigures], round_: int) -> None:
    """FLOOR_SQL, FLOOR_QUERIES times a size, prepared, the sizes taking turns query by
    query; at the largest size also over the smallest size's keys."""
    smallest = figures[0].size
    rng = random.Random(round_)
    with contextlib.ExitStack() as stack:
        conns = {f.size: stack.enter_context(connect(db_name(f.size))) for f in figures}
        kinds = [(f, f.size, f.floor_ms) for f in figures]
        if len(figures) > 1:
            kinds.append((figures[-1], smallest, figures[-1].floor_narrow_ms))
        for size, conn in conns.items():  # prepared, and its plan checked
            plan = conn.execute("EXPLAIN (COSTS OFF) " + FLOOR_SQL, [[1, 2]]).fetchall()
            if not any("Index Only Scan" in line for (line,) in plan):
                say(f"  floor at {label(size)}: not an index-only scan: {plan}")
            for _ in range(3):
                conn.execute(FLOOR_SQL, [[1]], prepare=True)
        times: dict[int, list[float]] = {id(out): [] for _, _, out in kinds}
        for n in range(FLOOR_QUERIES):
            for f, keys, out in in_turn(kinds, n + round_):
                ids = [rng.randint(1, keys) for _ in range(FLOOR_KEYS)]
                step = time.perf_counter()
                conns[f.size].execute(FLOOR_SQL, [ids], prepare=True).fetchone()
                times[id(out)].append((time.perf_counter() - step) * 1000)
        for f, keys, out in kinds:
            out += times[id(out)]
            say(
                f"  floor at {label(f.size)}, {FLOOR_KEYS:,} probes over {label(keys)} keys:"
                f" p50 {percentile(times[id(out)], 50):.2f} ms"
            )


def write_expiring_files(db: str, size: int, at: str | None) -> int:
    """The audio files of the artefacts due at `at` (an ISO time; None: now), and of no
    other."""
    media = OUT / f"media_{label(size)}"
    shutil.rmtree(media, ignore_errors=True)
    with connect(db) as conn:
        keys = [
            k
            for (k,) in conn.execute(
                "SELECT storage_key FROM recordings_artefact WHERE state = 'active'"
                " AND storage_key <> '' AND expires_at <= coalesce(%s::timestamptz, now())",
                [at],
            )
        ]
    made: set[Path] = set()
    for key in keys:
        path = media / key
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(b"RIFF" + bytes(296))
    return len(keys)


def purge_once(
    db: str, size: int, slice_: str, at: str | None, prewarm: bool = False
) -> dict[str, float]:
    """Purge what is due at `at` (None: now) in `db` with the project's purge loop, in
    one process; its counts and seconds. With `prewarm`, the tables the purge changes
    and their indexes are loaded into shared buffers first (PURGE_PREWARM)."""
    files = write_expiring_files(db, size, at)
    with connect(db) as conn:
        due, other = conn.execute(
            "SELECT count(DISTINCT recording_id),"
            " count(*) FILTER (WHERE expiry_basis <> %s AND %s::timestamptz IS NOT NULL)"
            " FROM recordings_artefact WHERE state = 'active'"
            " AND expires_at <= coalesce(%s::timestamptz, now())",
            [SPREAD_BASIS, at, at],
        ).fetchone()
        conn.execute("VACUUM (ANALYZE) recordings_artefact")
        conn.execute("CHECKPOINT")
        if prewarm:
            step = time.perf_counter()
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            (pages,) = conn.execute(
                "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c WHERE c.oid = ANY(%(t)s::regclass[])"
                " OR c.oid IN (SELECT indexrelid FROM pg_index"
                " WHERE indrelid = ANY(%(t)s::regclass[]))",
                {"t": list(PURGE_PREWARM)},
            ).fetchone()
            say(
                f"  purge, {slice_} slice: prewarmed {pages * 8 / 1024:,.0f} MiB"
                f" ({time.perf_counter() - step:.1f} s)"
            )
    if other:
        raise BenchError(f"{other} artefacts besides the spread slice are due at {at}")
    say(f"  purge, {slice_} slice: {due:,} recordings due, {files:,} audio files written")
    env = dict(env_for(size), DATABASE_URL=database_url(db), PURGE_AT=at or "")
    out = manage(env, "shell", "-c", PURGE_SCRIPT)
    run = json.loads(out.strip().splitlines()[-1])
    rate = run["recordings"] / run["seconds"] if run["seconds"] else 0.0
    say(
        f"  purge, {slice_} slice: {run['recordings']:,.0f} recordings"
        f" ({run['artefacts']:,.0f} artefacts) in {run['seconds']:.1f} s = {rate:,.0f} recordings/s"
    )
    if run["recordings"] < due:
        raise BenchError(f"the purge left {due - run['recordings']:,} of {due:,} recordings due")
    media = OUT / f"media_{label(size)}"
    left = list(media.rglob("*.wav")) + list(media.rglob("*.opus"))
    if left:
        raise BenchError(f"{len(left)} expired audio files left after the purge, e.g. {left[0]}")
    return run


@contextmanager
def database_copy(template: str, copy: str) -> Iterator[str]:
    """`copy`, a fresh copy of the database `template` (CREATE DATABASE ... TEMPLATE, so
    the template stays as it is); dropped on exit."""
    with connect("postgres") as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    try:
        yield copy
    finally:
        with connect("postgres") as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


@contextmanager
def purged_copy(size: int, prewarm: bool) -> Iterator[tuple[str, datetime, dict[str, float]]]:
    """A copy of the seeded database (so that it stays reusable) whose contiguous slice
    (the oldest recordings, the realistic case) is purged; yields the copy's name, when
    the spread slice falls due and the purge's figures. Dropped on exit."""
    db = db_name(size)
    step = time.perf_counter()
    with database_copy(db, f"{db}_purge") as copy:
        say(f"  copied {db} to {copy}: {time.perf_counter() - step:.1f} s")
        run = purge_once(copy, size, "contiguous", None, prewarm)
        with connect(copy) as conn:
            (due,) = conn.execute(
                "SELECT max(expires_at) + interval '1 second' FROM recordings_artefact"
                " WHERE expiry_basis = %s",
                [SPREAD_BASIS],
            ).fetchone()
        yield copy, due, run


def purge_contiguous_once(size: int, name: str, prewarm: bool) -> dict[str, float]:
    """The contiguous slice once more, on a fresh copy of the seeded database."""
    with database_copy(db_name(size), f"{db_name(size)}_contiguous") as copy:
        return purge_once(copy, size, name, None, prewarm)


def _median_run(runs: list[dict[str, float]]) -> tuple[dict[str, float], list[float]]:
    """The median round of `runs` by rate, and every round's rate, slowest first."""
    done = sorted(runs, key=lambda run: _rate(run) or 0.0)
    return done[len(done) // 2], [_rate(run) or 0.0 for run in done]


def purge_spread_once(
    size: int, copy: str, due: datetime, name: str, prewarm: bool
) -> dict[str, float]:
    """The spread slice (the worst case), purged at the time it falls due, on a fresh
    copy of `copy`."""
    with database_copy(copy, f"{db_name(size)}_spread") as again:
        return purge_once(again, size, name, due.isoformat(), prewarm)


def measure_purge(
    figures: list[SizeFigures], spread: bool, rounds: int = 1, prewarm: bool = False
) -> None:
    """The purge at every size: the contiguous slice, then, with `spread`, the spread
    slice, each `rounds` times a size on a fresh copy, the median round reported. The
    rounds after the first take turns between the sizes (which goes first
    alternating): run one size's rounds after the other's, the machine's drift over
    those minutes moved the ratio by a fifth (docs/capacity.md), and a single round of
    the contiguous slice, 2-3 s at the smaller size, measured 0.76x and 0.93x in two
    runs of the same code."""
    with contextlib.ExitStack() as stack:
        copies = {}
        contiguous: dict[int, list[dict[str, float]]] = {}
        for f in figures:
            heading(f"Purging {db_name(f.size)}")
            copy, due, run = stack.enter_context(purged_copy(f.size, prewarm))
            copies[f.size] = (copy, due)
            contiguous[f.size] = [run]
        for n in range(1, rounds):
            for f in in_turn(figures, n):
                name = f"contiguous (round {n + 1} of {rounds}) at {label(f.size)}"
                contiguous[f.size].append(purge_contiguous_once(f.size, name, prewarm))
        for f in figures:
            f.purge, f.purge_rates = _median_run(contiguous[f.size])
        if not spread:
            return
        runs: dict[int, list[dict[str, float]]] = {f.size: [] for f in figures}
        for n in range(rounds):
            for f in in_turn(figures, n):
                copy, due = copies[f.size]
                name = f"spread (round {n + 1} of {rounds}) at {label(f.size)}"
                runs[f.size].append(purge_spread_once(f.size, copy, due, name, prewarm))
        for f in figures:
            f.purge_spread, f.purge_spread_rates = _median_run(runs[f.size])


# --------------------------------------------------------------------------- report


def ratio_line(name: str, small: float | None, large: float | None, higher_better: bool):
    if small is None or large is None or not small:
        return (name, "n/a", None)
    ratio = large / small
    worse = (1 - ratio) if higher_better else (ratio - 1)
    return (name, f"{small:,.1f} -> {large:,.1f} ({ratio:.2f}x)", worse <= DEGRADE)


def report(figures: list[SizeFigures]) -> None:
    small, large = figures[0], figures[-1]
    rows = [
        ratio_line(
            "single eligibility req/s",
            small.single_rps,
            large.single_rps,
            True,
        ),
        ratio_line(
            "single eligibility p99 ms (median of rounds)",
            small.single_p99,
            large.single_p99,
            False,
        ),
        ratio_line(
            "10k-id batch p50 ms",
            small.batch_ms and percentile(small.batch_ms, 50),
            large.batch_ms and percentile(large.batch_ms, 50),
            False,
        ),
        ratio_line(
            "1,000-item draw p50 ms",
            small.draw_ms and percentile(small.draw_ms, 50),
            large.draw_ms and percentile(large.draw_ms, 50),
            False,
        ),
        ratio_line(
            "purge recordings/s (contiguous slice; median of rounds)",
            small.purge_rate,
            large.purge_rate,
            True,
        ),
        ratio_line(
            "purge recordings/s (spread slice, worst case; median of rounds)",
            small.purge_spread_rate,
            large.purge_spread_rate,
            True,
        ),
        ratio_line(
            "bytes/recording (recordings tables)", small.bytes_core, large.bytes_core, False
        ),
        ratio_line("bytes/recording (all tables)", small.bytes_all, large.bytes_all, False),
    ]
    lines = [("sizes", f"{label(small.size)} -> {label(large.size)} recordings")]
    for f in figures:
        seeded = "reused" if f.seeding_s is None else f"{f.seeding_s:,.0f} s"
        lines.append((f"seeding {label(f.size)}", seeded))
    lines += [(name, figure) for name, figure, _ in rows]
    floor = f"floor: {FLOOR_KEYS:,} primary-key probes p50 ms (reference, not a goal)"
    narrow = f"floor at {label(large.size)} over {label(small.size)} of its keys"
    floors = [(floor, large.floor_ms), (narrow, large.floor_narrow_ms)]
    for name, at_large in floors:
        if small.floor_ms and at_large:
            small_ms, large_ms = percentile(small.floor_ms, 50), percentile(at_large, 50)
            lines.append(ratio_line(name, small_ms, large_ms, False)[:2])
    for slice_, rounds in (("contiguous", "purge_rates"), ("spread", "purge_spread_rates")):
        for f in figures:
            rates = getattr(f, rounds)
            if len(rates) > 1:
                listed = ", ".join(f"{r:,.0f}" for r in sorted(rates))
                lines.append((f"{slice_} purge rounds at {label(f.size)}, recordings/s", listed))
    for f in figures:
        for name, (app_ms, pg_ms) in f.cpu_ms().items():
            lines.append(
                (f"CPU per {name} at {label(f.size)}", f"app {app_ms:.2f} ms + PG {pg_ms:.2f} ms")
            )
    goals = [
        Goal(f"{name}: within 20% at {large.size // small.size}x", figure, ok)
        for name, figure, ok in rows
        if ok is not None
    ]
    print_summary("scale", lines, goals)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="recordings, smallest first")
    parser.add_argument("--duration", type=float, default=15, help="seconds of wrk load")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--batches", type=int, default=20, help="10k-id eligibility batches a size a round"
    )
    parser.add_argument("--draws", type=int, default=20, help="1,000-item sample draws, likewise")
    parser.add_argument(
        "--draws-dense",
        action="store_true",
        help="no CHECKPOINT before each draw: the draws then share their checkpoint cycles,"
        " which spares the smaller tables' pages their full-page images (docs/capacity.md)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="HTTP rounds, sizes alternating")
    parser.add_argument("--keep-db", action="store_true", help="reuse seeded databases")
    parser.add_argument("--seed-only", action="store_true", help="seed, measure nothing")
    parser.add_argument("--skip-purge", action="store_true", help="measure no purge")
    parser.add_argument(
        "--purge-rounds",
        type=int,
        default=1,
        help="purges of each slice at each size, each on a fresh copy; the median reported",
    )
    parser.add_argument(
        "--skip-spread", action="store_true", help="purge the contiguous slice only"
    )
    parser.add_argument(
        "--private-cluster",
        type=Path,
        metavar="DIR",
        help="run the databases on a PostgreSQL 15 cluster of the bench's own in DIR"
        " (initdb the first time), configured as a production server for this machine,"
        " started for the run and stopped after it",
    )
    parser.add_argument("--port", type=int, default=PRIVATE_PORT, help="the private cluster's")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    if len(args.sizes) < 1 or min(args.sizes) < 1000:
        parser.error("--sizes: at least one size of at least 1000 recordings")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    say(f"Scale benchmark against {HOST}: sizes {', '.join(map(label, args.sizes))}")
    try:
        with (
            private_cluster(args.private_cluster, args.port)
            if args.private_cluster
            else nullcontext()
        ):
            figures = run(args)
    except BenchError as error:
        fail(str(error))
        return 1
    if figures:
        report(figures)
    return 0


def run(args: argparse.Namespace) -> list[SizeFigures]:
    """The figures at every size; none with --seed-only."""
    check_disk(args.sizes, args.keep_db)
    figures = [SizeFigures(size) for size in args.sizes]
    for f in figures:
        f.seeding_s = prepare(f.size, args.keep_db)
        measure_bytes(f.size, f)
    if args.seed_only:
        return []
    if args.private_cluster:
        for f in figures:
            prewarm(f.size)
    gen = LoadGenerator(find_wrk())
    for round_ in range(args.rounds):
        heading(f"Round {round_ + 1} of {args.rounds}")
        # alternating which size goes first, so that a burst of other work on the
        # machine slows both alike
        for f in in_turn(figures, round_):
            measure_single(f.size, f, args, gen)
        measure_interleaved(figures, args, round_)
        measure_floor(figures, round_)
    if not args.skip_purge:
        measure_purge(
            figures,
            spread=not args.skip_spread,
            rounds=args.purge_rounds,
            prewarm=bool(args.private_cluster),
        )
    return figures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
