"""The eligibility rule: the one place it lives.

Recording R may be used for purpose P (by a reviewer at location L) now iff: R is
active; none of the artefacts P needs is past its effective retention; for
human_review, R's profile is not a child's and R is flagged neither sensitive nor
false wake; R's profile holds a current grant for P (explicit, or the jurisdiction's
default); and, for human_review with L given, L is R's jurisdiction or a transfer rule
allows L for it.

It is stated here twice, in the two forms its callers need, and tests prove on
generated data that both select exactly the recordings the rule above allows
(tests/eligibility/test_rules.py):
- `decide()`: the decision for one recording, with a reason code per failed
  condition, from facts that `facts_for()` reads in one query;
- `eligible_sql()`: the rule as a database filter, SQL joins and conditions over
  recordings aliased `r`, that a caller composes with its own conditions in one
  statement (the sampling draw, compliance/sampling/selectors.py).
Nobody else states the rule's conditions.

Decisions always read the primary database; nothing here is cached.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from compliance.consent.models import ConsentDefault, ConsentState, Purpose
from compliance.recordings.models import (
    Artefact,
    ArtefactState,
    Category,
    Recording,
    RecordingState,
)
from compliance.transfers.models import TransferRule

# The artefacts each purpose uses: people listen to the audio; training pairs the
# audio with its transcript. If one of them is past its retention, the purpose fails.
PURPOSE_NEEDS: dict[str, tuple[str, ...]] = {
    Purpose.HUMAN_REVIEW: (Category.AUDIO,),
    Purpose.MODEL_TRAINING: (Category.AUDIO, Category.TRANSCRIPT),
}


class Reason(StrEnum):
    PURGED = "purged"
    RETENTION_EXPIRED = "retention_expired"
    CHILD_PROFILE = "child_profile"
    SENSITIVE = "sensitive"
    FALSE_WAKE = "false_wake"
    NO_CONSENT = "no_consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    TRANSFER_NOT_ALLOWED = "transfer_not_allowed"


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rule needs to know about one recording."""

    external_id: str
    active: bool
    sensitive: bool
    false_wake: bool
    is_child: bool
    jurisdiction: str | None
    consent: bool | None  # the profile's explicit state; None: no event yet
    consent_default: bool | None  # the jurisdiction's default; None: none set
    transfer_rule: bool  # a rule allows the asked reviewer location for this jurisdiction
    retention_expired: bool = False


def decide(facts: Facts, *, purpose: str, reviewer_location: str | None = None) -> list[str]:
    """The reasons `facts`' recording may not be used for `purpose`; empty if it may."""
    if not facts.active:
        # A tombstone holds nothing to use and no profile to judge.
        return [Reason.PURGED]
    reasons: list[str] = []
    if facts.retention_expired:
        reasons.append(Reason.RETENTION_EXPIRED)
    human = purpose == Purpose.HUMAN_REVIEW
    if human:
        if facts.is_child:
            reasons.append(Reason.CHILD_PROFILE)
        if facts.sensitive:
            reasons.append(Reason.SENSITIVE)
        if facts.false_wake:
            reasons.append(Reason.FALSE_WAKE)
    if facts.consent is None:
        if facts.consent_default is not True:
            reasons.append(Reason.NO_CONSENT)
    elif facts.consent is False:
        reasons.append(Reason.CONSENT_WITHDRAWN)
    if (
        human
        and reviewer_location is not None
        and reviewer_location != facts.jurisdiction
        and not facts.transfer_rule
    ):
        reasons.append(Reason.TRANSFER_NOT_ALLOWED)
    return reasons


def artefact_category_sql(category: str) -> str:
    """`category` as an SQL literal, for a condition on the artefacts' category.

    A constant, not a parameter: each category has an index of its own, a partial one
    (`artefact_one_audio`, `artefact_one_transcript`, which cover what the rule reads),
    and PostgreSQL uses a partial index only where it can prove the index's condition
    from the statement's text, which a prepared statement's generic plan cannot from a
    parameter (docs/capacity.md, "One index a category"). Only a `Category` passes.
    """
    return f"'{Category(category).value}'"


