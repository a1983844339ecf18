"""What the batch purge and a deletion request's finish both do to a recording left
with nothing: it becomes a tombstone. Irreversible: its flags are cleared and its open
review items revoked; the row stays, with the time, the reason and the policy. Callers
pass the recordings they hold locked and found active with nothing left; the update
writes only rows still `active`, so a rerun over the same ids tombstones nothing twice.

Lock order: callers hold the recordings' rows (or the profile's, for a deletion
request) already; the review items come after them, the ledger last (the caller's).
"""

from collections.abc import Callable
from datetime import datetime

from compliance.core.audit import audit_bulk_change
from compliance.recordings.models import Recording, RecordingState

from .hooks import recordings_tombstoned
from .reasons import PurgeReason


def recordings_tombstone(
    ids: list[int],
    *,
    now: datetime,
    reason: PurgeReason | str,
    basis: str,
    actor: str,
    history: bool = True,
    revoke: Callable[[list[int]], object] | None = None,
) -> None:
    """Recordings left with nothing become tombstones (no flags, the reason and the
    policy that applied), with their history and their review items revoked.

    `history` False: the caller writes the recordings' history itself, in the same
    transaction (the batch purge: one entry a recording, with its artefacts' change).
    `revoke`: how their review items are revoked, given the ids; by default through the
    registered hook, which records the revocation in the ledger (a ledger recovery,
    which re-imports that record, revokes without writing it again)."""
    if not ids:
        return
    Recording.objects.filter(pk__any_of=ids, state=RecordingState.ACTIVE).update(
        state=RecordingState.PURGED,
        purged_at=now,
        purge_reason=reason,
        purge_policy=basis,
        sensitive=False,
        false_wake=False,
    )
    if history:
        audit_bulk_change(
            model=Recording,
            pks=ids,
            changes={
                "state": (RecordingState.ACTIVE, RecordingState.PURGED),
                "purged_at": (None, now),
                "purge_reason": ("", reason),
                "purge_policy": ("", basis),
            },
            actor=actor,
        )
    if revoke is not None:
        revoke(ids)
        return
    # Review items are sampling's, a floor above: it registered their revocation here.
    recordings_tombstoned(recording_ids=ids, reason="purged")
