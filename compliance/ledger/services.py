"""Appending to the ledger, and verifying it in full.

Every entry is written in the transaction of the change it records, so the change and
its evidence commit or vanish together. Appends are serialised (a transaction-scoped
advisory lock on PostgreSQL; SQLite serialises writers itself) so that concurrent
writers still form one chain.

A full verification re-hashes the whole chain, which grows by an entry per purge
batch, consent change, clip access...: far too much for a page load. So it runs as a
`VerificationRun` in steps of bounded time, from Celery beat (every
LEDGER_VERIFY_EVERY_SECONDS), from an officer's button and from `verify_ledger`; the
page checks on only from the reference's end. A step claims its run with a
conditional UPDATE and a lease, commits the run's progress after each chunk, and
writes nothing once another worker has taken the run over (attempt fencing), so a
step is safe to run twice, at once, or to be killed at any point.

A chain that links from its first entry may still be short of entries (the newest
deleted) or re-forged (an entry rewritten and every later hash recomputed). So a run
that finds it linked holds it against the reference, the furthest point an earlier
run verified or an officer accepted, before it calls it intact; and a broken finding
stands until an officer acknowledges it (`ledger_acknowledge`), whatever later runs
find.

Locks, in the codebase's order (account -> profile -> consent lock -> consent state ->
recording -> artefact -> review item -> reviewer quota row -> ledger append last): the
verification lock (an advisory lock) and then verification run rows come before the
ledger append.
"""

import base64
import functools
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from compliance.core.enqueue import enqueue_on_commit
from compliance.core.errors import ApplicationError, Conflict, field_error
from compliance.core.sql import bound_cursor

from .canonical import entry_leaf, entry_leaf_around, leaf_hash, leaf_spliced
from .checkpoints import ledger_checkpoint_problem
from .models import (
    APPEND_LOCK_KEY,
    GENESIS_HASH,
    LedgerAcknowledgement,
    LedgerEntry,
    VerificationRun,
)
from .parts import parts_build, parts_root, parts_store
from .restore import ledger_require_writable

if TYPE_CHECKING:
    from .selectors import ChainPoint, LedgerProblem

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key for the ledger tail.
_LEDGER_LOCK_KEY = APPEND_LOCK_KEY
# ... and for starting a full verification, so that two requests start one run.
_VERIFICATION_LOCK_KEY = 0x4541_5253_484F_55
# A step's claim on its run; far above a step's time (VERIFY_STEP_SECONDS and a chunk).
VERIFY_LEASE = timedelta(minutes=5)
VERIFY_STEP_SECONDS = 50.0
# A run asked for this long ago and never claimed lost its task: the sweep sends another.
VERIFY_UNCLAIMED_GRACE = timedelta(seconds=30)
# An acknowledgement's reason, at most (it goes into the ledger whole).
ACKNOWLEDGEMENT_REASON_MAX = 2000


