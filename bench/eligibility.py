"""Eligibility benchmark: how fast Earshot answers "may this recording be used?".

    .venv/bin/python bench/eligibility.py [--recordings 1000000] [--profiles 50000]
        [--duration 15] [--connections 16] [--keep-db] [--profile /tmp/prof.txt]

What it does, on this machine only (127.0.0.1):
1. A PostgreSQL database `earshot_bench`, migrated, seeded with set-based SQL
   (accounts, profiles, consent states, defaults, transfer rules, recordings and their
   artefacts; see bench/_common.py); with --keep-db a database already seeded at the
   same size is reused (and migrated).
2. A service client with scope eligibility:read; gunicorn, 2 sync workers, the
   project's settings (persistent connections) with the floor's URL added
   (bench/server/), no access log.
3. Before any timing: single and batch answers are checked against the same rule
   evaluated here from raw SQL (any disagreement, non-200 or missing key breaks the run).
4. HTTP load with wrk (2 threads, --connections connections, --duration seconds, after
   a warm-up), random recording ids and a mix of purposes and reviewer locations:
   (a) the floor, GET /api/v1/_bench/floor: DRF, the same API-key authentication and
       scope check, a constant answer, no query; (b) GET /api/v1/eligibility/<id>.
5. Batches: POST /api/v1/eligibility/batch with 10,000 random ids, 20 times in a row,
   against a baseline: the facts query of compliance/eligibility/rules.py (`= ANY(%s)`)
   through psycopg plus the rule in plain Python, on the same ids, interleaved.
6. Resident memory (VmRSS) of each gunicorn worker before and after the load.

How to read it: the floor is the best any DRF endpoint with this authentication can do
here, so eligibility/floor says what the rule's query and code cost per request (goal
>= 70%, p99 < 10 ms at 16 connections). The batch ratio says what HTTP, JSON and the
app's code cost over the bare query and rule (goal >= 50%, a 10k batch in < 250 ms at
p50). Worker RSS growth over the whole load should stay <= 10%. Goals are measured, not
enforced: the exit code is 0 when goals fail, 1 when something broke (server down,
wrong or non-2xx answers). wrk shares the 2 cores with gunicorn and PostgreSQL: compare
figures from the same run, not across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from _common import (
    HOST,
    BenchError,
    Goal,
    Http,
    LoadGenerator,
    LoadResult,
    RequestMix,
    SeedSpec,
    Server,
    app_env,
    connect,
    create_service_client,
    fail,
    find_wrk,
    gunicorn,
    heading,
    percentile,
    prepare_database,
    print_summary,
    say,
    start_py_spy,
    summarise_py_spy,
)

DB = "earshot_bench"
FLOOR_PATH = "/api/v1/_bench/floor"
SETTINGS = "bench.server.settings"  # the project's, plus the floor (bench/server/urls.py)
SINGLE_PATH = "/api/v1/eligibility/rec-{n}?purpose={purpose}"
BATCH_PATH = "/api/v1/eligibility/batch"
# (purpose, reviewer_location) of the single-recording load, drawn uniformly.
QUERIES: tuple[tuple[str, str | None], ...] = (
    ("human_review", "DE"),
    ("human_review", "DE"),
    ("human_review", "IE"),
    ("human_review", None),
    ("model_training", None),
)
BATCH_SIZE = 10_000
BATCH_PURPOSE, BATCH_LOCATION = "human_review", "DE"
RESULT_KEYS = {"recording", "purpose", "eligible", "reasons"}
GOAL_RATIO, GOAL_P99_MS = 0.70, 10.0
GOAL_BATCH_RATIO, GOAL_BATCH_MS = 0.50, 250.0
GOAL_RSS_GROWTH = 0.10

Answer = tuple[str, bool, list[str]]


# --------------------------------------------------------------------------- baseline


# The artefacts each purpose needs (compliance/eligibility/rules.py, PURPOSE_NEEDS).
PURPOSE_NEEDS = {"human_review": ("audio",), "model_training": ("audio", "transcript")}


def facts_sql(with_location: bool, needs: int | None) -> str:
    """The shape of `_facts_sql` in compliance/eligibility/rules.py, for PostgreSQL;
    `needs` None where the schema has no artefact retention (state, expires_at) yet."""
    transfer = (
        "EXISTS (SELECT 1 FROM transfers_transferrule t WHERE t.jurisdiction = a.jurisdiction"
        " AND t.reviewer_location = %s)"
        if with_location
        else "FALSE"
    )
    expired = (
        ""
        if needs is None
        else ", EXISTS (SELECT 1 FROM recordings_artefact x WHERE x.recording_id = r.id"
        f" AND x.category IN ({','.join(['%s'] * needs)})"
        " AND (x.state <> %s OR x.expires_at <= %s))"
    )
    return (
        "SELECT r.external_id, r.state, r.sensitive, r.false_wake, p.is_child,"
        f" a.jurisdiction, cs.granted, cd.granted, {transfer}{expired}"
        " FROM recordings_recording r"
        " LEFT JOIN accounts_profile p ON p.id = r.profile_id"
        " LEFT JOIN accounts_account a ON a.id = p.account_id"
        " LEFT JOIN consent_consentstate cs ON cs.profile_id = r.profile_id AND cs.purpose = %s"
        " LEFT JOIN consent_consentdefault cd ON cd.jurisdiction = a.jurisdiction"
        " AND cd.purpose = %s"
        " WHERE r.external_id = ANY(%s)"
    )


def decide(row: tuple, purpose: str, location: str | None) -> list[str]:
    """The eligibility rule (docs/domain.md) on one row of `facts_sql`, in plain Python."""
    _, state, sensitive, false_wake, is_child, jurisdiction, granted, default, transfer = row[:9]
    if state != "active":
        return ["purged"]
    reasons = []
    if len(row) > 9 and row[9]:
        reasons.append("retention_expired")
    human = purpose == "human_review"
    if human:
        if is_child:
            reasons.append("child_profile")
        if sensitive:
            reasons.append("sensitive")
        if false_wake:
            reasons.append("false_wake")
    if granted is None:
        if default is not True:
            reasons.append("no_consent")
    elif granted is False:
        reasons.append("consent_withdrawn")
    if human and location is not None and location != jurisdiction and not transfer:
        reasons.append("transfer_not_allowed")
    return reasons


@dataclass
class Baseline:
    """The rule without the app: the facts query through psycopg, `decide` in Python."""

    conn: psycopg.Connection
    retention: bool  # the schema has artefact retention, and so has the app's query

    @classmethod
    def on(cls, conn: psycopg.Connection) -> Baseline:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = 'recordings_artefact'"
        ).fetchall()
        return cls(conn, {"state", "expires_at"} <= {c for (c,) in columns})

    def answers(self, ids: Sequence[str], purpose: str, location: str | None) -> list[Answer]:
        """(recording, eligible, reasons) per id, in order, as the API answers them."""
        needs = PURPOSE_NEEDS[purpose] if self.retention else None
        params: list[object] = [location] if location is not None else []
        if needs is not None:
            params += [*needs, "active", datetime.now(UTC)]
        params += [purpose, purpose, list(dict.fromkeys(ids))]
        sql = facts_sql(location is not None, None if needs is None else len(needs))
        by_id = {row[0]: row for row in self.conn.execute(sql, params).fetchall()}
        answers: list[Answer] = []
        for external_id in ids:
            row = by_id.get(external_id)
            if row is None:
                answers.append((external_id, False, ["not_found"]))
                continue
            reasons = decide(row, purpose, location)
            answers.append((external_id, not reasons, reasons))
        return answers


# --------------------------------------------------------------------------- checks


def single_path(n: int | str, purpose: str, location: str | None) -> str:
    path = SINGLE_PATH.replace("{n}", str(n)).replace("{purpose}", purpose)
    return path if location is None else f"{path}&reviewer_location={location}"


def sample_ids(base: Baseline, rng: random.Random, id_max: int) -> list[str]:
    """Random ids plus a few that exercise each reason code."""
    special = [
        "r.state = 'purged'",
        "r.sensitive",
        "r.false_wake",
        "p.is_child",
        "cs.granted IS NULL AND a.jurisdiction = 'US'",
        "cs.granted IS NULL AND a.jurisdiction = 'DE'",
        "cs.granted = false",
        "cs.granted AND a.jurisdiction = 'US'",
    ]
    if base.retention:
        special.append(
            "EXISTS (SELECT 1 FROM recordings_artefact x WHERE x.recording_id = r.id"
            " AND x.expires_at <= now())"
        )
    ids = [f"rec-{rng.randint(1, id_max)}" for _ in range(40)]
    for where in special:
        rows = base.conn.execute(
            "SELECT r.external_id FROM recordings_recording r"
            " LEFT JOIN accounts_profile p ON p.id = r.profile_id"
            " LEFT JOIN accounts_account a ON a.id = p.account_id"
            " LEFT JOIN consent_consentstate cs ON cs.profile_id = r.profile_id"
            f" AND cs.purpose = 'human_review' WHERE {where} LIMIT 3"
        ).fetchall()
        ids += [row[0] for row in rows]
    return ids


def check_single(server: Server, key: str, base: Baseline, ids: list[str]) -> int:
    """Every (id, purpose, location) answered 200, with the keys and the rule's answer."""
    client = Http(server.port, key)
    checked = 0
    try:
        status, body = client.request("GET", FLOOR_PATH)
        if status != 200 or set(json.loads(body)) != RESULT_KEYS:
            raise BenchError(f"floor answered {status}: {body[:300]!r}")
        for purpose, location in dict.fromkeys(QUERIES):
            expected = base.answers(ids, purpose, location)
            for recording, eligible, reasons in expected:
                path = single_path(recording.removeprefix("rec-"), purpose, location)
                status, body = client.request("GET", path)
                answer = json.loads(body) if status == 200 else None
                if answer is None or not answer.keys() >= RESULT_KEYS:
                    raise BenchError(f"GET {path} answered {status}: {body[:300]!r}")
                want = {"recording": recording, "purpose": purpose}
                want |= {"eligible": eligible, "reasons": reasons}
                if {k: answer[k] for k in RESULT_KEYS} != want:
                    raise BenchError(f"GET {path} answered {answer}, the rule says {want}")
                checked += 1
        status, body = client.request("GET", single_path(0, "human_review", None))
        if status != 404:
            raise BenchError(f"an unknown recording answered {status}, not 404: {body[:300]!r}")
    finally:
        client.close()
    return checked


