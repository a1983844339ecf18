"""The batch purge: deleting artefacts whose retention has ended.

WHAT CANNOT BE UNDONE: the files unlinked from storage and the content cleared from
artefact rows. Nothing else is removed: a purged artefact and its recording stay as
tombstones (no content, no file, the purge time, reason and policy). Deletion requests
(deletion_requests.py) purge through the same batches; the storage sweep
(storage_sweep.py) settles files and rows a crash left apart.

LOCK ORDER, the one the whole codebase keeps: account -> profile -> consent lock ->
consent state -> recording -> artefact -> review item -> (reviewer quota row) -> ledger
append last. Here: the claim locks profiles, then artefacts; the finish locks
recordings, then artefacts, then review items, then the ledger. A retention-choice
change and a policy's reschedule lock profiles before artefacts too. Taken the other way
round (artefacts, then profiles), a claim deadlocked with a retention-choice change.

THE STEPS, for one batch (steps 1 and 3 are a transaction each):
1. claim: read the due artefacts' profiles, lock those FOR SHARE (the lock a hold takes
   FOR UPDATE, so a hold and a purge are ordered; a retention-choice change holds it
   too), then lock the due artefacts with SKIP LOCKED (two purges never take the same
   row, nor wait for each other), re-check the holds, mark what is held
   `purge_blocked`, and move the rest to `purging` with a new attempt number; one
   ledger entry for what was skipped and why.
2. unlink the stored files, a few threads at once (after the claim has committed; a
   missing file is success, any other failure ends the batch with its rows `purging`).
3. finish: tombstone the artefacts still `purging` under *our* attempt number (a stale
   worker whose claim was taken over updates zero rows), tombstone recordings left
   with nothing, revoke their review items, and write one ledger entry for the batch.
   On PostgreSQL it runs while step 2 is still deleting: each chunk of artefacts is
   written as soon as its files are gone, and nothing commits before the last one is.

WHY A RERUN IS SAFE: a worker killed after 1 leaves rows `purging`; the sweep takes
them over after a lease (new attempt number), unlinks again (missing is success) and
finishes. A live worker holds its batch's rows locked from the start of step 3, and
the takeover skips locked rows, so the lease can be short: it only has to cover a
dead worker. Killed after 2, the same. Killed after 3, nothing is left to do. Nothing is
ever deleted that was not claimed while due and unheld. The step boundaries are sent
as `purge_step` signals, which nothing in the service receives; the crash tests'
workers connect a receiver that kills the process there (docs/invariants.md).
"""

import logging
import time
from collections import Counter
from collections.abc import Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Min, OuterRef, Q
from django.dispatch import Signal
from django.utils import timezone

from compliance.core.audit import audit_bulk_change
from compliance.core.storage import storage_delete
from compliance.ledger.services import ledger_append
from compliance.recordings.models import Artefact, ArtefactState, Recording, RecordingState

from .models import LegalHold
from .reasons import EXPIRY_REASONS, PurgeReason, expiry_reason
from .selectors import hold_covers, hold_filter
from .services import profiles_lock_shared
from .tombstones import recordings_tombstone

logger = logging.getLogger(__name__)

# Artefacts one batch claims, and all that a worker holds in memory at once: fewer,
# larger statements (bench/purge.py measured half of it as no faster, within its noise).
PURGE_BATCH = 10_000
UNLINK_THREADS = 4
UNLINK_CHUNK = 1_000

# Sent with `step` = "claimed", "unlinked" (files gone, finish not committed) or
# "finished", at each step boundary of a batch, in the purging process.
purge_step = Signal()


def purge_lease() -> timedelta:
    """A claim older than this is taken over by the sweep: far above a batch's runtime."""
    return timedelta(seconds=settings.PURGE_LEASE_SECONDS)


@dataclass
class BatchResult:
    claimed: int = 0
    purged: int = 0
    held: int = 0
    recordings_purged: int = 0
    max_lag_seconds: float = 0.0
    looked: int = 0  # candidates read before locking (claimed, held, or locked by others)
    last_id: int = 0  # the highest artefact id looked at
    held_by: Counter = field(default_factory=Counter)


