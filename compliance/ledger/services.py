"""Appending to the ledger, and verifying it in full.

Every entry is written in the transaction of the change it records, so the change and
its evidence commit or vanish together. Appends are serialised (a transaction-scoped
advisory lock on PostgreSQL; SQLite serialises writers itself) so that concurrent
writers still form one chain.

A full verification re-hashes the whole chain, which grows by an entry per purge
batch, consent change, clip access...: far too much for a page load. So it runs as a
`VerificationRun` in steps of bounded time, from Celery beat (every
LEDGER_VERIFY_EVERY_SECONDS), from an officer's button and from `verify_ledger`; the
page checks on only from the newest intact run's end. A step claims its run with a
conditional UPDATE and a lease, commits the run's progress after each chunk, and
writes nothing once another worker has taken the run over (attempt fencing), so a
step is safe to run twice, at once, or to be killed at any point.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from compliance.core.enqueue import enqueue_on_commit

from .models import GENESIS_HASH, LedgerEntry, VerificationRun

if TYPE_CHECKING:
    from .selectors import ChainPoint, LedgerProblem

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key for the ledger tail; any constant unique to this lock.
_LEDGER_LOCK_KEY = 0x4541_5253_484F_54  # "EARSHOT"
# ... and for starting a full verification, so that two requests start one run.
_VERIFICATION_LOCK_KEY = 0x4541_5253_484F_55
# A step's claim on its run; far above a step's time (VERIFY_STEP_SECONDS and a chunk).
VERIFY_LEASE = timedelta(minutes=5)
VERIFY_STEP_SECONDS = 50.0
# A run asked for this long ago and never claimed lost its task: the sweep sends another.
VERIFY_UNCLAIMED_GRACE = timedelta(seconds=30)


def entry_hash(
    *,
    seq: int,
    created_at: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "created_at": created_at.astimezone(UTC).isoformat(),
            "kind": kind,
            "subject": subject,
            "actor": actor,
            "payload": payload,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def ledger_append(
    *, kind: str, subject: str = "", actor: str = "", payload: dict[str, Any] | None = None
) -> LedgerEntry:
    """Append one entry. Must run inside the transaction of the change it records."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger_append must run inside the transaction of the change")
    payload = json.loads(json.dumps(payload or {}, default=str))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LEDGER_LOCK_KEY])
    last = LedgerEntry.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    created_at = timezone.now()
    return LedgerEntry.objects.create(
        seq=seq,
        created_at=created_at,
        kind=kind,
        subject=subject,
        actor=actor,
        payload=payload,
        prev_hash=prev_hash,
        hash=entry_hash(
            seq=seq,
            created_at=created_at,
            kind=kind,
            subject=subject,
            actor=actor,
            payload=payload,
            prev_hash=prev_hash,
        ),
    )


# --- full verifications ------------------------------------------------------------------


def _verification_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_VERIFICATION_LOCK_KEY])


def ledger_verification_start(*, requested_by: str, by_worker: bool = True) -> VerificationRun:
    """A new full verification, beside any other running. Its first step goes to a
    worker after commit, unless the caller runs the steps itself (`verify_ledger`, which
    wants its own answer, now)."""
    from .tasks import ledger_verification_step_task  # the tasks import us

    run = VerificationRun.objects.create(requested_by=requested_by, requested_at=timezone.now())
    if by_worker:
        # An unclaimed run is the work: the verification sweep resumes it if this is lost.
        enqueue_on_commit(ledger_verification_step_task, run.pk)
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
        progress = {
            "through_id": walk.end.id,
            "through_seq": walk.end.seq,
            "through_hash": walk.end.hash,
            "lease_until": timezone.now() + VERIFY_LEASE,
        }
        if walk.problem is not None or walk.complete:
            outcome = VerificationRun.Status.INTACT if walk.ok else VerificationRun.Status.BROKEN
            progress.update(
                status=outcome,
                finished_at=timezone.now(),
                lease_until=None,
                problem_seq=walk.problem.seq if walk.problem else None,
                problem=walk.problem.problem if walk.problem else "",
            )
        if not mine.update(**progress):
            return None  # the lease lapsed and another worker took the run over
        if walk.problem is not None or walk.complete:
            _log_finished(run_id, walk.end, walk.problem)
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
    run.refresh_from_db()
    return run


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
