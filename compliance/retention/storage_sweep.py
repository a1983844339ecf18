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

MASS CHANGE: both judgements compare storage with the database, so either one being
the wrong one (a wrong bucket, location or prefix, an unmounted MEDIA_ROOT, a listing
that came back empty; a DATABASE_URL naming an empty database or an older restore)
makes every artefact "missing" or every file an "orphan". The sweep therefore never
makes a mass change on its own: when the orphans found exceed a limit it deletes none
of them, and when the artefacts found missing exceed a limit it tombstones none of
them. The limit is a share of what was checked (files listed, artefacts checked:
STORAGE_SWEEP_MAX_CHANGE_SHARE, 1%) but never below a floor
(STORAGE_SWEEP_MAX_CHANGE_FLOOR, 100). A refusal is logged as an error with the counts,
recorded in one `storage.sweep_refused` ledger entry (counts and limits, no personal
data), shown on /metrics (`earshot_storage_sweep_refusals_total` and the last refused
run's figures) and said by the result; the other judgement, if within its limit, still
goes ahead. An operator who has checked lets one run through with `manage.py
storage_sweep --allow-mass-change`, whose `storage.swept` entry then says so.

The orphans are therefore counted before any is deleted: the listing of `audio/` finds
them page by page (each page's keys looked up in the database, as before) and holds at
most ORPHANS_HELD of their keys; within the limit, the held keys are looked up again
and deleted (a file is deleted only if no artefact names it at that moment). Over
ORPHANS_HELD but within the limit (possible above a million files), a second listing
finds and deletes them page by page, and stops, deleting no more, should the orphans
it finds cross the limit (storage or database changed between the two listings).

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
artefacts, then the ledger appends (last, as everywhere): `storage.swept` when the sweep
changed something, `storage.sweep_refused` when it refused a mass change, in the same
transaction.
"""

from __future__ import annotations

import logging
import math
import posixpath
from array import array
from collections.abc import Iterator
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
# the most orphan keys kept in memory between their listing and their deletion (MASS
# CHANGE); more are found again by a second listing
ORPHANS_HELD = 10_000


@dataclass
class StorageSweep:
    files_checked: int = 0
    orphan_files_deleted: int = 0
    rows_checked: int = 0
    rows_without_file: int = 0
    # what the sweep found and the most it changes on its own (MASS CHANGE)
    orphan_files_found: int = 0
    orphan_limit: int = 0
    rows_found_without_file: int = 0
    rows_limit: int = 0
    orphans_refused: bool = False
    rows_refused: bool = False

    @property
    def refused(self) -> bool:
        return self.orphans_refused or self.rows_refused


def mass_change_limit(checked: int) -> int:
    """The most changes of one kind (orphans deleted, artefacts tombstoned) a sweep makes
    on its own, having checked `checked` files or artefacts."""
    share = math.floor(checked * settings.STORAGE_SWEEP_MAX_CHANGE_SHARE)
    return max(int(settings.STORAGE_SWEEP_MAX_CHANGE_FLOOR), share)


def _missing_files(result: StorageSweep) -> array[int]:
    """The ids of active artefacts whose file is gone, 8 bytes each (an `array`): at ten
    million artefacts, all missing when the storage named is the wrong one (MASS
    CHANGE), 80 MB where a list of ints held 360."""
    if not storage_is_s3():
        # a local stat per key: cheap
        return _missing_by_exists(result, Artefact.objects.all())
    prefixes = _listed_prefixes()
    missing: array[int] = array("q")
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


def _missing_by_exists(result: StorageSweep, artefacts: QuerySet[Artefact]) -> array[int]:
    last_id = 0
    missing: array[int] = array("q")
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
        missing.extend(pk for pk, key in rows if not default_storage.exists(key))
        last_id = rows[-1][0]


def _missing_by_listing(result: StorageSweep, prefix: str) -> array[int]:
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
    missing: array[int] = array("q")
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


def _listing_pages(prefix: str) -> Iterator[list[tuple[str, datetime]]]:
    page: list[tuple[str, datetime]] = []
    # the times come with the listing: no request per file on S3 (core.storage)
    for item in storage_listing(prefix):
        page.append(item)
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


def _unnamed(keys: list[str]) -> list[str]:
    """Of `keys`, those no artefact names at this moment."""
    known = set(Artefact.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
    return [key for key in keys if key not in known]


def _orphans(files: list[tuple[str, datetime]], *, before: datetime) -> list[str]:
    return _unnamed([key for key, modified in files if modified <= before])


def _find_orphans(result: StorageSweep, *, before: datetime) -> list[str] | None:
    """Count the files under `audio/` and the orphans among them, older than `before`;
    return the orphans' keys, or None when they are more than ORPHANS_HELD."""
    held: list[str] | None = []
    for page in _listing_pages("audio/"):
        result.files_checked += len(page)
        orphans = _orphans(page, before=before)
        result.orphan_files_found += len(orphans)
        if held is not None:
            held += orphans
            if len(held) > ORPHANS_HELD:
                held = None
    return held


def _delete_orphans(
    result: StorageSweep, held: list[str] | None, *, before: datetime, limit: int | None
) -> None:
    """Delete the orphans `_find_orphans` found: the held keys still no artefact names,
    or, when there were too many to hold, those a second listing finds, stopping before
    they would cross `limit` (MASS CHANGE)."""
    if held is not None:
        for start in range(0, len(held), PAGE):
            orphans = _unnamed(held[start : start + PAGE])
            # one DeleteObjects request on S3 (compliance.core.storage)
            storage_delete(orphans)
            result.orphan_files_deleted += len(orphans)
        return
    for page in _listing_pages("audio/"):
        orphans = _orphans(page, before=before)
        if limit is not None and result.orphan_files_deleted + len(orphans) > limit:
            result.orphans_refused = True
            return
        storage_delete(orphans)
        result.orphan_files_deleted += len(orphans)


def storage_sweep(
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(hours=1),
    allow_mass_change: bool = False,
) -> StorageSweep:
    """Settle what a crash can leave between storage and database.

    A file no artefact names (the ingest saved it, then died before its row
    committed) is deleted once older than `grace`, so an ingest in flight is never
    touched. An active artefact whose file is gone is tombstoned as `file_missing`:
    its content no longer exists, and the record must say so. One ledger entry.

    Neither is done when it would be a mass change (more than `mass_change_limit` of
    what was checked), unless `allow_mass_change`: the result and a
    `storage.sweep_refused` entry say so (MASS CHANGE in the module's docstring).
    """
    now = now or timezone.now()
    result = StorageSweep()
    held = _find_orphans(result, before=now - grace)
    result.orphan_limit = mass_change_limit(result.files_checked)
    if result.orphan_files_found > result.orphan_limit and not allow_mass_change:
        result.orphans_refused = True
    elif result.orphan_files_found:
        _delete_orphans(
            result,
            held,
            before=now - grace,
            limit=None if allow_mass_change else result.orphan_limit,
        )

    missing = _missing_files(result)
    result.rows_found_without_file = len(missing)
    result.rows_limit = mass_change_limit(result.rows_checked)
    if len(missing) > result.rows_limit and not allow_mass_change:
        result.rows_refused = True
        missing = array("q")
    over_limit = (
        result.orphan_files_found > result.orphan_limit
        or result.rows_found_without_file > result.rows_limit
    )

    changed = bool(missing or result.orphan_files_deleted)
    if result.refused:
        logger.error(
            "storage.sweep_refused orphan_files=%d of %d files (limit %d) refused=%s "
            "rows_without_file=%d of %d artefacts (limit %d) refused=%s; nothing of a "
            "refused kind was changed: check the storage and DATABASE_URL, then "
            "`manage.py storage_sweep --allow-mass-change`",
            result.orphan_files_found,
            result.files_checked,
            result.orphan_limit,
            result.orphans_refused,
            result.rows_found_without_file,
            result.rows_checked,
            result.rows_limit,
            result.rows_refused,
        )
    if changed or result.refused:
        with transaction.atomic():
            if changed:
                _tombstone(result, missing, now=now, allowed=allow_mass_change and over_limit)
            if result.refused:
                ledger_append(
                    kind="storage.sweep_refused",
                    subject="storage",
                    actor="sweep",
                    payload={
                        "files_checked": result.files_checked,
                        "orphan_files_found": result.orphan_files_found,
                        "orphan_limit": result.orphan_limit,
                        "orphans_refused": result.orphans_refused,
                        "orphan_files_deleted": result.orphan_files_deleted,
                        "rows_checked": result.rows_checked,
                        "rows_found_without_file": result.rows_found_without_file,
                        "rows_limit": result.rows_limit,
                        "rows_refused": result.rows_refused,
                    },
                )
    if changed:
        logger.warning(
            "storage.swept orphan_files=%d rows_without_file=%d",
            result.orphan_files_deleted,
            result.rows_without_file,
        )
    return result


def _tombstone(result: StorageSweep, missing: array[int], *, now: datetime, allowed: bool) -> None:
    """Tombstone the active artefacts among `missing`, PAGE at a time (an operator's
    mass change may name millions), and the sweep's ledger entry (`allowed`: an
    operator let a mass change through)."""
    result.rows_without_file = 0
    for start in range(0, len(missing), PAGE):
        ids = missing[start : start + PAGE].tolist()
        result.rows_without_file += Artefact.objects.filter(
            pk__any_of=ids, state=ArtefactState.ACTIVE
        ).update(
            state=ArtefactState.PURGED,
            storage_key="",
            purged_at=now,
            purge_reason=PurgeReason.FILE_MISSING,
        )
        audit_bulk_change(
            model=Artefact,
            pks=Artefact.objects.filter(
                pk__any_of=ids,
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
    payload: dict[str, object] = {
        "orphan_files_deleted": result.orphan_files_deleted,
        "rows_without_file": result.rows_without_file,
        "artefacts": missing[:1000].tolist(),
    }
    if allowed:
        payload["mass_change_allowed"] = True
    ledger_append(kind="storage.swept", subject="storage", actor="sweep", payload=payload)
