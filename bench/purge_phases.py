"""Where the spread purge's time goes, at each size: repeatable rounds on fresh copies.

    .venv/bin/python bench/purge_phases.py --private-cluster /work/bench-pg/scale
        [--sizes 1000000,10000000] [--rounds 2] [--statements]

Needs the databases `bench/scale.py` seeded (earshot_scale_<size>; migrated first, as
`scale.py --keep-db` does). For each size: a
copy of the seeded database with its contiguous slice purged (`<db>_spread`, made
once per run), then `--rounds` times, sizes alternating: a fresh copy of that, the
spread slice's audio files written, VACUUM (ANALYZE), CHECKPOINT, and the project's
purge loop at the time the spread slice falls due, in one process, instrumented:

- wall seconds in each step of a batch: the claim (`_claim`), the finish's locks
  (`_lock_batch`), the artefacts' tombstones (`_tombstone_artefacts`, which waits for
  the unlink of its chunk), the recordings' tombstones, the history, the ledger;
- CPU of the purge's Python process and of its PostgreSQL backend (/proc);
- pg_stat_wal (records, full-page images, bytes), reset before the purge;
- per relation: buffers read from outside shared buffers, and hit (pg_statio);
- with --statements (the cluster then loads pg_stat_statements, a restart):
  per statement, time, blocks hit/read/dirtied/written, WAL full-page images and bytes.

The purge runs on copies; the seeded databases are left as they are.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BenchError, connect, database_url, fail, heading, manage, say
from scale import (
    PRIVATE_PORT,
    SPREAD_BASIS,
    db_name,
    env_for,
    label,
    private_cluster,
    purge_once,
    write_expiring_files,
)

PURGE_SCRIPT = r"""
import json, os, time
from datetime import datetime
from pathlib import Path
from django.db import connection
import compliance.retention.purge as P

CLK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK

timers = {}
def wrap(name, fn):
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timers[name] = timers.get(name, 0.0) + time.perf_counter() - t
    return timed

for name in ("_claim", "_finish", "_lock_batch", "_tombstone_artefacts", "recordings_tombstone",
             "_purge_history", "ledger_append", "_max_lag"):
    if hasattr(P, name):
        setattr(P, name, wrap(name, getattr(P, name)))

at = datetime.fromisoformat(os.environ["PURGE_AT"])
with connection.cursor() as c:
    c.execute("SELECT pg_backend_pid()")
    (backend,) = c.fetchone()
    if os.environ.get("AUTO_EXPLAIN"):
        c.execute("LOAD 'auto_explain'")
        c.execute("SET auto_explain.log_min_duration = 0")
        c.execute("SET auto_explain.log_analyze = on")
        c.execute("SET auto_explain.log_buffers = on")
        c.execute("SET auto_explain.log_wal = on")
        c.execute("SET auto_explain.log_timing = off")
        c.execute("SET auto_explain.log_nested_statements = on")
db0, py0 = cpu(backend), time.process_time()
started = time.perf_counter()
artefacts = recordings = batches = 0
while True:
    run = P.purge_expired(now=at, budget_seconds=3600.0)
    artefacts += run.purged
    recordings += run.recordings_purged
    batches += run.batches
    if not run.more:
        break
seconds = time.perf_counter() - started
print(json.dumps({"artefacts": artefacts, "recordings": recordings, "batches": batches,
                  "seconds": seconds, "db_cpu": cpu(backend) - db0,
                  "py_cpu": time.process_time() - py0, "steps": timers}))