# What a claim reads of each artefact, in _Claimed's order. Not `expires_at`: Django's
# loader turns each timestamp into a datetime in Python, which cost more of a batch's
# CPU than anything else read per row; the finish asks PostgreSQL for the oldest one.
_CLAIMED_FIELDS = (
    "id",
    "recording_id",
    "storage_key",
    "purge_attempt",
    "expiry_basis",
    "category",
)


class _Claimed(NamedTuple):
    id: int
    recording_id: int
    storage_key: str
    attempt: int
    reason: str
    basis: str
    category: str


def _recorded_at_under(holds: list[LegalHold], rows: list[tuple]) -> dict[int, datetime]:
    """When the recordings of `rows` were made (what a hold's date range is checked
    against), read only when one of `holds` covers their owners: reading it with every
    claim was a fifth of a batch's CPU."""
    if not holds:
        return {}
    recording_ids = sorted({r[1] for r in rows})
    return dict(Recording.objects.filter(pk__any_of=recording_ids).values_list("pk", "recorded_at"))


def _peek(candidates: Q, *, order: tuple[str, ...], limit: int) -> list[tuple[int, int | None]]:
    """The claim's first read, without locks: the next `limit` candidates in `order`,
    with their owners. For the periodic purge, `artefact_due` is in that order
    (expires_at, id), so a batch reads its own rows and stops: on expires_at alone, a
    backlog due at one instant was read and sorted whole by every batch."""
    return list(
        Artefact.objects.filter(candidates)
        .order_by(*order)
        .values_list("id", "recording__profile_id")[:limit]
    )


def _claim(
    candidates: Q,
    *,
    now: datetime,
    reason: PurgeReason | None,
    limit: int,
    order: tuple[str, ...],
) -> tuple[list[_Claimed], BatchResult]:
    """Step 1. `reason` None: the reason follows from each artefact's expiry basis.

    Locks in the codebase's order (profile before artefact): a first read, without
    locks, says which profiles the batch touches; their rows are locked FOR SHARE (a
    retention-choice change or a hold holds them exclusively, and is waited for); only
    then are the artefacts locked, SKIP LOCKED, and the candidates' condition checked
    again on what has committed meanwhile. Locking the artefacts first, as this did,
    deadlocked with a retention-choice change (profile, then its artefacts)."""
    result = BatchResult()
    with transaction.atomic():
        peeked = _peek(candidates, order=order, limit=limit)
        if not peeked:
            return [], result
        result.looked = len(peeked)
        result.last_id = max(r[0] for r in peeked)
        profiles_lock_shared(sorted({r[1] for r in peeked if r[1] is not None}))
        # each artefact with its recording's owner (read, not locked: only the
        # artefacts are claimed; the profiles are locked above)
        rows = list(
            Artefact.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(candidates, pk__any_of=sorted(r[0] for r in peeked))
            .order_by(*order)
            .values_list(
                *_CLAIMED_FIELDS,
                "recording__profile_id",
                "recording__profile__account_id",
            )
        )
        if not rows:
            return [], result
        profile_ids = sorted({r[6] for r in rows if r[6] is not None})
        account_ids = {r[7] for r in rows if r[7] is not None}
        holds = list(
            LegalHold.objects.filter(released_at__isnull=True).filter(
                Q(profile_id__any_of=profile_ids) | Q(account_id__any_of=sorted(account_ids))
            )
        )
        recorded_at = _recorded_at_under(holds, rows)
        claimed: list[_Claimed] = []
        held_ids: list[int] = []
        for row in rows:
            pk, recording_id, key, attempt, basis, category, profile_id, account_id = row
            covering = [
                h.pk
                for h in holds
                if profile_id is not None
                and hold_covers(
                    h,
                    profile_id=profile_id,
                    account_id=account_id,
                    recorded_at=recorded_at[recording_id],
                )
            ]
            if covering:
                held_ids.append(pk)
                result.held_by.update(covering)
                continue
            claimed.append(
                _Claimed(
                    pk,
                    recording_id,
                    key,
                    attempt + 1,
                    reason or expiry_reason(basis),
                    basis,
                    category,
                )
            )
        if held_ids:
            Artefact.objects.filter(pk__any_of=held_ids).update(purge_blocked=True)
            ledger_append(
                kind="purge.skipped_held",
                subject="purge",
                actor="purge",
                payload={
                    "artefacts": len(held_ids),
                    "holds": {str(k): v for k, v in sorted(result.held_by.items())},
                    "first_artefact": min(held_ids),
                },
            )
        if claimed:
            # In id order, as the statements of a batch go (claimed in expiry order,
            # the rows are scattered over the table's pages). A given reason (a deletion
            # request's) is kept with the claim, so that a take-over by the periodic
            # sweep finishes it under that reason; without one, the reason follows again
            # from the expiry basis.
            Artefact.objects.filter(pk__any_of=sorted(c.id for c in claimed)).update(
                state=ArtefactState.PURGING,
                purge_attempt=F("purge_attempt") + 1,
                purge_started_at=now,
                purge_reason=reason or "",
            )
    result.claimed = len(claimed)
    result.held = len(held_ids)
    return claimed, result


