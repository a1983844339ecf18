"""The storage sweep: settles what a crash can leave between storage and the database.

WHAT CANNOT BE UNDONE: the deletion of a stored file that no artefact names (an
orphan: an ingest saved it, then died before its row committed), and the tombstoning
of an active artefact whose file is gone (`file_missing`: its content no longer
exists, and the record must say so). Only files older than a grace period are
deleted, so an ingest still in flight is never touched.

WHY A RERUN IS SAFE: each step reads the present state before it acts. A file is
deleted only if no artefact names it at that moment; an artefact is tombstoned only if
it is still `active` (the UPDATE's condition), and its missing file stays missing. A
sweep killed after deleting some orphans leaves the rest for the next run; killed
before its transaction commits, it leaves every row as it was, and the next run finds
the same missing files again. One ledger entry per sweep that changed something, in
the transaction of the tombstones (orphans deleted by a sweep killed before it are in
no entry: no row ever named them).

LOCKS: none held across storage calls; the tombstoning is one conditional UPDATE of
artefacts, then the ledger append (last, as everywhere).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from compliance.core.audit import audit_bulk_change
from compliance.core.storage import storage_delete, storage_listing
from compliance.ledger.services import ledger_append
from compliance.recordings.models import Artefact, ArtefactState

from .reasons import PurgeReason

logger = logging.getLogger(__name__)


@dataclass
class StorageSweep:
    files_checked: int = 0
    orphan_files_deleted: int = 0
    rows_checked: int = 0
    rows_without_file: int = 0


def storage_sweep(
    *, now: datetime | None = None, grace: timedelta = timedelta(hours=1)
) -> StorageSweep:
    """Settle what a crash can leave between storage and database.

    A file no artefact names (the ingest saved it, then died before its row
    committed) is deleted once older than `grace`, so an ingest in flight is never
    touched. An active artefact whose file is gone is tombstoned as `file_missing`:
    its content no longer exists, and the record must say so. One ledger entry.
    """
    now = now or timezone.now()
    result = StorageSweep()
    pending: list[tuple[str, datetime]] = []

    def settle_files(files: list[tuple[str, datetime]]) -> None:
        known = set(
            Artefact.objects.filter(storage_key__in=[key for key, _ in files]).values_list(
                "storage_key", flat=True
            )
        )
        orphans = [key for key, modified in files if key not in known and modified <= now - grace]
        # one DeleteObjects request on S3 (compliance.core.storage)
        storage_delete(orphans)
        result.orphan_files_deleted += len(orphans)

    # the times come with the listing: no request per file on S3 (core.storage)
    for key, modified in storage_listing("audio/"):
        result.files_checked += 1
        pending.append((key, modified))
        if len(pending) >= 1000:
            settle_files(pending)
            pending = []
    if pending:
        settle_files(pending)

    last_id = 0
    missing: list[int] = []
    while True:
        rows = list(
            Artefact.objects.filter(state=ArtefactState.ACTIVE, id__gt=last_id)
            .exclude(storage_key="")
            .order_by("id")
            .values_list("id", "storage_key")[:1000]
        )
        if not rows:
            break
        result.rows_checked += len(rows)
        missing += [pk for pk, key in rows if not default_storage.exists(key)]
        last_id = rows[-1][0]
    if missing or result.orphan_files_deleted:
        with transaction.atomic():
            result.rows_without_file = Artefact.objects.filter(
                pk__in=missing, state=ArtefactState.ACTIVE
            ).update(
                state=ArtefactState.PURGED,
                storage_key="",
                purged_at=now,
                purge_reason=PurgeReason.FILE_MISSING,
            )
            audit_bulk_change(
                model=Artefact,
                pks=Artefact.objects.filter(
                    pk__in=missing,
                    state=ArtefactState.PURGED,
                    purged_at=now,
                    purge_reason=PurgeReason.FILE_MISSING,
                ),
                changes={
                    "state": (ArtefactState.ACTIVE, ArtefactState.PURGED),
                    "purged_at": (None, now),
                    "purge_reason": ("", PurgeReason.FILE_MISSING),
                    "storage_key": ("[removed]", ""),
                },
                actor="sweep",
            )
            ledger_append(
                kind="storage.swept",
                subject="storage",
                actor="sweep",
                payload={
                    "orphan_files_deleted": result.orphan_files_deleted,
                    "rows_without_file": result.rows_without_file,
                    "artefacts": missing[:1000],
                },
            )
        logger.warning(
            "storage.swept orphan_files=%d rows_without_file=%d",
            result.orphan_files_deleted,
            result.rows_without_file,
        )
    return result
