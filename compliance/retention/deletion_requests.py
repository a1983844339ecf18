"""Deletion requests: a person's (or an operator's) request to delete a profile's
recordings, all of them or those of a time range, carried out by a worker.

WHAT CANNOT BE UNDONE: the request's artefacts go through the batch purge
(compliance/retention/purge.py: files unlinked, content cleared) under the reason
`deletion_request`; recordings that never had an artefact are tombstoned at the
finish; the request is closed `done` with a ledger entry whose hash is its receipt.
What a legal hold covers is kept, and the request says so (`recordings_held`, the
holds).

WHY A RERUN IS SAFE: a request is claimed by a conditional UPDATE (received, or
running with a lapsed lease) that raises its attempt number, so one worker holds it at
a time; the worker renews its lease after each batch and stops as soon as a renewal
finds its attempt superseded. Each batch is a batch purge, crash-safe on its own. A
worker killed anywhere leaves the request `running`: the sweep
(`deletion_requests_sweep`, every minute) hands it out again once the lease lapses,
and the rerun purges what is still `active` in the scope, takes over what the dead
worker left `purging` (under this reason) and finishes. The finish is fenced too: it
locks the request's row and writes only if the attempt is still its own and the
request still `running`; it counts what was deleted from the tombstones themselves
(this reason, since the request was made), so work done by a dead predecessor is
counted once. A request whose task was lost before it started is found by the same
sweep.

LOCK ORDER: the request's own row first (only its workers lock it), then the
codebase's order: the profile FOR SHARE, the recordings, the review items, the ledger
last. The batches take the batch purge's locks (profiles, then artefacts).
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from compliance.ledger.services import ledger_append
from compliance.recordings.models import Artefact, ArtefactState, Recording, RecordingState

from .models import DeletionRequest, DeletionStatus, LegalHold
from .purge import purge_batch, take_over
from .reasons import PurgeReason
from .selectors import hold_covers
from .services import profiles_lock_shared
from .tombstones import recordings_tombstone

logger = logging.getLogger(__name__)

# How long a worker holds a request between renewals (one per batch of the purge).
DELETION_LEASE = timedelta(minutes=5)


def _deletion_scope(request: DeletionRequest) -> Q:
    q = Q(recording__profile_id=request.profile_id)
    if request.recorded_from is not None:
        q &= Q(recording__recorded_at__gte=request.recorded_from)
    if request.recorded_to is not None:
        q &= Q(recording__recorded_at__lte=request.recorded_to)
    return q


def _claim_request(public_id: str, now: datetime) -> DeletionRequest | None:
    """A conditional UPDATE: only one worker gets a request, or a lapsed lease."""
    open_or_lapsed = Q(status=DeletionStatus.RECEIVED) | Q(
        status=DeletionStatus.RUNNING, lease_until__lt=now
    )
    updated = DeletionRequest.objects.filter(open_or_lapsed, public_id=public_id).update(
        status=DeletionStatus.RUNNING,
        lease_until=now + DELETION_LEASE,
        attempts=F("attempts") + 1,
    )
    if not updated:
        return None
    request = DeletionRequest.objects.get(public_id=public_id)
    if request.started_at is None:
        DeletionRequest.objects.filter(pk=request.pk, started_at__isnull=True).update(
            started_at=now
        )
        request.started_at = now
    return request


def deletion_request_run(*, public_id: str) -> DeletionRequest | None:
    """Carry out a deletion request; None if another worker holds it or it is done."""
    now = timezone.now()
    request = _claim_request(public_id, now)
    if request is None:
        return None
    attempt = request.attempts
    scope = _deletion_scope(request)
    mine = DeletionRequest.objects.filter(
        pk=request.pk, attempts=attempt, status=DeletionStatus.RUNNING
    )
    last_id = 0
    while True:
        at = timezone.now()
        batch = scope & Q(state=ArtefactState.ACTIVE, id__gt=last_id)
        result = purge_batch(batch, now=at, reason=PurgeReason.DELETION_REQUEST, order=("id",))
        if not result.looked:
            break
        last_id = result.last_id
        if not mine.update(lease_until=timezone.now() + DELETION_LEASE):
            return None  # the lease lapsed and another worker took over
    # stuck 'purging' artefacts of this scope (a dead predecessor's claim) finish now
    take_over(scope, now=timezone.now(), reason=PurgeReason.DELETION_REQUEST)
    return _deletion_request_finish(request, attempt)


def _deletion_request_finish(request: DeletionRequest, attempt: int) -> DeletionRequest | None:
    now = timezone.now()
    recordings = Recording.objects.filter(profile_id=request.profile_id)
    if request.recorded_from is not None:
        recordings = recordings.filter(recorded_at__gte=request.recorded_from)
    if request.recorded_to is not None:
        recordings = recordings.filter(recorded_at__lte=request.recorded_to)
    with transaction.atomic():
        locked = (
            DeletionRequest.objects.select_for_update()
            .filter(pk=request.pk, attempts=attempt, status=DeletionStatus.RUNNING)
            .first()
        )
        if locked is None:
            return None
        # The request's own row first (only its workers lock it), then the codebase's
        # order: the profile FOR SHARE, the lock a hold takes FOR UPDATE, so that a
        # hold placed at this instant is either seen below or placed after this
        # commits; then the recordings, the review items, the ledger.
        profiles_lock_shared([request.profile_id])
        # recordings that never had an artefact go too, unless held
        holds = list(
            LegalHold.objects.filter(released_at__isnull=True).filter(
                Q(profile_id=request.profile_id) | Q(account_id=request.profile.account_id)
            )
        )
        bare = recordings.filter(state=RecordingState.ACTIVE).exclude(
            Exists(
                Artefact.objects.filter(recording=OuterRef("pk")).exclude(
                    state=ArtefactState.PURGED
                )
            )
        )
        held_recordings: set[int] = set()
        blocking: set[int] = set()
        for rid, recorded_at in recordings.filter(state=RecordingState.ACTIVE).values_list(
            "pk", "recorded_at"
        ):
            covering = [
                h.pk
                for h in holds
                if hold_covers(
                    h,
                    profile_id=request.profile_id,
                    account_id=request.profile.account_id,
                    recorded_at=recorded_at,
                )
            ]
            if covering:
                held_recordings.add(rid)
                blocking.update(covering)
        bare_ids = [rid for rid in bare.values_list("pk", flat=True) if rid not in held_recordings]
        recordings_tombstone(
            bare_ids, now=now, reason=PurgeReason.DELETION_REQUEST, basis="", actor="deletion"
        )
        locked.recordings_deleted = recordings.filter(
            state=RecordingState.PURGED,
            purge_reason=PurgeReason.DELETION_REQUEST,
            purged_at__gte=locked.created_at,
        ).count()
        locked.recordings_held = len(held_recordings)
        locked.holds = sorted(blocking)
        locked.recordings_matched = locked.recordings_deleted + locked.recordings_held
        locked.status = DeletionStatus.DONE
        locked.finished_at = now
        locked.lease_until = None
        entry = ledger_append(
            kind="deletion_request.done",
            subject=f"profile:{request.profile.external_id}",
            actor="deletion",
            payload={
                "request": locked.public_id,
                "deleted": locked.recordings_deleted,
                "held": locked.recordings_held,
                "holds": locked.holds,
            },
        )
        locked.receipt = entry.hash
        locked.save()
    logger.info(
        "deletion_request.done id=%s deleted=%d held=%d",
        locked.public_id,
        locked.recordings_deleted,
        locked.recordings_held,
    )
    return locked


def deletion_requests_sweep(*, now: datetime | None = None) -> list[str]:
    """Requests whose task was lost or whose worker died: their ids, to run again."""
    now = now or timezone.now()
    lapsed = Q(status=DeletionStatus.RECEIVED, created_at__lt=now - timedelta(seconds=30)) | Q(
        status=DeletionStatus.RUNNING, lease_until__lt=now
    )
    return list(DeletionRequest.objects.filter(lapsed).values_list("public_id", flat=True)[:100])
