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

REQUESTS ON S3: a HEAD request per file (its time) and per active artefact (`exists`)
was ten million requests a run at ten million artefacts, longer than the six hours
between runs. The files and their times now come from a listing (one ListObjectsV2
request per 1,000 objects, core.storage_listing), and an active artefact's file is
looked for in the listing of its prefix (`audio/`, INGEST_AUDIO_PREFIX): the rows are
read in pages in the same byte order and merged with it. A key under neither prefix is
still asked with `exists`. On the file system both are local stats, as before.

RACE (the merge): a key missing from the listing means a missing file only if the file
was stored when the listing began. An artefact's file is stored before its row is
written (the ingest saves, then inserts; the batch endpoint registers an object that
is there already), so a row created before the listing began names a file stored
before it, and S3 lists what was written before a listing started (strong
consistency). The row's `created_at` comes from the clock of the server that ingested
it, the listing's start from the sweep's: only rows created `CLOCK_SKEW` before the
listing began are checked; newer ones wait for the next run. A file deleted while the
listing runs belongs to an artefact a purge has claimed (`purging`): the tombstoning's
condition (still `active`) leaves it alone. Rows are read while the listing is under
way, so each page is a snapshot of its own moment; a row changed meanwhile is settled
by the same condition.

LOCKS: none held across storage calls; the tombstoning is one conditional UPDATE of
artefacts, then the ledger append (last, as everywhere).
"""

import logging
import posixpath
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Collate
from django.utils import timezone

from compliance.core.audit import audit_bulk_change
from compliance.core.storage import storage_delete, storage_is_s3, storage_listing
from compliance.ledger.services import ledger_append
from compliance.recordings.models import Artefact, ArtefactState

from .reasons import PurgeReason

logger = logging.getLogger(__name__)

PAGE = 1000
# how far apart the clocks of the ingest's servers and the sweep's may be (RACE)
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class StorageSweep:
    files_checked: int = 0
    orphan_files_deleted: int = 0
    rows_checked: int = 0
    rows_without_file: int = 0


def _missing_files(result: StorageSweep) -> list[int]:
    """The ids of active artefacts whose file is gone."""
    if not storage_is_s3():
        # a local stat per key: cheap
        return _missing_by_exists(result, Artefact.objects.all())
    prefixes = _listed_prefixes()
    missing: list[int] = []
    for prefix in prefixes:
        missing += _missing_by_listing(result, prefix)
    # keys under none of the listed prefixes: one request each, as before
    elsewhere = Artefact.objects.all()
    for prefix in prefixes:
        elsewhere = elsewhere.exclude(storage_key__startswith=prefix)
    return missing + _missing_by_exists(result, elsewhere)


def _listed_prefixes() -> list[str]:
    """The directories under which active artefacts' keys live: where the ingest stores
    audio, and where the platform's registered objects are. One nested in the other is
    listed once, with its parent."""
    candidates = sorted({"audio/", settings.INGEST_AUDIO_PREFIX.strip("/") + "/"} - {"/"})
    prefixes: list[str] = []
    for prefix in candidates:
        if not any(prefix.startswith(parent) for parent in prefixes):
            prefixes.append(prefix)
    return prefixes


def _missing_by_exists(result: StorageSweep, artefacts: QuerySet[Artefact]) -> list[int]:
    last_id = 0
    missing: list[int] = []
    while True:
        rows = list(
            artefacts.filter(state=ArtefactState.ACTIVE, id__gt=last_id)
            .exclude(storage_key="")
            .order_by("id")
            .values_list("id", "storage_key")[:PAGE]
        )
        if not rows:
            return missing
        result.rows_checked += len(rows)
        missing += [pk for pk, key in rows if not default_storage.exists(key)]
        last_id = rows[-1][0]


def _missing_by_listing(result: StorageSweep, prefix: str) -> list[int]:
    """The active artefacts under `prefix` created before a listing of `prefix` began,
    whose key the listing lacks (RACE in the module's docstring). Both streams in byte
    order: the listing as S3 returns it, the rows by `storage_key` in byte order
    (`COLLATE "C"`, served by the index `artefact_active_key_bytes`). Python compares
    str by code point, which is UTF-8 byte order."""
    started = timezone.now()
    names = (name for name, _ in storage_listing(prefix))
    listed = next(names, None)
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first key after the prefix's range
    artefacts = (
        Artefact.objects.filter(state=ArtefactState.ACTIVE, created_at__lt=started - CLOCK_SKEW)
        .exclude(storage_key="")
        .alias(key_bytes=_byte_order("storage_key"))
        .filter(key_bytes__gte=prefix, key_bytes__lt=end)
        .order_by("key_bytes")
    )
    missing: list[int] = []
    last: str | None = None
    while True:
        page = artefacts if last is None else artefacts.filter(key_bytes__gt=last)
        rows = list(page.values_list("id", "storage_key")[:PAGE])
        if not rows:
            return missing
        result.rows_checked += len(rows)
        for pk, key in rows:
            while listed is not None and listed < key:
                listed = next(names, None)
            if listed == key:
                continue
            if posixpath.normpath(key) != key or "\\" in key:
                # a name the storage would map to another key: ask it (never the case
                # for keys the ingest or the batch endpoint accept)
                if not default_storage.exists(key):
                    missing.append(pk)
                continue
            missing.append(pk)
        last = rows[-1][1]


def _byte_order(field: str) -> Collate | F:
    """`field` compared and sorted by its bytes: PostgreSQL's "C" collation; SQLite
    compares text as bytes already (BINARY)."""
    if connection.vendor == "postgresql":
        return Collate(F(field), "C")
    return F(field)


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
        if len(pending) >= PAGE:
            settle_files(pending)
            pending = []
    if pending:
        settle_files(pending)

    missing = _missing_files(result)
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