def _delete_files(keys: list[str]) -> None:
    """A missing file counts as deleted; on S3 one DeleteObjects request for the keys
    (compliance.core.storage)."""
    storage_delete(keys)


def _unlink(claimed: list[_Claimed]) -> Generator[list[_Claimed]]:
    """Step 2: yields the claimed artefacts, in id order and in chunks of at most
    UNLINK_CHUNK files, each once its files are gone (first those without a file). A
    missing file counts as deleted; any other error is raised where its chunk would
    have been yielded, and the rows stay `purging` for the sweep to take over."""
    in_order = sorted(claimed, key=lambda c: c.id)
    with_file = [c for c in in_order if c.storage_key]
    chunks = [with_file[n : n + UNLINK_CHUNK] for n in range(0, len(with_file), UNLINK_CHUNK)]
    # Deletes wait on the file system or the network, not the GIL: a few threads
    # overlap them. Each thread takes a share of a chunk's keys at once (a task per
    # file cost a third of the deletes' CPU in hand-offs between threads), and every
    # chunk's shares are queued before anything is yielded, so the threads never wait
    # for the caller, which writes the chunks already done meanwhile.
    threads = max(1, min(UNLINK_THREADS, len(with_file)))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        try:
            pending = []
            for chunk in chunks:
                keys = [c.storage_key for c in chunk]
                shares = [share for n in range(threads) if (share := keys[n::threads])]
                pending.append((chunk, [pool.submit(_delete_files, share) for share in shares]))
            without_file = [c for c in in_order if not c.storage_key]
            if without_file:
                yield without_file
            for chunk, futures in pending:
                for future in futures:
                    future.result()  # re-raises the chunk's first failure
                yield chunk
        except BaseException:  # a delete or the caller failed (closed: GeneratorExit)
            pool.shutdown(cancel_futures=True)  # what has not started never starts
            raise


def _lock_batch(batch: list[_Claimed]) -> None:
    """The finish's locks, taken before anything else it does, in the codebase's order:
    the batch's recordings (two batches may hold a recording's audio and its
    transcript; whichever finishes second must see the other's work before it looks
    for what is left of them), then the batch's artefacts still `purging`, both in id
    order. Holding the artefacts' rows for the whole finish is also the claim's
    heartbeat: a takeover locks with SKIP LOCKED, so it never takes a batch whose
    worker is alive, however long its files take, and the lease only has to cover a
    dead worker, whose locks went with its connection."""
    if connection.vendor != "postgresql":
        return  # SQLite: the transaction already excludes every other writer
    list(
        Recording.objects.select_for_update()
        .filter(pk__any_of=sorted({c.recording_id for c in batch}))
        .order_by("pk")
        .values_list("pk")
    )
    list(
        Artefact.objects.select_for_update(of=("self",))
        .filter(pk__any_of=sorted(c.id for c in batch), state=ArtefactState.PURGING)
        .order_by("pk")
        .values_list("pk")
    )