# What the facts query's text depends on besides the vendor and the count of ids:
# whether a reviewer location is asked about, and the artefact categories needed.
FactsShape = tuple[bool, tuple[str, ...]]


def _past_retention_sql(category: str) -> str:
    """EXISTS: the recording `r`'s artefact of `category` is no longer usable (tombstoned
    or past its expiry). Parameters: the active state, then now."""
    artefact = Artefact._meta.db_table
    return (
        f"EXISTS (SELECT 1 FROM {artefact} x WHERE x.recording_id = r.id"  # noqa: S608
        f" AND x.category = {artefact_category_sql(category)}"
        " AND (x.state <> %s OR x.expires_at <= %s))"
    )


@lru_cache(maxsize=64)
def _facts_sql(vendor: str, count: int, with_location: bool, needs: tuple[str, ...]) -> str:
    """One query for the facts of many recordings.

    Hand-written SQL because this is the hot path: the ORM's query compilation and
    model machinery cost more than PostgreSQL's own work on the query (bench/). The
    conditions themselves stay in `decide()`. The profile's `is_child` and its
    account's `jurisdiction` are read from the recording, which carries copies of them
    (Recording's model): no lookup of the profile or the account per id.
    """
    recording = Recording._meta.db_table
    state = ConsentState._meta.db_table
    default = ConsentDefault._meta.db_table
    rule = TransferRule._meta.db_table
    if vendor == "postgresql":
        ids = "= ANY(%s::varchar[])"
    else:
        ids = "IN (" + ",".join(["%s"] * count) + ")"
    # Only table names (from model metadata) and categories (artefact_category_sql) are
    # interpolated; every other value is a parameter.
    transfer = (
        f"EXISTS (SELECT 1 FROM {rule} t WHERE t.jurisdiction = r.jurisdiction"  # noqa: S608
        " AND t.reviewer_location = %s)"
        if with_location
        else "FALSE"
    )
    expired = " OR ".join(_past_retention_sql(category) for category in needs)
    return (
        f"SELECT r.external_id, r.state, r.sensitive, r.false_wake, r.is_child,"  # noqa: S608
        f" r.jurisdiction, cs.granted, cd.granted, {transfer}, ({expired})"
        f" FROM {recording} r"
        f" LEFT JOIN {state} cs ON cs.profile_id = r.profile_id AND cs.purpose = %s"
        f" LEFT JOIN {default} cd ON cd.jurisdiction = r.jurisdiction AND cd.purpose = %s"
        " AND r.profile_id IS NOT NULL"
        f" WHERE r.external_id {ids}"
    )


# Ids per query: large enough to amortise the round trip, small enough that the
# plan stays on the indexes and a batch's rows never sit in memory all at once.
FACTS_CHUNK = 1000