"""

RELATIONS = (
    "recordings_artefact",
    "recordings_artefact_pkey",
    "artefact_one_audio",
    "artefact_one_transcript",
    "artefact_storage_key_owner",
    "artefact_recording",
    "artefact_due",
    "artefact_purging",
    "recordings_recording",
    "recordings_recording_pkey",
    "recording_external_id_unique",
    "recording_external_id_cover",
    "recording_profile_time",
    "auditlog_logentry",
)


def statio(db: str) -> dict[str, tuple[int, int]]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT relname, heap_blks_read, heap_blks_hit FROM pg_statio_user_tables"
            " UNION ALL SELECT indexrelname, idx_blks_read, idx_blks_hit"
            " FROM pg_statio_user_indexes"
        ).fetchall()
    return {name: (read or 0, hit or 0) for name, read, hit in rows}


def one_round(size: int, source: str, at: str, statements: bool, explain: bool) -> dict:
    copy = f"{db_name(size)}_run"
    with connect("postgres") as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}" STRATEGY FILE_COPY')
    try:
        files = write_expiring_files(copy, size, at)
        with connect(copy) as conn:
            conn.execute("VACUUM (ANALYZE) recordings_artefact")
            conn.execute("CHECKPOINT")
            conn.execute("SELECT pg_stat_reset()")
            conn.execute("SELECT pg_stat_reset_shared('wal')")
            if statements:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
        time.sleep(0.6)  # the statistics collector's flush
        before = statio(copy)
        env = dict(env_for(size), DATABASE_URL=database_url(copy), PURGE_AT=at)
        if explain:
            env["AUTO_EXPLAIN"] = "1"
        load0 = Path("/proc/loadavg").read_text().split()[0]
        run = json.loads(manage(env, "shell", "-c", PURGE_SCRIPT).strip().splitlines()[-1])
        run["load"] = (load0, Path("/proc/loadavg").read_text().split()[0])
        run["files"] = files
        time.sleep(0.6)
        after = statio(copy)
        run["statio"] = {
            k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1])
            for k in RELATIONS
            if k in after
        }
        with connect(copy) as conn:
            run["wal"] = dict(
                zip(
                    ("records", "fpi", "bytes", "buffers_full", "write", "sync"),
                    conn.execute(
                        "SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full, wal_write,"
                        " wal_sync FROM pg_stat_wal"
                    ).fetchone(),
                    strict=True,
                )
            )
            if statements:
                run["statements"] = [
                    dict(
                        zip(
                            (
                                "query",
                                "calls",
                                "ms",
                                "rows",
                                "hit",
                                "read",
                                "dirtied",
                                "written",
                                "fpi",
                                "wal_bytes",
                            ),
                            row,
                            strict=True,
                        )
                    )
                    for row in conn.execute(
                        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160), calls,"
                        " round(total_exec_time), rows, shared_blks_hit, shared_blks_read,"
                        " shared_blks_dirtied, shared_blks_written, wal_fpi, wal_bytes"
                        " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                        " ORDER BY total_exec_time DESC LIMIT 14"
                    )
                ]
        return run
    finally:
        with connect("postgres") as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def show(size: int, run: dict) -> None:
    rec = run["recordings"]
    say(
        f"  {label(size)}: {rec:,} recordings ({run['artefacts']:,} artefacts,"
        f" {run['batches']} batches) in {run['seconds']:.1f} s = {rec / run['seconds']:,.0f}/s;"
        f" load {run['load'][0]} -> {run['load'][1]}"
    )
    say(
        f"    CPU: PostgreSQL backend {run['db_cpu']:.1f} s, Python {run['py_cpu']:.1f} s;"
        f" per 1,000 recordings {run['db_cpu'] / rec * 1000:.2f} s"
        f" + {run['py_cpu'] / rec * 1000:.2f} s"
    )
    steps = ", ".join(f"{k.strip('_')} {v:.1f}" for k, v in run["steps"].items())
    say(f"    steps (s): {steps}")
    w = run["wal"]
    say(
        f"    WAL: {w['records']:,} records, {w['fpi']:,} full-page images,"
        f" {int(w['bytes']) / 1024**2:,.0f} MiB = {int(w['bytes']) / rec / 1024:.1f} KiB a"
        f" recording, {w['fpi'] / rec:.1f} FPI a recording"
    )
    for name, (read, hit) in run["statio"].items():
        if read or hit:
            say(
                f"    {name}: read {read:,} ({read / rec:.2f}/rec),"
                f" hit {hit:,} ({hit / rec:.1f}/rec)"
            )
    for s in run.get("statements", []):
        say(
            f"    {s['ms']:>8,.0f} ms {s['calls']:>5} calls hit {s['hit']:>9,} read {s['read']:>8,}"
            f" dirtied {s['dirtied']:>8,} written {s['written']:>7,} fpi {s['fpi']:>8,}"
            f" wal {int(s['wal_bytes']) / 1024**2:>6,.0f} MiB  {s['query']}"
        )


def prepare_spread(size: int) -> tuple[str, str]:
    """A copy of the seeded database with its contiguous slice purged; its name and
    the time the spread slice falls due."""
    db, source = db_name(size), f"{db_name(size)}_spread"
    step = time.perf_counter()
    manage(env_for(size), "migrate", "--no-input", "-v", "0")  # as scale.py --keep-db does
    say(f"  migrate {db}: {time.perf_counter() - step:.1f} s")
    with connect("postgres") as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{source}" TEMPLATE "{db}" STRATEGY FILE_COPY')
    purge_once(source, size, "contiguous", None)
    with connect(source) as conn:
        (due,) = conn.execute(
            "SELECT max(expires_at) + interval '1 second' FROM recordings_artefact"
            " WHERE expiry_basis = %s",
            [SPREAD_BASIS],
        ).fetchone()
        conn.execute("VACUUM (ANALYZE)")
    return source, due.isoformat()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--statements", action="store_true")
    parser.add_argument("--explain", action="store_true", help="auto_explain into server.log")
    parser.add_argument("--private-cluster", type=Path, required=True)
    parser.add_argument("--port", type=int, default=PRIVATE_PORT)
    parser.add_argument("--keep-spread", action="store_true", help="keep <db>_spread")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting beside the bench's (repeatable), to compare its effect",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    extra = {"shared_preload_libraries": "'pg_stat_statements'"} if args.statements else {}
    extra |= dict(setting.split("=", 1) for setting in args.setting)
    try:
        with private_cluster(args.private_cluster, args.port, extra=extra):
            sources = {}
            try:
                for size in sizes:
                    heading(f"{db_name(size)}: the contiguous slice purged first")
                    sources[size] = prepare_spread(size)
                results: dict[int, list[dict]] = {s: [] for s in sizes}
                for round_ in range(args.rounds):
                    heading(f"Round {round_ + 1} of {args.rounds}: the spread slice")
                    for size in sizes if round_ % 2 == 0 else sizes[::-1]:
                        source, at = sources[size]
                        run = one_round(size, source, at, args.statements, args.explain)
                        results[size].append(run)
                        show(size, run)
                heading("Spread purge, recordings/s per round")
                for size in sizes:
                    rates = [r["recordings"] / r["seconds"] for r in results[size]]
                    say(f"  {label(size)}: " + ", ".join(f"{x:,.0f}" for x in rates))
                if len(sizes) > 1:
                    small, large = sizes[0], sizes[-1]
                    best = [
                        max(r["recordings"] / r["seconds"] for r in results[s])
                        for s in (small, large)
                    ]
                    say(f"  best of each: ratio {best[1] / best[0]:.2f}")
            finally:
                if not args.keep_spread:
                    with connect("postgres") as pg:
                        for source, _ in sources.values():
                            pg.execute(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')
    except BenchError as error:
        fail(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
