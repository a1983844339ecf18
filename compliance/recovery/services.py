"""Recovering from a restore of an older backup: the ledger's missing entries come back
verbatim from LEDGER_EXPORT (`compliance.ledger.restore`), and here their effects come
back with them, since the rows they changed went back in time with the database.

What is re-applied, entry by entry in `seq` order and in the import's one transaction
(no new ledger entry: each change is the one its imported entry already records):

- `consent.granted` / `consent.withdrawn`: the consent event (with its original id) and
  the state; a withdrawal revokes the profile's open review items again.
- `legal_hold.placed` / `legal_hold.released`: the hold (with its original id; its
  reason is not in the ledger, so the row says where it came from), its release and
  the artefacts the release unblocked.
- `deletion_request.received`: the request, with its public id; one the log does not
  say was done is then run by the deletion sweep as usual.
- `deletion_request.done`: the request's scope is deleted again (what an open hold
  covers is kept) and the request marked done with the figures its entry records.
- `sample.drawn`: the review items the draw handed out (listed in its per-profile
  parts, re-imported with it), re-created with their ids; `review_item.accessed` (a
  clip fetched) marks its item delivered, `review_items.expired` closes the open items
  past their expiry at its time; withdrawals and purges revoke them as above.
- `purge.batch`: the recordings the batch tombstoned (listed in its per-profile parts,
  re-imported with it; in its payload for a batch written before parts) are tombstoned
  again (and their artefacts); retention purges of what is merely due are left to the
  next purge.

Files are deleted after the transaction commits (a missing file is success; one left
by a crash is an orphan the storage sweep removes). Entries whose subject the restored
database never had (a profile created after the backup) are logged and skipped: their
rows were not in the backup and the ledger does not hold enough to rebuild them.

Lock order (docs/architecture.md#lock-order): the import holds the checkpointer's and
the append lock for its whole transaction, so nothing else writes the ledger; the rows
here are written in the order account -> profile -> consent lock -> consent state ->
recording -> artefact -> review item, as each entry's own change did.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.consent.models import ConsentEvent, ConsentState, Purpose
from compliance.consent.services import consent_lock_hold
from compliance.core.audit import audit_bulk_change
from compliance.core.storage import DELETE_OBJECTS_MAX, storage_delete
from compliance.ledger.models import LedgerEntry
from compliance.ledger.parts import entry_parts
from compliance.ledger.restore import Recovery, ledger_import_missing
from compliance.recordings.models import Artefact, ArtefactState, Recording, RecordingState
from compliance.retention.models import DeletionRequest, DeletionStatus, LegalHold
from compliance.retention.selectors import hold_covers, hold_filter
from compliance.retention.tombstones import recordings_tombstone
from compliance.sampling.models import HANDED_OUT_Q, Reviewer, ReviewItem, ReviewItemState
from compliance.sampling.services import review_item_seconds

logger = logging.getLogger(__name__)

ACTOR = "ledger_recover"


def _subject_id(entry: LedgerEntry, prefix: str) -> str | None:
    head, _, rest = entry.subject.partition(":")
    return rest if head == prefix and rest else None


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else timezone.make_aware(parsed)


def _profile(entry: LedgerEntry) -> Profile | None:
    external_id = _subject_id(entry, "profile")
    profile = Profile.objects.filter(external_id=external_id).first() if external_id else None
    if profile is None:
        logger.warning(
            "ledger.recover_skipped seq=%d kind=%s reason=subject_unknown", entry.seq, entry.kind
        )
    return profile


def _purged(entry: LedgerEntry) -> list[tuple[str, str]]:
    """(recording, reason) of each recording a purge batch tombstoned: from the entry's
    per-profile parts, re-imported with it (its payload commits to them by `parts_root`
    only), or from the payload of a batch written before there were parts."""
    if "purged_recordings" in entry.payload:
        return [
            (str(item[1]), str(item[2]))
            for item in entry.payload["purged_recordings"] or []
            if isinstance(item, list) and len(item) == 3
        ]
    return [
        (str(purged["recording"]), str(purged["reason"]))
        for part in entry_parts(seq=entry.seq)
        for purged in part.get("recordings", [])
        if isinstance(purged, dict) and "recording" in purged and "reason" in purged
    ]


def _advance_sequence(model: type) -> None:
    """After rows were inserted with their original ids, the id sequence must not hand
    those ids out again."""
    if connection.vendor != "postgresql":
        return
    table = model._meta.db_table  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        sql = (  # the table name is the model's own, never input
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), "  # noqa: S608
            f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
        )
        cursor.execute(sql, [table])


def _revoke(items: QuerySet[ReviewItem], *, reason: str, now: datetime) -> int:
    return items.filter(state__in=ReviewItemState.open()).update(
        state=ReviewItemState.REVOKED, closed_at=now, close_reason=reason
    )


class _Replay:
    """The effects of the imported entries, and the files to delete once they commit."""

    def __init__(self) -> None:
        self.storage_keys: list[str] = []
        self.applied: dict[str, int] = {}
        self.inserted_ids: set[type] = set()

    def __call__(self, entry: LedgerEntry) -> None:
        handler = getattr(self, "_" + entry.kind.replace(".", "_"), None)
        if handler is None:
            return
        if handler(entry) is not False:
            self.applied[entry.kind] = self.applied.get(entry.kind, 0) + 1

    # --- consent

    def _consent(self, entry: LedgerEntry, granted: bool) -> bool:
        profile = _profile(entry)
        if profile is None:
            return False
        payload = entry.payload
        purpose = payload["purpose"]
        if not granted:
            consent_lock_hold(profile=profile)  # as consent_record does
        state, _ = ConsentState.objects.select_for_update().get_or_create(
            profile=profile, purpose=purpose
        )
        event_id = payload.get("event")
        fields = {
            "profile": profile,
            "purpose": purpose,
            "granted": granted,
            "channel": payload.get("channel", ""),
            "notice_version": payload.get("notice_version", ""),
            "actor": entry.actor,
            "created_at": entry.created_at,
        }
        if isinstance(event_id, int) and not ConsentEvent.objects.filter(pk=event_id).exists():
            event = ConsentEvent.objects.create(pk=event_id, **fields)
            self.inserted_ids.add(ConsentEvent)
        else:
            event = ConsentEvent.objects.create(**fields)
        state.granted = granted
        state.last_event = event
        state.updated_at = entry.created_at
        state.save(update_fields=["granted", "last_event", "updated_at"])
        if not granted:
            items = ReviewItem.objects.filter(recording__profile_id=profile.pk)
            if purpose != Purpose.HUMAN_REVIEW:
                items = items.filter(purpose=purpose)
            _revoke(items, reason="consent_withdrawn", now=timezone.now())
        return True

    def _consent_granted(self, entry: LedgerEntry) -> bool:
        return self._consent(entry, True)

    def _consent_withdrawn(self, entry: LedgerEntry) -> bool:
        return self._consent(entry, False)

    # --- legal holds

    def _legal_hold_placed(self, entry: LedgerEntry) -> bool:
        hold_id = _subject_id(entry, "legal_hold")
        if hold_id is None or not hold_id.isdigit():
            return False
        if LegalHold.objects.filter(pk=int(hold_id)).exists():
            return False
        payload = entry.payload
        account = (
            Account.objects.filter(external_id=payload["account"]).first()
            if payload.get("account")
            else None
        )
        profile = (
            Profile.objects.filter(external_id=payload["profile"]).first()
            if payload.get("profile")
            else None
        )
        if account is None and profile is None:
            logger.warning(
                "ledger.recover_skipped seq=%d kind=%s reason=subject_unknown",
                entry.seq,
                entry.kind,
            )
            return False
        LegalHold.objects.create(
            pk=int(hold_id),
            account=account,
            profile=profile,
            recorded_from=_when(payload.get("from")),
            recorded_to=_when(payload.get("to")),
            reason=f"Re-imported from ledger entry #{entry.seq} after a restore (the ledger "
            "does not record the reason; see the case).",
            case_reference=payload.get("case_reference") or "",
            created_by=entry.actor,
        )
        LegalHold.objects.filter(pk=int(hold_id)).update(created_at=entry.created_at)
        self.inserted_ids.add(LegalHold)
        return True

    def _legal_hold_released(self, entry: LedgerEntry) -> bool:
        hold_id = _subject_id(entry, "legal_hold")
        hold = (
            LegalHold.objects.select_for_update().filter(pk=int(hold_id)).first()
            if hold_id and hold_id.isdigit()
            else None
        )
        if hold is None or hold.released_at is not None:
            return False
        hold.released_at = entry.created_at
        hold.released_by = entry.actor
        hold.save(update_fields=["released_at", "released_by"])
        Artefact.objects.filter(hold_filter(hold, prefix="recording__"), purge_blocked=True).update(
            purge_blocked=False
        )
        return True

    # --- deletions

    def _deletion_request_received(self, entry: LedgerEntry) -> bool:
        public_id = entry.payload.get("request")
        if not public_id or DeletionRequest.objects.filter(public_id=public_id).exists():
            return False
        profile = _profile(entry)
        if profile is None:
            return False
        request = DeletionRequest.objects.create(
            public_id=public_id,
            profile=profile,
            recorded_from=_when(entry.payload.get("from")),
            recorded_to=_when(entry.payload.get("to")),
            requested_by=entry.actor,
        )
        DeletionRequest.objects.filter(pk=request.pk).update(created_at=entry.created_at)
        return True

    def _deletion_request_done(self, entry: LedgerEntry) -> bool:
        payload = entry.payload
        request = (
            DeletionRequest.objects.select_for_update()
            .select_related("profile")
            .filter(public_id=payload.get("request"))
            .first()
        )
        if request is None or request.status == DeletionStatus.DONE:
            return False
        profile = request.profile
        recordings = Recording.objects.filter(profile_id=profile.pk, state=RecordingState.ACTIVE)
        if request.recorded_from is not None:
            recordings = recordings.filter(recorded_at__gte=request.recorded_from)
        if request.recorded_to is not None:
            recordings = recordings.filter(recorded_at__lte=request.recorded_to)
        holds = list(
            LegalHold.objects.filter(released_at__isnull=True).filter(
                Q(profile_id=profile.pk) | Q(account_id=profile.account_id)
            )
        )
        doomed = [
            rid
            for rid, recorded_at in recordings.values_list("pk", "recorded_at")
            if not any(
                hold_covers(
                    h, profile_id=profile.pk, account_id=profile.account_id, recorded_at=recorded_at
                )
                for h in holds
            )
        ]
        self._tombstone(doomed, reason="deletion_request", basis="", now=entry.created_at)
        DeletionRequest.objects.filter(pk=request.pk).update(
            status=DeletionStatus.DONE,
            started_at=request.started_at or entry.created_at,
            finished_at=entry.created_at,
            lease_until=None,
            recordings_deleted=payload.get("deleted", 0),
            recordings_held=payload.get("held", 0),
            recordings_matched=payload.get("deleted", 0) + payload.get("held", 0),
            holds=payload.get("holds", []),
            receipt=entry.hash,
        )
        return True

    def _purge_batch(self, entry: LedgerEntry) -> bool:
        listed = _purged(entry)
        policies = entry.payload.get("policies") or []
        by_reason: dict[str, list[str]] = {}
        for recording, reason in listed:
            by_reason.setdefault(reason, []).append(recording)
        for reason, external_ids in by_reason.items():
            ids = list(
                Recording.objects.filter(
                    external_id__in=external_ids, state=RecordingState.ACTIVE
                ).values_list("pk", flat=True)
            )
            basis = policies[0] if len(policies) == 1 and reason != "deletion_request" else ""
            self._tombstone(ids, reason=reason, basis=basis, now=entry.created_at)
        return bool(listed)

    # --- sample draws

    def _sample_drawn(self, entry: LedgerEntry) -> bool:
        """The draw's items, re-created from its per-profile parts with their ids, so
        that no recording it handed out is handed out again and its reviewer's quota
        counts them. Their expiry is the entry's time plus the lifetime settings give
        (the ledger does not record it; the draw began a moment before its entry)."""
        payload = entry.payload
        reviewer = None
        if payload.get("reviewer") is not None:
            reviewer = Reviewer.objects.filter(pk=payload["reviewer"]).first()
            if reviewer is None:
                logger.warning(
                    "ledger.recover_skipped seq=%d kind=%s reason=reviewer_unknown",
                    entry.seq,
                    entry.kind,
                )
                return False
        wanted = {
            str(item["recording"]): str(item["review_item"])
            for part in entry_parts(seq=entry.seq)
            for item in part.get("items", [])
            if isinstance(item, dict) and "recording" in item and "review_item" in item
        }
        if not wanted:
            return False
        recordings = dict(
            Recording.objects.filter(external_id__in=list(wanted))
            .select_for_update(no_key=True)
            .order_by("pk")
            .values_list("external_id", "pk")
        )
        taken = set(
            ReviewItem.objects.filter(
                HANDED_OUT_Q, recording_id__in=list(recordings.values())
            ).values_list("recording_id", flat=True)
        )
        existing = set(
            ReviewItem.objects.filter(pk__in=list(wanted.values())).values_list("pk", flat=True)
        )
        expires_at = entry.created_at + timedelta(
            seconds=review_item_seconds(with_reviewer=reviewer is not None)
        )
        items = [
            ReviewItem(
                id=item_id,
                recording_id=recordings[external_id],
                purpose=payload.get("purpose", ""),
                reviewer=reviewer,
                reviewer_location=payload.get("reviewer_location") or "",
                state=ReviewItemState.PENDING,
                created_at=entry.created_at,
                expires_at=expires_at,
            )
            for external_id, item_id in sorted(wanted.items())
            if external_id in recordings
            and recordings[external_id] not in taken
            and item_id not in existing
        ]
        if len(items) < len(wanted):
            logger.warning(
                "ledger.recover_skipped seq=%d kind=%s items=%d reason=recording_unknown_or_taken",
                entry.seq,
                entry.kind,
                len(wanted) - len(items),
            )
        ReviewItem.objects.bulk_create(items)
        return bool(items)

    def _review_item_accessed(self, entry: LedgerEntry) -> bool:
        """A clip fetched: the item was delivered (and counts as its recording's one
        hand-out even once closed). Refusals are not re-applied: the gate re-checks at
        every access and closes the item then."""
        item_id = _subject_id(entry, "review_item")
        if not item_id or entry.payload.get("action") != "audio":
            return False
        return bool(
            ReviewItem.objects.filter(pk=item_id, state=ReviewItemState.PENDING).update(
                state=ReviewItemState.DELIVERED, delivered_at=entry.created_at
            )
        )

    def _review_items_expired(self, entry: LedgerEntry) -> bool:
        """The expiry sweep closed the open items past their expiry at the entry's time."""
        return bool(
            ReviewItem.objects.filter(
                state__in=ReviewItemState.open(), expires_at__lte=entry.created_at
            ).update(
                state=ReviewItemState.EXPIRED, closed_at=entry.created_at, close_reason="expired"
            )
        )

    # --- tombstones

    def _tombstone(
        self, recording_ids: list[int], *, reason: str, basis: str, now: datetime
    ) -> None:
        """The recordings and every artefact of theirs become tombstones, as the purge
        leaves them; their files are deleted after commit; their open items revoked."""
        if not recording_ids:
            return
        recording_ids = sorted(recording_ids)
        list(
            Recording.objects.select_for_update()
            .filter(pk__in=recording_ids)
            .order_by("pk")
            .values_list("pk")
        )
        artefacts = Artefact.objects.filter(recording_id__in=recording_ids).exclude(
            state=ArtefactState.PURGED
        )
        rows = list(artefacts.select_for_update().order_by("pk").values_list("pk", "storage_key"))
        self.storage_keys.extend(key for _, key in rows if key)
        artefact_ids = [pk for pk, _ in rows]
        if artefact_ids:
            Artefact.objects.filter(pk__in=artefact_ids).update(
                state=ArtefactState.PURGED,
                text="",
                storage_key="",
                size_bytes=0,
                purged_at=now,
                purge_reason=reason,
                purge_blocked=False,
            )
            audit_bulk_change(
                model=Artefact,
                pks=artefact_ids,
                changes={
                    "state": ("[restored]", ArtefactState.PURGED),
                    "purged_at": (None, now),
                    "purge_reason": ("", reason),
                    "text": ("[removed]", ""),
                    "storage_key": ("[removed]", ""),
                },
                actor=ACTOR,
            )
        recordings_tombstone(
            recording_ids,
            now=now,
            reason=reason,
            basis=basis,
            actor=ACTOR,
            # the re-imported entries already record the revocation: none is appended
            revoke=lambda ids: _revoke(
                ReviewItem.objects.filter(recording_id__in=ids),
                reason="purged",
                now=timezone.now(),
            ),
        )

    def finish(self) -> None:
        """Inside the import's transaction, after the last entry."""
        for model in self.inserted_ids:
            _advance_sequence(model)
        keys = list(self.storage_keys)
        transaction.on_commit(lambda: _delete_files(keys))


def _delete_files(keys: list[str]) -> None:
    """Delete the tombstoned artefacts' files, a batch at a time (one DeleteObjects
    request each on S3). A batch that fails is logged and the next one tried: the rows
    are tombstones already, and the storage sweep removes what is left as orphans."""
    for start in range(0, len(keys), DELETE_OBJECTS_MAX):
        batch = keys[start : start + DELETE_OBJECTS_MAX]
        try:
            storage_delete(batch)
        except Exception:
            logger.exception(
                "ledger.recover_files_not_deleted keys=%d first_key=%s", len(batch), batch[0]
            )


def ledger_recover() -> tuple[Recovery, dict[str, int]]:
    """Re-import the ledger's missing entries from LEDGER_EXPORT and re-apply their
    effects, in one transaction; what was imported and how many effects of each kind
    were re-applied. Raises compliance.ledger.restore.RecoveryRefused, changing
    nothing, when there is nothing to recover or the export does not extend the
    database's ledger."""
    replay = _Replay()
    recovery = ledger_import_missing(apply=replay, finish=replay.finish)
    return recovery, replay.applied