def _facts_cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor for the facts query, on `db`'s current connection.

    On PostgreSQL it binds on the server (Django's own cursors bind on the client), so
    psycopg prepares the statement once per connection (`prepare_threshold` in the
    database OPTIONS) and PostgreSQL plans it once (`plan_cache_mode`): planning costs
    more than the query's execution (bench/eligibility.py). The psycopg
    cursor is kept with its connection, so its adapters are looked up once, not per
    call. It is wrapped as Django wraps its cursors, so it is logged and counted like
    any other.
    """
    if db.vendor != "postgresql":
        return db.cursor()
    import psycopg

    db.ensure_connection()
    raw = db.connection
    cursor = getattr(db, "_eligibility_cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = psycopg.Cursor(raw)
        db._eligibility_cursor = cursor  # type: ignore[attr-defined]
    return db._prepare_cursor(cursor)  # type: ignore[attr-defined]  # private, not in the stubs


# Outside a transaction, a batch of several chunks is spread over this many
# connections: the request's own and the rest from a small thread pool (each pool
# thread keeps its own connection). PostgreSQL then answers it on more than one core
# (bench/eligibility.py measures it).
FACTS_PARALLEL = 2

_pool: tuple[int, ThreadPoolExecutor] | None = None


def _facts_pool() -> ThreadPoolExecutor:
    """The pool of this process (a forked child makes its own: threads do not fork)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        executor = ThreadPoolExecutor(FACTS_PARALLEL - 1, thread_name_prefix="eligibility-facts")
        _pool = (os.getpid(), executor)
    return _pool[1]


def facts_pool_close() -> None:
    """Close the pool threads' database connections (tests, before the test database
    is dropped); the threads reconnect when next used."""
    if _pool is None or _pool[0] != os.getpid():
        return
    for _ in range(FACTS_PARALLEL - 1):
        _pool[1].submit(connections.close_all).result()


def _read_facts(
    db: BaseDatabaseWrapper, chunks: list[list[str]], head: list[Any], shape: FactsShape
) -> dict[str, Facts]:
    postgresql = db.vendor == "postgresql"
    active = RecordingState.ACTIVE
    facts: dict[str, Facts] = {}
    cursor = _facts_cursor(db)
    for chunk in chunks:
        cursor.execute(
            _facts_sql(db.vendor, len(chunk), *shape),
            [*head, chunk] if postgresql else [*head, *chunk],
        )
        for row in cursor.fetchall():
            facts[row[0]] = Facts(
                row[0],
                row[1] == active,
                bool(row[2]),
                bool(row[3]),
                bool(row[4]),
                row[5] or None,  # '': a recording without a profile
                None if row[6] is None else bool(row[6]),
                None if row[7] is None else bool(row[7]),
                bool(row[8]),
                bool(row[9]),
            )
    if not postgresql:
        cursor.close()
    return facts


def _read_facts_in_pool(
    chunks: list[list[str]], head: list[Any], shape: FactsShape
) -> dict[str, Facts]:
    """`_read_facts` on the pool thread's own connection; one that failed or outlived
    CONN_MAX_AGE is replaced first, as Django does between requests."""
    db = connections[DEFAULT_DB_ALIAS]
    db.close_if_unusable_or_obsolete()
    return _read_facts(db, chunks, head, shape)


def facts_for(
    external_ids: Sequence[str],
    *,
    purpose: str,
    reviewer_location: str | None = None,
    now: datetime | None = None,
) -> dict[str, Facts]:
    """The facts of every listed recording that exists, by external id, in one query
    per FACTS_CHUNK ids.

    Inside a transaction every query runs on its connection, so that what it wrote
    and locked is what is judged (the sampling re-check relies on it).
    """
    if not external_ids:
        return {}
    db = connections[DEFAULT_DB_ALIAS]
    needs = PURPOSE_NEEDS[purpose]
    at = db.ops.adapt_datetimefield_value(now or timezone.now())
    head: list[Any] = []
    if reviewer_location is not None:
        head.append(reviewer_location)
    head += [ArtefactState.ACTIVE, at] * len(needs) + [purpose, purpose]
    shape: FactsShape = (reviewer_location is not None, needs)
    chunks = [
        list(external_ids[start : start + FACTS_CHUNK])
        for start in range(0, len(external_ids), FACTS_CHUNK)
    ]
    if FACTS_PARALLEL < 2 or len(chunks) < 2 or db.vendor != "postgresql" or db.in_atomic_block:
        return _read_facts(db, chunks, head, shape)
    pool = _facts_pool()
    shares = [chunks[n::FACTS_PARALLEL] for n in range(FACTS_PARALLEL)]
    futures = [pool.submit(_read_facts_in_pool, share, head, shape) for share in shares[1:]]
    facts = _read_facts(db, shares[0], head, shape)
    for future in futures:
        facts.update(future.result())
    return facts


@dataclass(frozen=True, slots=True)
class EligibleSql:
    """The rule as SQL fragments over recordings aliased `r` (see `eligible_sql`).

    A statement uses them as `FROM <recordings> r <joins...> WHERE <where AND ...>`,
    with `join_params` then `where_params`; the caller may add joins after these and
    conditions after these, with their parameters after each group. The profile's
    `is_child` and its account's `jurisdiction` are the recording's own copies
    (`r.is_child`, `r.jurisdiction`): neither table is joined. `csN` and `cdN` are
    taken.
    """

    joins: tuple[str, ...]
    join_params: tuple[object, ...]
    where: tuple[str, ...]
    where_params: tuple[object, ...]


def eligible_sql(
    *,
    purposes: Sequence[str],
    reviewer_location: str | None = None,
    now: datetime,
    present: Sequence[str] = (),
) -> EligibleSql:
    """The rule as SQL: joins and conditions keeping exactly the recordings (aliased `r`)
    that may be used now for every one of `purposes`, by a reviewer at
    `reviewer_location` (which, as in `decide()`, only human_review asks about).

    `present` names artefact categories the caller itself needs: each must exist, be
    active and be within its retention at `now`. For a category a purpose needs, that
    also states the rule's "not past its retention" (a recording holds at most one
    audio and one transcript, a database constraint), so it takes that condition's
    place instead of adding a second subquery.

    WHY SQL. The sampling draw probes thousands of random ids and re-checks what it
    locked. Through an ORM filter of the rule those queries were the larger part of a
    large draw (PostgreSQL plans the filter's OR of EXISTS subqueries as hashed scans of
    the whole consent table, and Django builds and quotes thousands of parameters); the
    same conditions written as joins, in one statement with the draw's own conditions
    and one array of ids, cost markedly less (bench/sampling.py).

    HOW IT IS PROVED. tests/eligibility/test_rules.py runs it on generated worlds, for
    each purpose and all of them at once, with and without a reviewer location and
    with artefacts required present, and checks that it selects exactly the recordings
    that `decide()` finds eligible. The fragments never have the last word either:
    every access to a clip re-checks with `facts_for()` and `decide()`.
    """
    wanted = list(dict.fromkeys(purposes))
    if not wanted:
        raise ValueError("eligible_sql needs at least one purpose")
    db = connections[DEFAULT_DB_ALIAS]
    at = db.ops.adapt_datetimefield_value(now)
    artefact = Artefact._meta.db_table
    state, default, rule = (
        ConsentState._meta.db_table,
        ConsentDefault._meta.db_table,
        TransferRule._meta.db_table,
    )
    human = Purpose.HUMAN_REVIEW in wanted
    # Only table names (from model metadata), aliases, placeholders and categories
    # (artefact_category_sql) are interpolated.
    # A recording without a profile has no consent, so it is never eligible.
    joins: list[str] = []
    join_params: list[Any] = []
    where = ["r.state = %s", "r.profile_id IS NOT NULL"]
    where_params: list[Any] = [RecordingState.ACTIVE]
    if human:
        where += ["NOT r.is_child", "NOT r.sensitive", "NOT r.false_wake"]
        if reviewer_location is not None:
            # the recording's own jurisdiction, or a transfer rule allows the location
            where.append(
                f"(r.jurisdiction = %s OR EXISTS (SELECT 1 FROM {rule} t"  # noqa: S608
                " WHERE t.jurisdiction = r.jurisdiction AND t.reviewer_location = %s))"
            )
            where_params += [reviewer_location, reviewer_location]
    for category in dict.fromkeys(present):
        where.append(
            f"EXISTS (SELECT 1 FROM {artefact} x WHERE x.recording_id = r.id"  # noqa: S608
            f" AND x.category = {artefact_category_sql(category)} AND x.state = %s"
            " AND (x.expires_at IS NULL OR x.expires_at > %s))"
        )
        where_params += [ArtefactState.ACTIVE, at]
    needs = sorted({category for purpose in wanted for category in PURPOSE_NEEDS[purpose]})
    for category in needs:
        if category in present:
            continue
        # no artefact that a purpose needs is past its retention
        where.append(f"NOT {_past_retention_sql(category)}")
        where_params += [ArtefactState.ACTIVE, at]
    for n, purpose in enumerate(wanted):
        # a current grant: explicit, or (no event yet) the jurisdiction's default
        joins += [
            f"LEFT JOIN {state} cs{n} ON cs{n}.profile_id = r.profile_id AND cs{n}.purpose = %s",
            f"LEFT JOIN {default} cd{n} ON cd{n}.jurisdiction = r.jurisdiction"
            f" AND cd{n}.purpose = %s",
        ]
        join_params += [purpose, purpose]
        where.append(
            f"(cs{n}.granted IS TRUE OR (cs{n}.granted IS NULL AND cd{n}.granted IS TRUE))"
        )
    return EligibleSql(tuple(joins), tuple(join_params), tuple(where), tuple(where_params))