# --------------------------------------------------------------------------- batch


@dataclass
class BatchResult:
    server_ms: list[float]
    baseline_ms: list[float]
    mismatches: int

    @staticmethod
    def per_second(times_ms: list[float]) -> float:
        return BATCH_SIZE * len(times_ms) / (sum(times_ms) / 1000)


def server_batch(client: Http, ids: list[str]) -> tuple[float, list[Answer]]:
    body = json.dumps(
        {"purpose": BATCH_PURPOSE, "recordings": ids, "reviewer_location": BATCH_LOCATION}
    ).encode()
    start = time.perf_counter()
    status, data = client.request("POST", BATCH_PATH, body)
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200:
        raise BenchError(f"POST {BATCH_PATH} answered {status}: {data[:300]!r}")
    results = json.loads(data).get("results")
    if not isinstance(results, list) or len(results) != len(ids):
        raise BenchError(f"POST {BATCH_PATH}: {len(results or [])} results for {len(ids)} ids")
    return elapsed, [(r["recording"], r["eligible"], r["reasons"]) for r in results]


def baseline_batch(base: Baseline, ids: list[str]) -> tuple[float, list[Answer]]:
    start = time.perf_counter()
    answers = base.answers(ids, BATCH_PURPOSE, BATCH_LOCATION)
    return (time.perf_counter() - start) * 1000, answers


