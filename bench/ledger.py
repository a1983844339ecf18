"""The ledger's evidence machinery against its goals (the method: docs/benchmarks.md).

    .venv/bin/python bench/ledger.py [--entries 1000000] [--appends 1000] [--proofs 2000]

Creates the database `earshot_bench_ledger` (dropped first), migrates it, seeds
`--entries` entries with the application's own encoding (COPY), signs the first
checkpoint, then measures, in this one run:

- append: the application's `ledger_append` per change (own transaction each) against
  the append as it was before leaves were stored (the same lock, read and INSERT with
  the chain hash of plain `json.dumps`, on a copy of the table without the leaf columns,
  in the same process and database), interleaved in rounds; goal: within 1.2x; and the
  same with 100 appends to a transaction, where the commit no longer hides the append's
  own work (informative);
- inclusion proofs at the full size, in-process (`tree_inclusion_proof`), p50 / p99;
  goal: p99 < 20 ms;
- full verification against the published checkpoint (`ledger_checkpoint_problem`)
  against reading the same leaves with psycopg and building the root with hashlib in
  plain Python; goal: at least 50% of that rate;
- checkpoints: the CPU of signing one after a minute's appends (--appends), as a share
  of one core over that minute; goal: < 1%.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import app_env, connect, heading, manage, recreate_database, say

DB = "earshot_bench_ledger"


def seed(entries: int) -> float:
    from compliance.ledger.canonical import entry_leaf, leaf_hash
    from compliance.ledger.models import GENESIS_HASH

    started = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    prev = GENESIS_HASH
    with (
        connect(DB) as conn,
        conn.cursor() as cursor,
        cursor.copy(
            "COPY ledger_ledgerentry (seq, created_at, kind, subject, actor, payload, prev_hash,"
            " hash, leaf, leaf_hash) FROM STDIN"
        ) as copy,
    ):
        for seq in range(1, entries + 1):
            created = base + timedelta(milliseconds=seq)
            payload = {"purpose": "human_review", "channel": "app", "notice_version": "n1",
                       "event": seq}  # fmt: skip
            subject = f"profile:p-{seq % 50000}"
            leaf = entry_leaf(
                seq=seq,
                created_at=created,
                kind="consent.granted",
                subject=subject,
                actor="bench",
                payload=payload,
                prev_hash=prev,
            )
            digest = hashlib.sha256(leaf).hexdigest()
            copy.write_row([seq, created, "consent.granted", subject, "bench",
                            json.dumps(payload), prev, digest, leaf, leaf_hash(leaf)])  # fmt: skip
            prev = digest
    return time.perf_counter() - started


def old_append_factory():
    """The append as it was before this change: the same lock, read and INSERT, with the
    chain hash of `json.dumps(sort_keys=True)` and no leaf columns."""
    from django.db import connection
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_ledger_baseline (LIKE ledger_ledgerentry INCLUDING ALL)")
        cursor.execute("ALTER TABLE bench_ledger_baseline DROP COLUMN leaf, DROP COLUMN leaf_hash")
        cursor.execute(
            "INSERT INTO bench_ledger_baseline SELECT id, seq, created_at, kind, subject, actor,"
            " payload, prev_hash, hash FROM ledger_ledgerentry"
        )
        cursor.execute("SELECT setval(pg_get_serial_sequence('bench_ledger_baseline', 'id'),"
                       " (SELECT max(id) FROM bench_ledger_baseline))")  # fmt: skip

    from django.db import models

    class BaselineEntry(models.Model):
        """The ledger entry as it was: no leaf columns."""

        seq = models.BigIntegerField(unique=True)
        created_at = models.DateTimeField()
        kind = models.CharField(max_length=64)
        subject = models.CharField(max_length=200, blank=True)
        actor = models.CharField(max_length=200, blank=True)
        payload = models.JSONField(default=dict)
        prev_hash = models.CharField(max_length=64)
        hash = models.CharField(max_length=64, unique=True)

        class Meta:
            app_label = "ledger"
            db_table = "bench_ledger_baseline"
            managed = False

        def __str__(self) -> str:
            return f"#{self.seq}"

    def old_append(*, kind: str, subject: str, actor: str, payload: dict) -> None:
        """The append before this change, line for line (through the ORM as it was)."""
        payload = json.loads(json.dumps(payload or {}, default=str))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x4541_5253_484F_54])
        last = BaselineEntry.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, "0" * 64)
        created_at = timezone.now()
        canonical = json.dumps(
            {"seq": seq, "created_at": created_at.astimezone(UTC).isoformat(), "kind": kind,
             "subject": subject, "actor": actor, "payload": payload, "prev_hash": prev_hash},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )  # fmt: skip
        BaselineEntry.objects.create(
            seq=seq,
            created_at=created_at,
            kind=kind,
            subject=subject,
            actor=actor,
            payload=payload,
            prev_hash=prev_hash,
            hash=hashlib.sha256(canonical.encode()).hexdigest(),
        )

    return old_append


def measure_appends(
    old_append, total: int, *, per_transaction: int = 1
) -> tuple[float, float, list[float]]:
    """Median microseconds per append, before and now, interleaved in 10 rounds (each
    round the baseline first, then the application's append), `per_transaction` appends
    to a transaction; and each round's ratio, to show the spread."""
    from django.db import transaction

    from compliance.ledger.services import ledger_append

    payload = {"purpose": "human_review", "channel": "app", "notice_version": "n2", "event": 1}
    timings: dict[str, list[float]] = {"old": [], "new": []}
    rounds, per_round = 10, max(per_transaction, total // 10)
    for _ in range(rounds):
        for name, append in (("old", old_append), ("new", ledger_append)):
            started = time.perf_counter()
            for start in range(0, per_round, per_transaction):
                with transaction.atomic():
                    for i in range(start, min(per_round, start + per_transaction)):
                        append(kind="consent.granted", subject=f"profile:p-{i}", actor="bench",
                               payload=payload)  # fmt: skip
            timings[name].append((time.perf_counter() - started) / per_round * 1e6)
    ratios = [new / old for old, new in zip(timings["old"], timings["new"], strict=True)]
    return statistics.median(timings["old"]), statistics.median(timings["new"]), ratios


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def plain_root_seconds(size: int) -> tuple[float, bytes]:
    started = time.perf_counter()
    stack: list[tuple[int, bytes]] = []
    with connect(DB) as conn:
        conn.autocommit = False
        cursor = conn.cursor(name="leaves")
        cursor.itersize = 5000
        cursor.execute("SELECT leaf FROM ledger_ledgerentry WHERE seq <= %s ORDER BY seq", [size])
        for (leaf,) in cursor:
            node, width = hashlib.sha256(b"\x00" + bytes(leaf)).digest(), 1
            while stack and stack[-1][0] == width:
                node = hashlib.sha256(b"\x01" + stack.pop()[1] + node).digest()
                width *= 2
            stack.append((width, node))
    root = stack[-1][1]
    for _, node in reversed(stack[:-1]):
        root = hashlib.sha256(b"\x01" + node + root).digest()
    return time.perf_counter() - started, root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=2000)
    args = parser.parse_args()

    heading(f"setup: {args.entries:,} entries in {DB}")
    recreate_database(DB)
    env = app_env(DB)
    export = tempfile.mkdtemp(prefix="earshot-bench-ledger-")
    env.update(LEDGER_KEY_DIR=export, LEDGER_EXPORT=str(Path(export) / "export"))
    manage(env, "migrate", "-v0")
    os.environ.update(env)
    import django

    django.setup()
    from compliance.ledger.checkpoints import ledger_checkpoint_issue, ledger_checkpoint_problem
    from compliance.ledger.tree import tree_inclusion_proof

    say(f"seeded in {seed(args.entries):.1f} s")
    started = time.perf_counter()
    first = ledger_checkpoint_issue()
    built = time.perf_counter() - started
    say(f"first checkpoint (tree of {first.tree_size:,} built): {built:.1f} s")

    results = []
    heading("inclusion proofs at the full size (in-process)")
    rng = random.Random(9162)
    times = []
    for _ in range(args.proofs):
        seq = rng.randint(1, first.tree_size)
        started = time.perf_counter()
        tree_inclusion_proof(index=seq - 1, size=first.tree_size)
        times.append((time.perf_counter() - started) * 1000)
    p50, p99 = percentile(times, 50), percentile(times, 99)
    say(f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {args.proofs} proofs")
    results.append(("inclusion proof p99 < 20 ms", p99 < 20, f"{p99:.2f} ms"))

    heading("full verification against the published checkpoint")
    started = time.perf_counter()
    problem = ledger_checkpoint_problem()
    ours = time.perf_counter() - started
    plain, root = plain_root_seconds(first.tree_size)
    assert problem is None, problem
    assert root == bytes(first.root_hash), "the plain root differs from the checkpoint's"
    share = plain / ours
    say(f"ours {ours:.1f} s ({first.tree_size / ours:,.0f}/s); plain psycopg + hashlib "
        f"{plain:.1f} s ({first.tree_size / plain:,.0f}/s): {share:.0%} of its rate")  # fmt: skip
    results.append(("verification >= 50% of plain", share >= 0.5, f"{share:.0%}"))

    heading(f"append per change, own transaction each ({args.appends} of each, interleaved)")
    old_append = old_append_factory()
    old, new, ratios = measure_appends(old_append, args.appends)
    ratio = new / old
    say(f"before {old:,.0f} us, now {new:,.0f} us: {ratio:.2f}x "
        f"(rounds {min(ratios):.2f}x to {max(ratios):.2f}x)")  # fmt: skip
    results.append(("append within 1.2x", ratio <= 1.2, f"{ratio:.2f}x"))
    heading(f"append per change, 100 to a transaction ({args.appends} of each, interleaved)")
    # The commit (a WAL flush) dominates a change of its own; with it shared, what is left
    # is the append's own work: the encoding, the hashes, the lock, the read, the INSERT.
    old, new, ratios = measure_appends(old_append, args.appends, per_transaction=100)
    spread = f"rounds {min(ratios):.2f}x to {max(ratios):.2f}x"
    say(f"before {old:,.0f} us, now {new:,.0f} us: {new / old:.2f}x ({spread}; informative)")

    heading("a checkpoint after a minute's appends")
    cpu = time.process_time()
    wall = time.perf_counter()
    latest = ledger_checkpoint_issue()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    share = cpu / 60
    say(f"checkpoint of {latest.tree_size:,} entries: {wall * 1000:.0f} ms wall, "
        f"{cpu * 1000:.0f} ms CPU in this process: {share:.2%} of a core per minute")  # fmt: skip
    results.append(("checkpoint < 1% of a core", share < 0.01, f"{share:.2%}"))

    heading("summary")
    for goal, ok, figure in results:
        say(f"{'PASS' if ok else 'FAIL'}  {goal}: {figure}")
    # missed goals are measurements, not failures (docs/benchmarks.md): exit 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
