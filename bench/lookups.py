"""Where a decision's database time goes at each size: each look-up alone, and the facts.

    .venv/bin/python bench/lookups.py [--private-cluster /work/bench-pg/scale]
        [--sizes 1000000,10000000] [--rounds 6] [--queries 30] [--purpose human_review]

Needs the databases `bench/scale.py` seeded (earshot_scale_<size>). With
--private-cluster, starts that cluster as scale.py does (huge pages and all) and loads
what the requests read into shared buffers (scale.PREWARM); without it, the server on
127.0.0.1:5432 as it is.

Each query takes 1,000 random keys, is prepared as the app prepares the facts query
(a generic plan, the app's connection options) and its plan checked to be an
index-only scan of the index named. `--rounds` rounds, the sizes taking turns round by
round (which goes first alternating), each size running `--queries` of each query in
a row:

- the primary key of the recordings (the floor of scale.py, here in a row);
- the recordings' covering index, by external id (`recording_external_id_cover`);
- the audio artefacts' index, by recording (`artefact_one_audio`);
- the consent states' covering index, by profile and purpose (`consentstate_cover`);
- the facts of 1,000 external ids for `--purpose`, with a reviewer location: the app's
  own query (`compliance.eligibility.rules._facts_sql`), which joins the three.

Prints each query's median milliseconds at each size, its PostgreSQL backend's CPU per
query (/proc), the ratio of the largest size to the smallest, and each index's depth
(`bt_metap`, where the pageinspect extension is available). docs/capacity.md ("The
floor") reads the figures. Nothing is written to the databases but the extensions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOST, PG_USER, BenchError, fail, heading, say, use_pg_port
from scale import (
    PRIVATE_PORT,
    db_name,
    label,
    prewarm,
    private_cluster,
)

KEYS = 1_000
LOCATION = "DE"
# As the app connects (config/settings/base.py, DB_OPTIONS): its plans, not the defaults'.
OPTIONS = "-c jit=off -c random_page_cost=1.1 -c plan_cache_mode=force_generic_plan"


@dataclass(frozen=True)
class Probe:
    name: str
    index: str
    sql: str
    keys: Callable[[random.Random, int], list[Any]]
    params: Callable[[list[Any]], list[Any]] = lambda keys: [keys]


def _ids(rng: random.Random, size: int) -> list[int]:
    return [rng.randint(1, size) for _ in range(KEYS)]


def _external_ids(rng: random.Random, size: int) -> list[str]:
    return [f"rec-{rng.randint(1, size)}" for _ in range(KEYS)]


def _profiles(rng: random.Random, size: int) -> list[int]:
    return [rng.randint(1, max(1, size // 20)) for _ in range(KEYS)]  # scale.spec_for


def probes(purpose: str) -> list[Probe]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-lookups")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from compliance.eligibility import rules
    from compliance.recordings.models import ArtefactState

    needs = rules.PURPOSE_NEEDS[purpose]
    facts_sql = rules._facts_sql("postgresql", KEYS, True, needs)
    now = datetime.now(UTC)
    head = [LOCATION, *[ArtefactState.ACTIVE, now] * len(needs), purpose, purpose]
    return [
        Probe(
            "primary key",
            "recordings_recording_pkey",
            "SELECT count(*) FROM recordings_recording WHERE id = ANY(%s::bigint[])",
            _ids,
        ),
        Probe(
            "recording by external id",
            "recording_external_id_cover",
            "SELECT count(profile_id) FROM recordings_recording"
            " WHERE external_id = ANY(%s::varchar[])",
            _external_ids,
        ),
        Probe(
            "audio artefact by recording",
            "artefact_one_audio",
            "SELECT count(expires_at) FROM recordings_artefact"
            " WHERE category = 'audio' AND recording_id = ANY(%s::bigint[])",
            _ids,
        ),
        Probe(
            "consent state by profile",
            "consentstate_cover",
            "SELECT count(granted) FROM consent_consentstate"
            " WHERE purpose = %s AND profile_id = ANY(%s::bigint[])",
            _profiles,
            lambda keys: [purpose, keys],
        ),
        Probe(f"facts ({purpose})", "", facts_sql, _external_ids, lambda keys: [*head, keys]),
    ]


def backend_cpu(conn: psycopg.Connection) -> float:
    fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_plan(conn: psycopg.Connection, size: int, probe: Probe, rng: random.Random) -> None:
    plan = [
        line
        for (line,) in conn.execute(
            "EXPLAIN (COSTS OFF) " + probe.sql, probe.params(probe.keys(rng, size))
        ).fetchall()
    ]
    if probe.index and not any(f"Index Only Scan using {probe.index} " in p for p in plan):
        raise BenchError(f"{probe.name} at {label(size)}: not index-only on {probe.index}: {plan}")


def depth(conn: psycopg.Connection, index: str) -> str:
    with contextlib.suppress(psycopg.Error):
        return str(conn.execute("SELECT (bt_metap(%s)).level + 1", [index]).fetchone()[0])
    return "?"


def measure(args: argparse.Namespace) -> None:
    all_probes = probes(args.purpose)
    rng = random.Random(1)
    with contextlib.ExitStack() as stack:
        conns = {
            size: stack.enter_context(
                psycopg.connect(
                    host=HOST,
                    port=args.port if args.private_cluster else 5432,
                    user=PG_USER,
                    dbname=db_name(size),
                    autocommit=True,
                    prepare_threshold=0,
                    options=OPTIONS,
                )
            )
            for size in args.sizes
        }
        levels: dict[tuple[int, str], str] = {}
        for size, conn in conns.items():
            with contextlib.suppress(psycopg.Error):
                conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
            for probe in all_probes:
                check_plan(conn, size, probe, rng)
                for _ in range(3):  # prepared, and warm
                    conn.execute(probe.sql, probe.params(probe.keys(rng, size))).fetchall()
                if probe.index:
                    levels[(size, probe.index)] = depth(conn, probe.index)
        ms: dict[tuple[int, str], list[float]] = {}
        cpu: dict[tuple[int, str], float] = {}
        for round_ in range(args.rounds):
            order = args.sizes if round_ % 2 == 0 else args.sizes[::-1]
            for size in order:
                conn = conns[size]
                for probe in all_probes:
                    before = backend_cpu(conn)
                    for _ in range(args.queries):
                        params = probe.params(probe.keys(rng, size))
                        step = perf_counter()
                        conn.execute(probe.sql, params).fetchall()
                        ms.setdefault((size, probe.name), []).append((perf_counter() - step) * 1000)
                    cpu[(size, probe.name)] = cpu.get((size, probe.name), 0.0) + (
                        backend_cpu(conn) - before
                    )
    small, large = args.sizes[0], args.sizes[-1]
    heading(
        f"{KEYS:,} random keys a query, {args.rounds} rounds of {args.queries} a size,"
        f" {label(small)} -> {label(large)}"
    )
    per_size = args.rounds * args.queries
    for probe in all_probes:
        a = statistics.median(ms[(small, probe.name)])
        b = statistics.median(ms[(large, probe.name)])
        ca = cpu[(small, probe.name)] * 1000 / per_size
        cb = cpu[(large, probe.name)] * 1000 / per_size
        levels_text = (
            f"; levels {levels[(small, probe.index)]} -> {levels[(large, probe.index)]}"
            if probe.index
            else ""
        )
        say(
            f"  {probe.name:30s} median {a:6.2f} -> {b:6.2f} ms ({b / a:.2f}x);"
            f" backend CPU {ca:6.2f} -> {cb:6.2f} ms"
            f" ({cb / ca if ca else float('nan'):.2f}x){levels_text}"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="recordings, as seeded")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--queries", type=int, default=30, help="of each query a size a round")
    parser.add_argument(
        "--purpose", default="human_review", choices=["human_review", "model_training"]
    )
    parser.add_argument("--private-cluster", type=Path, metavar="DIR")
    parser.add_argument("--port", type=int, default=PRIVATE_PORT)
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.private_cluster:
            with private_cluster(args.private_cluster, args.port):
                use_pg_port(args.port)
                for size in args.sizes:
                    prewarm(size)
                measure(args)
        else:
            measure(args)
    except BenchError as error:
        fail(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