def _finish(
    unlinked: Iterable[list[_Claimed]],
    *,
    now: datetime,
    result: BatchResult,
    batch: list[_Claimed] | None = None,
) -> None:
    """Step 3, fenced by attempt number: `unlinked` is what `_unlink` yields for
    `batch` (None: `unlinked` is a list of chunks, and they are the batch). On
    PostgreSQL each chunk is tombstoned as soon as its files are gone, while the next
    ones are still being deleted, in one transaction that commits only once every file
    of the batch is gone: a crash before that leaves the whole batch `purging`, as a
    crash between steps 2 and 3 would. (One after the other, deleting the files was a
    quarter of a batch's time, with PostgreSQL idle meanwhile.)"""
    if batch is None:
        unlinked = list(unlinked)
        batch = [c for chunk in unlinked for c in chunk]
    if connection.vendor != "postgresql":
        # SQLite's transaction locks the whole database: delete first, as before.
        unlinked = list(unlinked)
    claimed: list[_Claimed] = []
    ours: list[_Claimed] = []  # what this finish tombstoned
    with transaction.atomic():
        _lock_batch(batch)
        for chunk in unlinked:
            claimed.extend(chunk)
            ours += _tombstone_artefacts(chunk, now=now)
        purge_step.send(sender=None, step="unlinked")
        purged = len(ours)
        if not purged:
            return  # another worker took these over and finishes them
        recording_ids = sorted({c.recording_id for c in claimed})
        reason_of = {c.recording_id: (c.reason, c.basis) for c in claimed}
        # the recordings are locked (by _lock_batch): what is left of them is final
        remaining = Artefact.objects.filter(recording=OuterRef("pk")).exclude(
            state=ArtefactState.PURGED
        )
        emptied = list(
            Recording.objects.filter(pk__any_of=recording_ids, state=RecordingState.ACTIVE)
            .exclude(Exists(remaining))
            .values_list("pk", flat=True)
        )
        by_reason: dict[tuple[str, str], list[int]] = {}
        for rid in emptied:
            by_reason.setdefault(reason_of[rid], []).append(rid)
        for (reason, basis), ids in by_reason.items():
            recordings_tombstone(
                ids, now=now, reason=reason, basis=basis, actor="purge", history=False
            )
        _purge_history(ours, emptied={rid: reason_of[rid] for rid in emptied}, now=now)
        result.purged = purged
        result.recordings_purged = len(emptied)
        result.max_lag_seconds = _max_lag(ours, now=now)
        reasons = Counter(c.reason for c in claimed)
        # What each profile lost, as its own part of the entry (compliance/ledger/
        # parts.py): a profile's evidence bundle proves its part and shows no other
        # profile's; subscribers are told of each profile's part (webhooks read them).
        purged_by_profile: dict[str, list[dict[str, str]]] = {}
        for pk, recording, profile in (
            Recording.objects.filter(pk__any_of=emptied)
            .order_by("pk")
            .values_list("pk", "external_id", "profile__external_id")
        ):
            purged_by_profile.setdefault(profile or "", []).append(
                {"recording": recording, "reason": reason_of[pk][0]}
            )
        ledger_append(
            kind="purge.batch",
            subject="purge",
            actor="purge",
            payload={
                "artefacts": purged,
                "recordings": len(emptied),
                "reasons": dict(sorted(reasons.items())),
                "policies": sorted({c.basis for c in claimed if c.basis}),
                "first_artefact": min(c.id for c in claimed),
                "last_artefact": max(c.id for c in claimed),
                # whole milliseconds: the ledger takes no floats
                "max_lag_ms": round(result.max_lag_seconds * 1000),
            },
            parts={
                profile: {"recordings": recordings}
                for profile, recordings in purged_by_profile.items()
            },
        )