def ledger_append(
    *,
    kind: str,
    subject: str = "",
    actor: str = "",
    payload: dict[str, Any] | None = None,
    parts: Mapping[str, Mapping[str, Any]] | None = None,
) -> LedgerEntry:
    """Append one entry. Must run inside the transaction of the change it records.

    The entry's leaf (its canonical bytes) is encoded here, once, and stored; a payload
    the encoding refuses (a float, say) is a programming error and raises NotCanonical
    before anything is written. The Merkle tree is not touched: the checkpointer
    extends it, so an append costs one encoding and one statement on PostgreSQL
    (`ledger_append_entry`: the lock, the chain's head, the INSERT; the leaf is
    encoded around the head's hash and number, which the function puts in).

    `parts`, for an entry that covers many profiles: what it records of each profile,
    by the profile's external id. The payload then commits to them only through
    `parts_root` and `parts` (their number), and they are stored beside the entry
    (compliance/ledger/parts.py), so that each can be proven without the others.

    Refused (503 `ledger_behind_export`) while the database's log is behind the exported
    one (a restore from an older backup, docs/runtime.md): this entry's number is one a
    signed checkpoint already gave to another entry."""
    payload = _appendable(payload)
    built = None
    if parts is not None:
        built = parts_build(json.loads(json.dumps(parts, default=str)))
        payload["parts_root"] = base64.b64encode(parts_root(built)).decode()
        payload["parts"] = len(built)
    if connection.vendor == "postgresql":
        prepared = _prepared(kind=kind, subject=subject, actor=actor, payload=payload)
        with bound_cursor() as cursor:
            # lock, head, INSERT: one statement (migration 0009)
            cursor.execute(_APPEND_SQL, prepared.params())
            entry = prepared.entry(*cursor.fetchone())
        seq = entry.seq
    else:
        created_at = timezone.now()
        with bound_cursor() as cursor:
            cursor.execute(_HEAD_SQL)  # SQLite serialises writers itself
            last = cursor.fetchone()
            seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            leaf = entry_leaf(
                seq=seq,
                created_at=created_at,
                kind=kind,
                subject=subject,
                actor=actor,
                payload=payload,
                prev_hash=prev_hash,
            )
            entry = _entry(seq, created_at, kind, subject, actor, payload, prev_hash, leaf)
            fields, sql = _insert_sql()
            cursor.execute(
                sql, [f.get_db_prep_save(getattr(entry, f.attname), connection) for f in fields]
            )
            entry.pk = cursor.fetchone()[0]
    if built:
        parts_store(seq=seq, parts=built)
    return entry


@dataclass(frozen=True)
class PreparedEntry:
    """An entry encoded around its place in the chain, for a statement that appends it
    with `LEDGER_APPEND_CALL` (PostgreSQL)."""

    kind: str
    subject: str
    actor: str
    payload: dict[str, Any]
    created_at: datetime
    head: bytes
    tail: bytes

    def params(self) -> list[Any]:
        """LEDGER_APPEND_CALL's parameters."""
        return [
            _LEDGER_LOCK_KEY,
            GENESIS_HASH,
            self.created_at,
            self.kind,
            self.subject,
            self.actor,
            json.dumps(self.payload),
            self.head,
            self.tail,
        ]

    def entry(self, pk: int, seq: int, prev_hash: str) -> LedgerEntry:
        """The entry as appended: what LEDGER_APPEND_CALL returned."""
        leaf = leaf_spliced(self.head, self.tail, seq=seq, prev_hash=prev_hash)
        entry = _entry(
            seq, self.created_at, self.kind, self.subject, self.actor, self.payload, prev_hash, leaf
        )
        entry.pk = pk
        return entry


def ledger_entry_prepare(
    *, kind: str, subject: str = "", actor: str = "", payload: dict[str, Any] | None = None
) -> PreparedEntry | None:
    """An append for the caller's own statement to make (`LEDGER_APPEND_CALL`, the
    statement's last act: the ledger's lock comes last), refused as `ledger_append`
    refuses; None where the database has no such function (SQLite: the caller calls
    `ledger_append`). Must run inside the transaction of the change."""
    if connection.vendor != "postgresql":
        return None
    return _prepared(kind=kind, subject=subject, actor=actor, payload=_appendable(payload))


