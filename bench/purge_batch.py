"""CPU of one purge batch, in-process: what a purged recording costs the worker's process
and its PostgreSQL backend, without Celery, beat or the rest of the machine in the figure.

    .venv/bin/python bench/purge_batch.py [--recordings 5000] [--rounds 5]
        [--db earshot_bench_purge_batch]

Each round seeds (set-based SQL) --recordings `dont_save` recordings, each with an audio
artefact whose 300-byte file exists and a transcript, all due; then runs one
`purge_batch` over them (claim, unlinks, finish: tombstones, history, review items,
ledger) and reads, from /proc, the CPU time of this process (its unlink threads
included) and of its PostgreSQL backend. The server's shared writers (checkpointer, WAL
writer), which other databases on the machine also keep busy, are left out: a
CHECKPOINT before each round keeps their work from one round out of the next.

To compare two versions, run it from a checkout of each (`git worktree add` or `git
archive`), alternating, and read the medians. CPU time, not wall time: the figure holds
on a busy machine better than a rate does, but caches and frequency still move it by
10-20% from round to round. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import PYTHON, REPO, BenchError, app_env, connect, fail, manage, recreate_database, say

OUT = REPO / "bench" / "out" / "purge_batch"


def child(recordings: int, rounds: int) -> int:
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from compliance.retention import purge

    tick = os.sysconf("SC_CLK_TCK")

    def backend_cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    def own_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    media = Path(os.environ["MEDIA_ROOT"]) / "f"
    media.mkdir(parents=True, exist_ok=True)
    results = []
    for _ in range(rounds):
        with connection.cursor() as cursor:
            for sql in (
                "TRUNCATE recordings_artefact, recordings_recording, auditlog_logentry CASCADE",
                "INSERT INTO accounts_account (id, external_id, jurisdiction, created_at)"
                " VALUES (1, 'acc-1', 'DE', now()) ON CONFLICT DO NOTHING",
                "INSERT INTO accounts_profile (id, external_id, account_id, is_child,"
                " display_name, retention_choice, created_at) SELECT n, 'prof-' || n, 1, false,"
                " '', 'dont_save', now() FROM generate_series(1, 100) n ON CONFLICT DO NOTHING",
                "INSERT INTO recordings_recording (id, external_id, profile_id, recorded_at,"
                " created_at, sensitive, false_wake, state, purge_reason, purge_policy)"
                " SELECT n, 'rec-' || n, 1 + n % 100, now(), now(), false, false, 'active', '',"
                f" '' FROM generate_series(1, {recordings}) n",
                "INSERT INTO recordings_artefact (recording_id, category, storage_key, text,"
                " size_bytes, created_at, state, expires_at, expiry_basis, purge_blocked,"
                " purge_attempt, purge_reason) SELECT r.id, c, CASE WHEN c = 'audio' THEN"
                " 'f/' || r.id || '.wav' ELSE '' END, CASE WHEN c = 'audio' THEN '' ELSE"
                " 'turn on the kitchen lights' END, 300, now(), 'active', now() - interval"
                " '1 second', 'choice:dont_save', false, 0, '' FROM recordings_recording r"
                " CROSS JOIN unnest(ARRAY['audio', 'transcript']) c ORDER BY r.id, c",
                "VACUUM ANALYZE recordings_artefact",
                "VACUUM ANALYZE recordings_recording",
                "CHECKPOINT",
            ):
                cursor.execute(sql)
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        for n in range(1, recordings + 1):
            (media / f"{n}.wav").write_bytes(b"\0" * 300)
        now = timezone.now()
        own, pg, wall = own_cpu(), backend_cpu(backend), time.perf_counter()
        result = purge.purge_batch(purge.due_artefacts(now), now=now, limit=2 * recordings)
        own, pg = own_cpu() - own, backend_cpu(backend) - pg
        wall = time.perf_counter() - wall
        if (result.purged, result.recordings_purged) != (2 * recordings, recordings):
            raise BenchError(f"purged {result.purged} artefacts, {result.recordings_purged}")
        if any(media.iterdir()):
            raise BenchError("files left after the purge")
        results.append({"python": own, "pg": pg, "wall": wall})
    print(json.dumps(results))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return child(int(argv[1]), int(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default="earshot_bench_purge_batch")
    args = parser.parse_args(argv)
    env = app_env(args.db) | {"MEDIA_ROOT": str(OUT / "media")}
    try:
        recreate_database(args.db)
        manage(env, "migrate", "--no-input", "-v", "0")
        done = subprocess.run(
            [str(PYTHON), __file__, "--child", str(args.recordings), str(args.rounds)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(done.stderr[-3000:])
        rounds = json.loads(done.stdout.strip().splitlines()[-1])
    except BenchError as error:
        fail(str(error))
        return 1
    finally:
        with connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    n = args.recordings
    for i, r in enumerate(rounds):
        say(
            f"  round {i + 1}: process {r['python'] / n * 1e6:.0f} us, backend"
            f" {r['pg'] / n * 1e6:.0f} us a recording; wall {r['wall']:.2f} s"
        )
    python = statistics.median(r["python"] for r in rounds) / n * 1e6
    pg = statistics.median(r["pg"] for r in rounds) / n * 1e6
    say(
        f"purge batch of {n:,} recordings ({2 * n:,} artefacts, {n:,} files), median of"
        f" {len(rounds)}: process {python:.0f} us + its PostgreSQL backend {pg:.0f} us ="
        f" {python + pg:.0f} us a recording ({1e6 / (python + pg):,.0f} recordings a CPU-second)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