def _max_lag(ours: list[_Claimed], *, now: datetime) -> float:
    """How late the latest of `ours` went, in seconds: from the oldest expiry among
    those purged because they expired (a deletion request is never late)."""
    expired = [c.id for c in ours if c.reason in EXPIRY_REASONS]
    if not expired:
        return 0.0
    oldest = Artefact.objects.filter(pk__any_of=expired).aggregate(oldest=Min("expires_at"))
    return max(0.0, (now - oldest["oldest"]).total_seconds()) if oldest["oldest"] else 0.0


def _tombstone_artefacts(chunk: list[_Claimed], *, now: datetime) -> list[_Claimed]:
    """Those of `chunk` still `purging` under our attempt number become tombstones;
    which did (their history is written per recording, by `_purge_history`)."""
    by_attempt: dict[tuple[int, str], list[_Claimed]] = {}
    for item in chunk:
        by_attempt.setdefault((item.attempt, item.reason), []).append(item)
    done: list[_Claimed] = []
    for (attempt, reason), items in by_attempt.items():
        ids = [c.id for c in items]
        updated = Artefact.objects.filter(
            pk__any_of=ids, state=ArtefactState.PURGING, purge_attempt=attempt
        ).update(
            state=ArtefactState.PURGED,
            text="",
            storage_key="",
            size_bytes=0,
            purged_at=now,
            purge_reason=reason,
            purge_blocked=False,
        )
        if updated == len(ids):
            done += items
        elif updated:
            # a takeover re-claimed some of them before our locks: no ids come back
            # from the update, so ask which it wrote (ours are locked now)
            written = set(
                Artefact.objects.filter(
                    pk__any_of=ids,
                    state=ArtefactState.PURGED,
                    purge_attempt=attempt,
                    purged_at=now,
                ).values_list("pk", flat=True)
            )
            done += [c for c in items if c.id in written]
    return done


def _purge_history(
    ours: list[_Claimed], *, emptied: dict[int, tuple[str, str]], now: datetime
) -> None:
    """The field-level history of a batch: one auditlog entry per recording it touched,
    on the recording, saying which of its artefacts were purged (`audio`: purging ->
    purged, and the artefact's reason where the recording's own does not already say
    it) and, for a recording left with nothing (`emptied`: id -> its reason and
    policy), its own tombstoning (state, purged_at, purge_reason, purge_policy).

    One entry a recording, not one per artefact and another per recording as before:
    the history was larger than the recording (docs/runtime.md, "The purge's history").
    Content never enters it; the batch's ledger entry stays the evidence."""
    touched: dict[int, set[tuple[str, str]]] = {rid: set() for rid in emptied}
    for c in ours:
        touched.setdefault(c.recording_id, set()).add((c.category, c.reason))
    groups: dict[tuple[tuple[tuple[str, str], ...], tuple[str, str] | None], list[int]] = {}
    for rid, purged in touched.items():
        groups.setdefault((tuple(sorted(purged)), emptied.get(rid)), []).append(rid)
    for (artefacts, tombstone), ids in groups.items():
        changes: dict[str, tuple[object, object]] = {}
        if tombstone is not None:
            reason, basis = tombstone
            changes |= {
                "state": (RecordingState.ACTIVE, RecordingState.PURGED),
                "purged_at": (None, now),
                "purge_reason": ("", reason),
                "purge_policy": ("", basis),
            }
        for category, reason in artefacts:
            changes[category] = (ArtefactState.PURGING, ArtefactState.PURGED)
            if tombstone is None or reason != tombstone[0]:
                changes[f"{category}_purge_reason"] = ("", reason)
        audit_bulk_change(model=Recording, pks=sorted(ids), changes=changes, actor="purge")


def purge_batch(
    candidates: Q,
    *,
    now: datetime,
    reason: PurgeReason | None = None,
    limit: int = PURGE_BATCH,
    order: tuple[str, ...] = ("expires_at", "id"),
) -> BatchResult:
    claimed, result = _claim(candidates, now=now, reason=reason, limit=limit, order=order)
    purge_step.send(sender=None, step="claimed")
    if not claimed:
        return result
    with closing(_unlink(claimed)) as unlinked:
        _finish(unlinked, now=now, result=result, batch=claimed)
    purge_step.send(sender=None, step="finished")
    return result


