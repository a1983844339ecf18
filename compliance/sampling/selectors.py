"""Reads for sampling: which recordings a draw may take, and a uniform pick among them.

HAND-WRITTEN SQL. The pick probes thousands of random ids per draw, and the draw
re-checks its candidates once they are locked: each is one SQL statement over one array
of ids, because through an ORM filter of the rule the draw took markedly longer
(`eligible_sql()`'s docstring says why; bench/sampling.py measures it).
`candidates_sql` composes that statement from:

- the eligibility rule's own SQL fragments, `eligible_sql()` in
  compliance/eligibility/rules.py, for every purpose a reviewer's hearing serves: the
  rule's conditions are stated there only, and proved there to select exactly what
  `decide()` finds eligible;
- what a hand-out adds: audio to hear, active and within its retention (asked of the
  rule as an artefact that must be present); never handed out before; the
  restrictions asked; the transcripts to show.

tests/sampling/test_selectors.py proves the composed statement against `decide()` plus
the hand-out's own conditions, on its own worlds and on the eligibility app's. It never
has the last word: every access to a clip re-checks with `facts_for()` and `decide()`
(services.review_item_audio_open).
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from compliance.consent.models import Purpose
from compliance.core.sql import pg_array
from compliance.eligibility.rules import artefact_category_sql, eligible_sql
from compliance.recordings.models import Artefact, ArtefactState, Category, Recording

from .models import HANDED_OUT, ReviewItem

# The pick probes random ids. The first round of a scope not seen before assumes this
# share of the id space is sampleable; later rounds, and later draws of the same scope,
# size themselves from the rate actually seen.
_FIRST_GUESS_RATE = 0.25
# Beyond this many probes, ORDER BY random() over the filter is cheaper than probing.
MAX_PROBES = 100_000
# SQLite has no arrays: ids go as parameters, at most this many per statement.
_SQLITE_CHUNK = 5_000

# The hit rate last seen per scope: a hint for the size of the first round, nothing more.
_seen_rates: dict["SampleScope", float] = {}
_RATES_KEPT = 1_000


@dataclass(frozen=True)
class SampleScope:
    purpose: str
    reviewer_location: str
    jurisdiction: str | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None


def reviewable_purposes(purpose: str) -> list[str]:
    """People hear every sampled clip: human review is always needed, and the purpose
    the sample serves as well when it is another."""
    return list(dict.fromkeys([Purpose.HUMAN_REVIEW, purpose]))


def candidates_sql(
    scope: SampleScope,
    *,
    now: datetime,
    ids: int | None = None,
    random_limit: bool = False,
    transcripts: bool = False,
) -> tuple[str, list[Any]]:
    """SQL and parameters selecting the ids of the recordings a draw for `scope` may
    hand out at `now`. With `ids` (a count), only among that many ids given as the last
    parameter(s); with `random_limit`, in random order, limited by a last parameter;
    with `transcripts`, each id with the text of its transcript if one may be shown."""
    recording, artefact, item = (
        Recording._meta.db_table,
        Artefact._meta.db_table,
        ReviewItem._meta.db_table,
    )
    # The hand-out needs audio to hear: the rule requires it present, active and within
    # its retention, in place of its own "not past its retention" for the audio.
    rule = eligible_sql(
        purposes=reviewable_purposes(scope.purpose),
        reviewer_location=scope.reviewer_location,
        now=now,
        present=[Category.AUDIO],
    )
    joins = list(rule.joins)
    join_params = list(rule.join_params)
    # Only table names (from model metadata), placeholders and categories
    # (artefact_category_sql) are interpolated.
    where = [
        *rule.where,
        # never handed out before
        f"NOT EXISTS (SELECT 1 FROM {item} i WHERE i.recording_id = r.id"  # noqa: S608
        f" AND (i.state IN ({', '.join(['%s'] * len(HANDED_OUT))})"
        " OR i.delivered_at IS NOT NULL))",
    ]
    params: list[Any] = [*rule.where_params, *HANDED_OUT]
    if scope.jurisdiction is not None:
        where.append("r.jurisdiction = %s")
        params.append(scope.jurisdiction)
    if scope.recorded_from is not None:
        where.append("r.recorded_at >= %s")
        params.append(connection.ops.adapt_datetimefield_value(scope.recorded_from))
    if scope.recorded_to is not None:
        where.append("r.recorded_at < %s")
        params.append(connection.ops.adapt_datetimefield_value(scope.recorded_to))
    if ids is not None:
        if connection.vendor == "postgresql":
            where.append("r.id = ANY(%s::bigint[])")
        else:
            where.append(f"r.id IN ({', '.join(['%s'] * ids)})")
    columns = "r.id"
    if transcripts:
        columns += ", tx.text"
        at = connection.ops.adapt_datetimefield_value(now)
        joins.append(
            f"LEFT JOIN {artefact} tx ON tx.recording_id = r.id"
            f" AND tx.category = {artefact_category_sql(Category.TRANSCRIPT)}"
            " AND tx.state = %s AND (tx.expires_at IS NULL OR tx.expires_at > %s)"
        )
        join_params += [ArtefactState.ACTIVE, at]
    sql = (
        f"SELECT {columns} FROM {recording} r {' '.join(joins)}"  # noqa: S608
        f" WHERE {' AND '.join(where)}"
    )
    if random_limit:
        sql += " ORDER BY random() LIMIT %s"
    return sql, join_params + params


def _run(sql: str, params: list[Any]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _candidates_among(
    scope: SampleScope, *, now: datetime, among: Sequence[int], transcripts: bool = False
) -> list[tuple]:
    """The rows of `candidates_sql` among the ids `among`: on PostgreSQL one statement
    with the ids as one array parameter; on SQLite, which has no arrays, one statement
    per _SQLITE_CHUNK ids."""
    if not among:
        return []
    postgresql = connection.vendor == "postgresql"
    chunks = (
        [among]
        if postgresql
        else [among[start : start + _SQLITE_CHUNK] for start in range(0, len(among), _SQLITE_CHUNK)]
    )
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        for chunk in chunks:
            sql, params = candidates_sql(scope, now=now, ids=len(chunk), transcripts=transcripts)
            cursor.execute(sql, [*params, pg_array(chunk)] if postgresql else [*params, *chunk])
            rows += cursor.fetchall()
    return rows


def candidate_ids(
    scope: SampleScope, *, now: datetime, among: Sequence[int] | None = None
) -> list[int]:
    """The ids a draw for `scope` may hand out at `now` (among `among`, when given), in
    no particular order."""
    if among is None:
        return _run(*candidates_sql(scope, now=now))
    return [row[0] for row in _candidates_among(scope, now=now, among=among)]


def candidates_recheck(
    scope: SampleScope, *, now: datetime, among: Sequence[int]
) -> dict[int, str | None]:
    """Which of `among` a draw for `scope` may still hand out at `now`, each with its
    transcript (None when it has none that may be shown)."""
    return dict(_candidates_among(scope, now=now, among=among, transcripts=True))


def _fresh_ids(rng: random.Random, lo: int, hi: int, count: int, probed: set[int]) -> list[int]:
    """`count` distinct ids in [lo, hi] that are not in `probed`, uniformly."""
    space = hi - lo + 1
    if not probed:
        return rng.sample(range(lo, hi + 1), count)
    if len(probed) * 2 >= space:
        rest = [i for i in range(lo, hi + 1) if i not in probed]
        return rng.sample(rest, min(count, len(rest)))
    fresh: set[int] = set()
    while len(fresh) < count:
        candidate = rng.randint(lo, hi)
        if candidate not in probed:
            fresh.add(candidate)
    return list(fresh)


def _id_bounds() -> tuple[int, int] | None:
    table = Recording._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id) FROM {table}")  # noqa: S608
        lo, hi = cursor.fetchone()
    return None if lo is None else (lo, hi)


def sample_pick(
    *,
    scope: SampleScope,
    now: datetime,
    count: int,
    rng: random.Random,
    max_probes: int = MAX_PROBES,
    first_guess_rate: float | None = None,
) -> list[int]:
    """Up to `count` ids a draw for `scope` may hand out, a uniformly random subset, in
    random order.

    Random id probes (far cheaper than ORDER BY random() over a large filter; see
    bench/sampling.py): every id in [min, max] of the recordings table is equally likely to
    be probed, so every candidate is equally likely to be hit; gaps in the id space only
    lower the hit rate. Rounds probe fresh ids until enough are hit, and the hits of
    the last round are taken in random order: the same as walking one random
    permutation of the id space. How many to probe in a round depends only on how many
    were hit so far, never on which, so the sample stays uniform. When probing would
    exceed `max_probes` (a narrow scope), ORDER BY random() over the filter: exact and
    uniform too, and then cheap, since few rows pass.
    """
    if count <= 0:
        return []
    bounds = _id_bounds()
    if bounds is None:
        return []
    lo, hi = bounds
    space = hi - lo + 1
    rate = first_guess_rate or _seen_rates.get(scope, _FIRST_GUESS_RATE)
    size = min(space, math.ceil(count / rate * 1.05) + 16)
    if size * 4 >= space:
        # A small table: read every candidate, then shuffle.
        everything = candidate_ids(scope, now=now)
        rng.shuffle(everything)
        return everything[:count]
    probed: set[int] = set()
    hits: list[int] = []
    while True:
        probes = _fresh_ids(rng, lo, hi, size, probed)
        probed.update(probes)
        found = candidate_ids(scope, now=now, among=probes)
        rng.shuffle(found)
        hits += found
        seen = len(hits) / len(probed)
        if seen > 0 and first_guess_rate is None:
            if len(_seen_rates) >= _RATES_KEPT:
                _seen_rates.clear()
            _seen_rates[scope] = seen
        if len(hits) >= count or len(probed) >= space:
            return hits[:count]
        needed = math.inf if seen == 0 else (count - len(hits)) / seen * 1.25 + 32
        if len(probed) + needed > max_probes:
            break
        size = min(space - len(probed), math.ceil(needed))
    sql, params = candidates_sql(scope, now=now, random_limit=True)
    return _run(sql, [*params, count])