def run_batches(server: Server, key: str, base: Baseline, batches: list[list[str]]) -> BatchResult:
    """Each batch through the API and through the baseline, alternating which goes first;
    one untimed warm-up batch each. Every answer is compared with the baseline's."""
    client = Http(server.port, key)
    result = BatchResult([], [], 0)
    try:
        server_batch(client, batches[0])
        baseline_batch(base, batches[0])
        for i, ids in enumerate(batches):
            if i % 2:
                base_ms, expected = baseline_batch(base, ids)
                api_ms, answers = server_batch(client, ids)
            else:
                api_ms, answers = server_batch(client, ids)
                base_ms, expected = baseline_batch(base, ids)
            result.server_ms.append(api_ms)
            result.baseline_ms.append(base_ms)
            wrong = [(a, e) for a, e in zip(answers, expected, strict=True) if a != e]
            if wrong:
                say(f"  batch {i}: {len(wrong)} answers differ from the rule, e.g. {wrong[:3]}")
            result.mismatches += len(wrong)
    finally:
        client.close()
    return result


# --------------------------------------------------------------------------- load runs


def load_run(
    gen: LoadGenerator,
    server: Server,
    key: str,
    mix: RequestMix,
    args: argparse.Namespace,
    profile: Path | None = None,
) -> LoadResult:
    """A warm-up, then the timed run; with `profile`, py-spy records the first worker
    during the timed run (which perturbs it: read its figures with that in mind)."""
    ensure_clean(gen.run(server.port, key, mix, args.warmup, args.connections))
    spy = start_py_spy(server.workers[0], args.duration - 2, profile) if profile else None
    result = gen.run(server.port, key, mix, args.duration, args.connections)
    say(f"  {result.line()}")
    if spy is not None and profile is not None:
        _, err = spy.communicate(timeout=60)
        if spy.returncode == 0 and profile.exists():
            say(f"  py-spy profile of worker {server.workers[0]} (raw stacks): {profile}")
            say(summarise_py_spy(profile))
        else:
            say(f"  py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
    ensure_clean(result)
    server.check_workers()
    say(f"  worker RSS now: {format_rss(server.worker_rss())}")
    return result


def ensure_clean(result: LoadResult) -> LoadResult:
    if result.non_2xx or result.socket_errors:
        raise BenchError(
            f"{result.non_2xx} non-2xx answers, {result.socket_errors} socket errors:\n"
            f"{result.output}"
        )
    return result


def note_machine_load() -> None:
    """Other work on the 2 cores skews every figure: say so when there is some."""
    load = os.getloadavg()[0]
    say(f"  load average (1 min) before the timed runs: {load:.2f}")
    if load > 1.0:
        say("  WARNING: the machine is busy with other work; figures will be low and noisy")


def single_mix(id_max: int) -> RequestMix:
    return RequestMix(tuple(single_path("{n}", p, loc) for p, loc in QUERIES), id_max)


def format_rss(rss: dict[int, int]) -> str:
    return ", ".join(f"{pid}: {kib / 1024:.1f} MiB" for pid, kib in rss.items())


def rss_growth(before: dict[int, int], after: dict[int, int]) -> float:
    return max(after[pid] / before[pid] - 1 for pid in before)


# --------------------------------------------------------------------------- main


@dataclass
class Figures:
    seeding_s: float | None
    tool: str
    floor: LoadResult
    single: LoadResult
    batch: BatchResult
    rss_boot: dict[int, int]
    rss_before: dict[int, int]
    rss_after: dict[int, int]
    checked: int


def measure(args: argparse.Namespace, spec: SeedSpec) -> Figures:
    env = app_env(DB) | {"DJANGO_SETTINGS_MODULE": SETTINGS}
    heading("Database")
    seeding = prepare_database(DB, spec, env, keep=args.keep_db)
    key = create_service_client(env, DB, "bench", ["eligibility:read"])
    gen = LoadGenerator(find_wrk())
    say(f"Load generator: {gen.name}")
    rng = random.Random(42)
    batches = [
        [f"rec-{rng.randint(1, spec.recordings)}" for _ in range(BATCH_SIZE)]
        for _ in range(args.batches)
    ]
    with connect(DB) as conn, gunicorn(env) as server:
        base = Baseline.on(conn)
        say(f"Baseline query with artefact retention: {'yes' if base.retention else 'no'}")
        rss_boot = server.worker_rss()
        heading("Checking answers against the rule")
        checked = check_single(server, key, base, sample_ids(base, rng, spec.recordings))
        say(f"  {checked} single answers agree with the rule; unknown id answers 404")
        floor_mix = RequestMix((FLOOR_PATH,))
        for mix in (floor_mix, single_mix(spec.recordings)):
            ensure_clean(gen.run(server.port, key, mix, args.warmup, args.connections))
        rss_before = server.worker_rss()
        say(
            f"  worker RSS at boot: {format_rss(rss_boot)}; after warm-up: {format_rss(rss_before)}"
        )
        note_machine_load()
        heading(f"(a) floor: GET {FLOOR_PATH}")
        floor = load_run(gen, server, key, floor_mix, args)
        heading("(b) single eligibility: GET /api/v1/eligibility/rec-<random>?purpose=...")
        single = load_run(gen, server, key, single_mix(spec.recordings), args, args.profile)
        heading(f"(c) batch: {args.batches} x POST {BATCH_PATH} of {BATCH_SIZE:,} ids")
        batch = run_batches(server, key, base, batches)
        for name, times in (("API", batch.server_ms), ("baseline", batch.baseline_ms)):
            say(f"  {name:<8} per 10k batch, ms: {' '.join(f'{t:.0f}' for t in times)}")
        server.check_workers()
        rss_after = server.worker_rss()
        say(f"  worker RSS now: {format_rss(rss_after)}")
    return Figures(
        seeding, gen.name, floor, single, batch, rss_boot, rss_before, rss_after, checked
    )


def report(args: argparse.Namespace, spec: SeedSpec, f: Figures) -> None:
    ratio = f.single.rps / f.floor.rps
    api_rate = BatchResult.per_second(f.batch.server_ms)
    base_rate = BatchResult.per_second(f.batch.baseline_ms)
    api_p50 = percentile(f.batch.server_ms, 50)
    base_p50 = percentile(f.batch.baseline_ms, 50)
    growth = rss_growth(f.rss_before, f.rss_after)
    seeding = "reused (--keep-db)" if f.seeding_s is None else f"{f.seeding_s:.1f} s"
    at = f"{args.connections} connections"
    figures = [
        ("data", f"{spec.recordings:,} recordings, {spec.profiles:,} profiles, {DB}"),
        ("seeding", seeding),
        ("load generator", f"{f.tool}; {args.duration:g} s a run, {at}, 2 threads"),
        ("answers checked", f"{f.checked} single + {len(f.batch.server_ms) * BATCH_SIZE:,} batch"),
        ("floor", f.floor.line()),
        ("eligibility", f.single.line()),
        ("eligibility/floor", f"{ratio:.0%}"),
        (
            "batch API",
            f"{api_rate:>9,.0f} rec/s   p50 {api_p50:6.1f} ms   max "
            f"{max(f.batch.server_ms):6.1f} ms per {BATCH_SIZE:,}",
        ),
        (
            "batch baseline",
            f"{base_rate:>9,.0f} rec/s   p50 {base_p50:6.1f} ms   max "
            f"{max(f.batch.baseline_ms):6.1f} ms (raw SQL + rule in Python)",
        ),
        ("batch API/baseline", f"{api_rate / base_rate:.0%}"),
        ("worker RSS at boot", format_rss(f.rss_boot)),
        ("worker RSS before load", format_rss(f.rss_before)),
        ("worker RSS after load", format_rss(f.rss_after)),
        ("worker RSS growth", f"{growth:+.1%} (largest of the workers)"),
    ]
    goals = [
        Goal("eligibility >= 70% of the floor", f"{ratio:.0%}", ratio >= GOAL_RATIO),
        Goal(
            f"eligibility p99 < 10 ms at {at}",
            f"{f.single.p99_ms:.2f} ms",
            f.single.p99_ms < GOAL_P99_MS,
        ),
        Goal(
            "batch API >= 50% of the baseline",
            f"{api_rate / base_rate:.0%}",
            api_rate / base_rate >= GOAL_BATCH_RATIO,
        ),
        Goal(
            "a 10k batch in < 250 ms (p50)",
            f"{api_p50:.1f} ms (max {max(f.batch.server_ms):.1f} ms)",
            api_p50 < GOAL_BATCH_MS,
        ),
        Goal("worker RSS growth <= 10%", f"{growth:+.1%}", growth <= GOAL_RSS_GROWTH),
    ]
    print_summary("eligibility", figures, goals)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=50_000)
    parser.add_argument("--accounts", type=int, default=None, help="default: 80%% of profiles")
    parser.add_argument("--duration", type=float, default=15, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before each run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="10k-id batches")
    parser.add_argument("--keep-db", action="store_true", help="reuse a seeded database")
    parser.add_argument(
        "--profile", type=Path, help="py-spy one worker during run (b) into this raw file"
    )
    args = parser.parse_args(argv)
    if min(args.recordings, args.profiles, args.duration, args.connections, args.batches) < 1:
        parser.error("sizes, duration, connections and batches must be positive")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    accounts = args.accounts or max(1, args.profiles * 4 // 5)
    spec = SeedSpec(recordings=args.recordings, profiles=args.profiles, accounts=accounts)
    say(f"Eligibility benchmark against {HOST}: {spec.marker}")
    try:
        figures = measure(args, spec)
    except BenchError as error:
        fail(str(error))
        return 1
    if figures.batch.mismatches:
        fail(f"{figures.batch.mismatches} batch answers differ from the rule")
        report(args, spec, figures)
        return 1
    report(args, spec, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
