"""What the batch purge and a deletion request's finish both do to a recording left
with nothing: it becomes a tombstone. Irreversible: its flags are cleared and its open
review items revoked; the row stays, with the time, the reason and the policy. Callers
pass the recordings they hold locked and found active with nothing left; the update
writes only rows still `active`, so a rerun over the same ids tombstones nothing twice.

Lock order: callers hold the recordings' rows (or the profile's, for a deletion
request) already; the review items come after them, the ledger last (the caller's).
"""

from datetime import datetime

from compliance.recordings.models import Recording, RecordingState
from compliance.security.audit import audit_bulk_change

from .reasons import PurgeReason


def recordings_tombstone(
    ids: list[int], *, now: datetime, reason: PurgeReason | str, basis: str, actor: str
) -> None:
    """Recordings left with nothing become tombstones (no flags, the reason and the
    policy that applied), with their history and their review items revoked."""
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
    _revoke_review_items(ids)


def _revoke_review_items(recording_ids: list[int]) -> None:
    if not recording_ids:
        return
    # imported here: sampling's services import the retention app's
    from compliance.sampling.services import review_items_revoke_for_recordings

    review_items_revoke_for_recordings(recording_ids=recording_ids, reason="purged")