def _appendable(payload: dict[str, Any] | None) -> dict[str, Any]:
    """What every append checks first: inside the transaction of the change, the log
    writable; and the payload as JSON will store it."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger_append must run inside the transaction of the change")
    ledger_require_writable()
    return json.loads(json.dumps(payload or {}, default=str))


def _prepared(*, kind: str, subject: str, actor: str, payload: dict[str, Any]) -> PreparedEntry:
    created_at = timezone.now()
    head, tail = entry_leaf_around(
        created_at=created_at, kind=kind, subject=subject, actor=actor, payload=payload
    )
    return PreparedEntry(kind, subject, actor, payload, created_at, head, tail)


# On PostgreSQL, the whole append (migration 0009); its columns: the entry's id, number
# and previous hash.
LEDGER_APPEND_CALL = "ledger_append_entry(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
_APPEND_SQL = "SELECT * FROM " + LEDGER_APPEND_CALL  # noqa: S608 (a constant)
_HEAD_SQL = "SELECT seq, hash FROM ledger_ledgerentry ORDER BY seq DESC LIMIT 1"


def _entry(
    seq: int,
    created_at: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any],
    prev_hash: str,
    leaf: bytes,
) -> LedgerEntry:
    entry = LedgerEntry(
        seq=seq,
        created_at=created_at,
        kind=kind,
        subject=subject,
        actor=actor,
        payload=payload,
        prev_hash=prev_hash,
        hash=hashlib.sha256(leaf).hexdigest(),
        leaf=leaf,
        leaf_hash=leaf_hash(leaf),
    )
    entry._state.adding = False
    entry._state.db = connection.alias
    return entry


@functools.cache
def _insert_sql() -> tuple[list[Any], str]:
    fields = [f for f in LedgerEntry._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)  # type: ignore[arg-type]
    values = ", ".join(["%s"] * len(fields))
    # only the model's columns and placeholders are formatted in
    sql = f"INSERT INTO ledger_ledgerentry ({columns}) VALUES ({values}) RETURNING id"  # noqa: S608
    return fields, sql


# --- full verifications ------------------------------------------------------------------


def _verification_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_VERIFICATION_LOCK_KEY])


def ledger_verification_start(*, requested_by: str, by_worker: bool = True) -> VerificationRun:
    """A new full verification, beside any other running. Its first step goes to a
    worker after commit, unless the caller runs the steps itself (`verify_ledger`, which
    wants its own answer, now)."""
    run = VerificationRun.objects.create(requested_by=requested_by, requested_at=timezone.now())
    if by_worker:
        # An unclaimed run is the work: the verification sweep resumes it if this is lost.
        enqueue_on_commit("ledger.verification_step", run.pk)
    logger.info("ledger.verification_requested run=%s by=%s", run.pk, requested_by)
    return run


@transaction.atomic
def ledger_verification_request(*, requested_by: str) -> tuple[VerificationRun, bool]:
    """Start a full verification unless one is running already; that one serves as well.
    Returns the run, and whether it is new."""
    _verification_lock()
    running = (
        VerificationRun.objects.filter(status=VerificationRun.Status.RUNNING)
        .order_by("requested_at", "id")
        .first()
    )
    if running is not None:
        return running, False
    return ledger_verification_start(requested_by=requested_by), True


def ledger_verification_step(
    *,
    run_id: int,
    after_attempt: int | None = None,
    budget_seconds: float | None = VERIFY_STEP_SECONDS,
    chunk: int = 5000,
) -> VerificationRun | None:
    """Walk a run on for about `budget_seconds` (None: to its end), and finish it if the
    chain ends or breaks. The run is claimed first: free, its lease lapsed, or still held
    by `after_attempt` (the step before, continuing). None if it is not ours to take,
    finished, or gone, or if another worker took it over on the way.

    The lease stays held after a step that did not finish, so only the continuation
    the caller queues (with the run's new `attempts`) picks it up, and the sweep waits
    for the lease to lapse before it resumes a run whose continuation was lost.
    """
    from .selectors import ChainPoint, ledger_walk  # the selectors import us

    now = timezone.now()
    claimable = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    if after_attempt is not None:
        claimable |= Q(attempts=after_attempt)
    claimed = VerificationRun.objects.filter(
        claimable, pk=run_id, status=VerificationRun.Status.RUNNING
    ).update(lease_until=now + VERIFY_LEASE, attempts=F("attempts") + 1)
    if not claimed:
        return None
    run = VerificationRun.objects.get(pk=run_id)
    mine = VerificationRun.objects.filter(
        pk=run_id, status=VerificationRun.Status.RUNNING, attempts=run.attempts
    )
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    start = ChainPoint(run.through_id, run.through_seq, run.through_hash)
    for walk in ledger_walk(start=start, chunk=chunk):
        if walk.problem is not None or walk.complete:
            if not _finish(mine, run_id, walk.end, walk.problem, chunk=chunk):
                return None
            break
        progress = {
            "through_id": walk.end.id,
            "through_seq": walk.end.seq,
            "through_hash": walk.end.hash,
            "lease_until": timezone.now() + VERIFY_LEASE,
        }
        if not mine.update(**progress):
            return None  # the lease lapsed and another worker took the run over
        if deadline is not None and time.monotonic() >= deadline:
            break
    run.refresh_from_db()
    return run


def _finish(
    mine: "QuerySet[VerificationRun]",
    run_id: int,
    end: "ChainPoint",
    problem: "LedgerProblem | None",
    *,
    chunk: int,
) -> bool:
    """Record how a run ended: broken at `problem`, or, when the chain links up to
    `end`, as the reference says. False if the run is no longer ours.

    Under the verification lock, so that the reference cannot move (an acknowledgement)
    between reading it and recording what was held against it.
    """
    with transaction.atomic():
        _verification_lock()
        if problem is None:
            end, problem = _held_against_reference(end, chunk=chunk)
        if problem is None:
            problem = _held_against_checkpoint(chunk=chunk)
        finished = mine.update(
            through_id=end.id,
            through_seq=end.seq,
            through_hash=end.hash,
            status=VerificationRun.Status.INTACT
            if problem is None
            else VerificationRun.Status.BROKEN,
            finished_at=timezone.now(),
            lease_until=None,
            problem_seq=problem.seq if problem else None,
            problem=problem.problem if problem else "",
        )
    if finished:
        _log_finished(run_id, end, problem)
    return bool(finished)


def _held_against_reference(
    end: "ChainPoint", *, chunk: int
) -> tuple["ChainPoint", "LedgerProblem | None"]:
    """Where a chain that links from its first entry to `end` ends, and what it lacks
    of the reference, if anything."""
    from .selectors import ledger_reference, ledger_reference_problem, ledger_walk

    reference = ledger_reference()
    if reference is not None and reference.point.seq > end.seq:
        # Entries appended after this walk read its last chunk may reach the reference
        # (a run that finished meanwhile, or an acknowledgement, fixed a later point):
        # walk on before calling any entry missing.
        *_, more = ledger_walk(start=end, chunk=chunk)
        if more.problem is not None:
            return more.end, more.problem
        end = more.end
    return end, ledger_reference_problem(end=end, reference=reference)


def _held_against_checkpoint(*, chunk: int) -> "LedgerProblem | None":
    """What the entries lack of the newest published checkpoint: the reference above
    lives in this database, the checkpoint outside it, so a rewrite of both (or a
    restore of an older backup) still contradicts the checkpoint."""
    from .selectors import LedgerProblem

    found = ledger_checkpoint_problem(chunk=chunk)
    return None if found is None else LedgerProblem(*found)


def _log_finished(run_id: int, end: "ChainPoint", problem: "LedgerProblem | None") -> None:
    if problem is None:
        # The tip's hash in the logs, kept apart from the database, lets anyone later
        # tell a chain re-forged before it from the one verified here.
        logger.info("ledger.verified run=%s entries=%d hash=%s", run_id, end.seq, end.hash)
    else:
        logger.error(
            "ledger.verification_failed run=%s seq=%d entries_intact=%d",
            run_id,
            problem.seq,
            end.seq,
        )


def ledger_acknowledge(*, run_id: int, reason: str, actor: str) -> LedgerAcknowledgement:
    """An officer acknowledges the broken findings that stand, the newest being run
    `run_id`'s (the one they were shown: if a newer one has come since, they are
    refused, to read it first). The acknowledgement goes into the ledger, and its
    entry becomes the reference later full verifications are held against.
    """
    reason = reason.strip()
    if not reason:
        raise ApplicationError(
            "reason_required",
            "Say why the finding is acknowledged.",
            fields=field_error("reason", "required", "This field is required."),
        )
    if len(reason) > ACKNOWLEDGEMENT_REASON_MAX:
        raise ApplicationError(
            "reason_too_long",
            f"The reason is longer than {ACKNOWLEDGEMENT_REASON_MAX} characters.",
            fields=field_error(
                "reason", "max_length", f"At most {ACKNOWLEDGEMENT_REASON_MAX} characters."
            ),
        )
    with transaction.atomic():
        # Lock order: the verification lock, the run rows, the ledger append last.
        _verification_lock()
        standing = list(
            VerificationRun.objects.filter(
                status=VerificationRun.Status.BROKEN, acknowledgement__isnull=True
            ).order_by("-finished_at", "-id")
        )
        if not standing:
            raise Conflict("nothing_to_acknowledge", "No broken finding waits to be acknowledged.")
        newest = standing[0]
        if newest.pk != run_id:
            raise Conflict(
                "finding_superseded",
                f"Full verification #{newest.pk} has found the ledger broken since; read its "
                "finding, then acknowledge that.",
            )
        acknowledgement = LedgerAcknowledgement.objects.create(
            acknowledged_by=actor, acknowledged_at=timezone.now(), reason=reason
        )
        # By id, the runs read above: one that finds the ledger broken from now on
        # was not seen, and stands.
        VerificationRun.objects.filter(pk__in=[run.pk for run in standing]).update(
            acknowledgement=acknowledgement
        )
        entry = ledger_append(
            kind="ledger.acknowledged",
            subject=f"verification_run:{newest.pk}",
            actor=actor,
            payload={
                "acknowledgement": acknowledgement.pk,
                "reason": reason,
                "runs": [run.pk for run in standing],
                "problem_seq": newest.problem_seq,
                "problem": newest.problem,
            },
        )
        acknowledgement.through_id = entry.pk
        acknowledgement.through_seq = entry.seq
        acknowledgement.through_hash = entry.hash
        acknowledgement.save(update_fields=["through_id", "through_seq", "through_hash"])
    logger.warning(
        "ledger.acknowledged acknowledgement=%s runs=%s by=%s seq=%d hash=%s",
        acknowledgement.pk,
        [run.pk for run in standing],
        actor,
        entry.seq,
        entry.hash,
    )
    return acknowledgement


@dataclass(frozen=True)
class VerificationSweep:
    started: int | None  # a scheduled run, started now (its first step is queued)
    resume: list[int]  # runs whose worker died or whose task was lost


def ledger_verifications_sweep(*, now: datetime | None = None) -> VerificationSweep:
    """What the beat rings for: a full verification when none was asked for within
    LEDGER_VERIFY_EVERY_SECONDS, and the runs to resume: lease lapsed (the worker
    died, or its continuation was lost), or never claimed (the first task was lost)."""
    now = now or timezone.now()
    every = timedelta(seconds=settings.LEDGER_VERIFY_EVERY_SECONDS)
    started = None
    if not VerificationRun.objects.filter(requested_at__gt=now - every).exists():
        run, new = ledger_verification_request(requested_by="schedule")
        started = run.pk if new else None
    stalled = VerificationRun.objects.filter(status=VerificationRun.Status.RUNNING).filter(
        Q(lease_until__lt=now)
        | Q(lease_until__isnull=True, requested_at__lt=now - VERIFY_UNCLAIMED_GRACE)
    )
    if started is not None:
        stalled = stalled.exclude(pk=started)
    return VerificationSweep(started=started, resume=list(stalled.values_list("pk", flat=True)))