def due_artefacts(now: datetime) -> Q:
    """What the index `artefact_due` serves."""
    return Q(
        state=ArtefactState.ACTIVE,
        purge_blocked=False,
        expires_at__isnull=False,
        expires_at__lte=now,
    )


def stuck_artefacts(now: datetime) -> Q:
    return Q(state=ArtefactState.PURGING, purge_started_at__lt=now - purge_lease())


@dataclass
class PurgeRun:
    batches: int = 0
    purged: int = 0
    held: int = 0
    recordings_purged: int = 0
    taken_over: int = 0
    max_lag_seconds: float = 0.0
    more: bool = False


def purge_expired(
    *, now: datetime | None = None, budget_seconds: float = 50.0, limit: int = PURGE_BATCH
) -> PurgeRun:
    """Take over stuck claims, then purge what is due, batch by batch, until nothing
    is due or the time budget is spent (`more` then says so)."""
    run = PurgeRun()
    started = time.monotonic()
    for takeover in (True, False):
        while True:
            at = now or timezone.now()
            if takeover:
                result = take_over(stuck_artefacts(at), now=at, limit=limit)
            else:
                result = purge_batch(due_artefacts(at), now=at, limit=limit)
            if not result.claimed and not result.held:
                break
            run.batches += 1
            run.purged += result.purged
            run.held += result.held
            run.recordings_purged += result.recordings_purged
            run.taken_over += result.claimed if takeover else 0
            run.max_lag_seconds = max(run.max_lag_seconds, result.max_lag_seconds)
            if time.monotonic() - started > budget_seconds:
                run.more = True
                return run
    if run.purged or run.held:
        logger.info(
            "purge.run batches=%d purged=%d held=%d recordings=%d max_lag_s=%.1f",
            run.batches,
            run.purged,
            run.held,
            run.recordings_purged,
            run.max_lag_seconds,
        )
    return run


def take_over(
    scope: Q, *, now: datetime, limit: int | None = None, reason: PurgeReason | None = None
) -> BatchResult:
    """What a dead worker left `purging` in `scope`: claim it again under a new
    attempt number (the dead worker's finish, should it wake, then updates nothing),
    unlink and finish. `reason` None: the stored reason, else the expiry basis's."""
    with transaction.atomic():
        stuck = (
            Artefact.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(scope, state=ArtefactState.PURGING)
            .order_by("purge_started_at", "id")
            .values_list(*_CLAIMED_FIELDS, "purge_reason")
        )
        rows = list(stuck[:limit] if limit is not None else stuck)
        if not rows:
            return BatchResult()
        Artefact.objects.filter(pk__any_of=[r[0] for r in rows]).update(
            purge_attempt=F("purge_attempt") + 1, purge_started_at=now
        )
    claimed = [
        _Claimed(pk, rid, key, attempt + 1, reason or stored or expiry_reason(basis), basis, cat)
        for pk, rid, key, attempt, basis, cat, stored in rows
    ]
    logger.warning("purge.take_over artefacts=%d", len(claimed))
    result = BatchResult(claimed=len(claimed))
    with closing(_unlink(claimed)) as unlinked:
        _finish(unlinked, now=now, result=result, batch=claimed)
    return result


def purge_preview(*, now: datetime | None = None) -> dict[str, int]:
    """What `purge_expired` would do now, without doing it (for --dry-run)."""
    now = now or timezone.now()
    due = Artefact.objects.filter(due_artefacts(now))
    counts = {"due": due.count()}
    held = 0
    holds = list(LegalHold.objects.filter(released_at__isnull=True))
    if holds:
        covered = Q()
        for hold in holds:
            covered |= hold_filter(hold, prefix="recording__")
        held = due.filter(covered).count()
    counts["held"] = held
    counts["would_purge"] = counts["due"] - held
    counts["stuck"] = Artefact.objects.filter(stuck_artefacts(now)).count()
    counts["blocked_by_hold"] = Artefact.objects.filter(
        state=ArtefactState.ACTIVE, purge_blocked=True
    ).count()
    return counts
