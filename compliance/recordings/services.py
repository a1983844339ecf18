"""Ingest: recordings and their artefacts, one at a time (an upload, `recording_store`)
or by the thousand (`recordings_store`, for audio already in storage). Callers go
through the ingest action (`compliance/actions/ingest.py`), which hands down the
expiry that retention computes: this app stands below retention and imports none of it.

Both share one write (`_write`): a transaction that locks the profiles FOR SHARE,
resolves the retention policies (the action's `expiry`), and writes the recordings
with one multi-row `INSERT ... ON CONFLICT (external_id) DO NOTHING` and their
artefacts with one more (on PostgreSQL one statement, which also appends the ledger
entry when every item was created: see `_rows_sql`).

LOCK ORDER (the whole codebase's: account -> profile -> consent lock -> consent state
-> recording -> artefact -> review item -> ledger append last): the profiles FOR SHARE
(ordered by id), then the new recordings (inserted ordered by external id, so two
batches that overlap wait for each other in the same order and never deadlock), then
the new artefacts (audio ordered by storage key, for the same reason), then the ledger.
The profile lock is the one a retention-choice change takes FOR UPDATE before it
reschedules the profile's artefacts: an ingest either sees the new choice or its
artefacts exist when the reschedule reads them, never neither.

A registered object (`audio_key`) is owned by exactly one artefact: a unique index
on the artefact's storage key holds it, so two batches at once cannot both register
it, and the purge, which deletes the file its row names, never deletes audio that
another recording owns.
"""

import functools
import hashlib
import logging
import posixpath
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Model
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.core.errors import ApplicationError, Conflict, PayloadTooLarge, field_error
from compliance.core.sql import bound_cursor
from compliance.core.storage import storage_delete
from compliance.core.transactions import require_transaction
from compliance.ledger.services import (
    LEDGER_APPEND_CALL,
    PreparedEntry,
    ledger_append,
    ledger_entry_prepare,
)

from .media import audio_media_type
from .models import Artefact, Category, Flag, Recording, RecordingState

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = {".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".webm", ".aac"}
MAX_TRANSCRIPT_CHARS = 100_000
MAX_FUTURE_SKEW = timedelta(days=1)
MAX_BATCH = 1_000
# Storage look-ups of one batch at once (HEAD requests on S3; stat and read on disk).
STORAGE_THREADS = 8
# Each retry follows a unique-key conflict with a batch that committed meanwhile, and
# refuses what that batch took; a handful of retries settles any realistic race.
KEY_CONFLICT_RETRIES = 5


class ExpirySchedule(Protocol):
    """Sets `expires_at` and `expiry_basis` on artefacts being created, before they are
    saved. Expiry is retention's rule, which stands above this app: the action that
    combines the two (`compliance/actions/ingest.py`, or sampling's annotation) hands
    it down as `expiry`, a function of the write's time that this module calls inside
    the transaction that inserts the artefacts."""

    def __call__(
        self, *, artefacts: Iterable[Artefact], profile: Profile, recorded_at: datetime
    ) -> None: ...


Expiry = Callable[[datetime], ExpirySchedule]


class ExpiryReading(Protocol):
    """An `Expiry` that needs one row read inside the write's transaction (retention's
    check of its per-process copy of the policies): `_write` reads that row with the
    statement that locks the profiles, one round trip fewer, and hands it to `given`."""

    @property
    def reads(self) -> str:
        """A statement giving one row, with no parameters."""
        ...

    def __call__(self, now: datetime) -> ExpirySchedule: ...

    def given(self, now: datetime, read: tuple[Any, ...]) -> ExpirySchedule: ...


@dataclass(frozen=True)
class RecordingInput:
    external_id: str
    profile_external_id: str
    recorded_at: datetime
    transcript: str | None = None
    flags: tuple[str, ...] = ()
    audio: File | None = None
    # an object already in storage, under INGEST_AUDIO_PREFIX (the batch endpoint)
    audio_key: str | None = None
    audio_size: int | None = None
    audio_sha256: str | None = None


Status = Literal["created", "exists", "error"]


@dataclass(frozen=True)
class IngestResult:
    external_id: str
    status: Status
    code: str = ""
    message: str = ""


def _invalid(
    field: str, message: str, code: str = "validation_error", field_code: str = "invalid"
) -> ApplicationError:
    return ApplicationError(code, message, fields=field_error(field, field_code, message))


def _check(data: RecordingInput) -> None:
    """What can be said of an input without the database or the storage."""
    if not data.external_id or len(data.external_id) > 128:
        raise _invalid("external_id", "Must be 1 to 128 characters.")
    if not data.profile_external_id or len(data.profile_external_id) > 128:
        raise _invalid("profile", "Must be 1 to 128 characters.")
    if timezone.is_naive(data.recorded_at):
        raise _invalid("recorded_at", "Needs a time zone (e.g. 2026-01-31T12:00:00Z).")
    if data.recorded_at > timezone.now() + MAX_FUTURE_SKEW:
        raise _invalid("recorded_at", "Lies in the future.")
    unknown = set(data.flags) - set(Flag.values)
    if unknown:
        raise _invalid(
            "flags", f"Unknown flags {sorted(unknown)}; known: {', '.join(Flag.values)}."
        )
    if data.transcript is not None and len(data.transcript) > MAX_TRANSCRIPT_CHARS:
        raise _invalid("transcript", f"At most {MAX_TRANSCRIPT_CHARS} characters.")
    if data.audio is not None:
        if data.audio.size == 0:
            raise _invalid("audio", "The audio file is empty.")
        if data.audio.size > settings.MAX_AUDIO_BYTES:
            message = f"The audio file exceeds {settings.MAX_AUDIO_BYTES} bytes."
            raise PayloadTooLarge(
                "payload_too_large", message, fields=field_error("audio", "too_large", message)
            )
        audio_media_type(data.audio)  # 415 unless its bytes are audio
    if data.audio_key is not None:
        _check_audio_key(data.audio_key)
    elif data.audio_size is not None or data.audio_sha256 is not None:
        raise _invalid("audio_key", "audio_size and audio_sha256 describe an audio_key.")
    if data.audio_size is not None and data.audio_size < 0:
        raise _invalid("audio_size", "A number of bytes.")
    if data.audio_sha256 is not None and (
        len(data.audio_sha256) != 64 or not all(c in "0123456789abcdef" for c in data.audio_sha256)
    ):
        raise _invalid("audio_sha256", "64 lower-case hexadecimal digits.")


def _check_audio_key(key: str) -> None:
    """A relative key under INGEST_AUDIO_PREFIX that names itself: no `..`, no `.`, no
    empty segment, no backslash (some storages read it as a separator)."""
    prefix = settings.INGEST_AUDIO_PREFIX.rstrip("/") + "/"
    parts = key.split("/")
    if (
        not key.startswith(prefix)
        or len(key) == len(prefix)
        or len(key) > 255
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in parts)
        or posixpath.normpath(key) != key
    ):
        raise _invalid(
            "audio_key",
            f"A relative key under {prefix!r}, without '..' or empty segments.",
            code="audio_key_invalid",
        )


def _audio_key(name: str | None) -> str:
    """A storage key that says nothing about whose voice it holds."""
    suffix = ""
    if name and "." in name:
        candidate = "." + name.rsplit(".", 1)[1].lower()
        suffix = candidate if candidate in AUDIO_EXTENSIONS else ""
    now = timezone.now()
    return f"audio/{now:%Y/%m}/{uuid.uuid4().hex}{suffix or '.bin'}"


# --- the shared write ---------------------------------------------------------------


@dataclass
class _Item:
    """An input on its way to the database: where it stands in the request, and what
    the storage said of its audio (an upload's key and size, or a registered one's)."""

    index: int
    data: RecordingInput
    audio_key: str = ""
    audio_size: int = 0


@dataclass
class _Written:
    results: dict[int, IngestResult] = field(default_factory=dict)
    recordings: dict[int, Recording] = field(default_factory=dict)


def _locked_profiles(
    external_ids: list[str], *, reads: str | None = None
) -> tuple[dict[str, Profile], tuple[Any, ...] | None]:
    """The profiles, locked FOR SHARE (see the lock order above); with their account's
    jurisdiction, which is all the expiry needs of the account. With `reads` (see
    `ExpiryReading`), also that statement's row, read by the same statement (None
    when no profile was found)."""
    if not external_ids:
        return {}, None
    lock = " FOR SHARE OF p" if connection.vendor == "postgresql" else ""
    placeholders = ", ".join(["%s"] * len(external_ids))
    also, joined = (", r.*", f" CROSS JOIN ({reads}) r") if reads else ("", "")
    with bound_cursor() as cursor:
        # only placeholders, constants and the expiry's own statement are formatted in
        sql = (
            "SELECT p.id, p.external_id, p.is_child, p.retention_choice, p.account_id,"  # noqa: S608
            f" a.jurisdiction{also} FROM accounts_profile p"
            f" JOIN accounts_account a ON a.id = p.account_id{joined}"
            f" WHERE p.external_id IN ({placeholders}) ORDER BY p.id{lock}"
        )
        cursor.execute(sql, external_ids)
        rows = cursor.fetchall()
    profiles = {}
    for pk, external_id, is_child, choice, account_id, jurisdiction, *_ in rows:
        profile = Profile(
            id=pk,
            external_id=external_id,
            is_child=is_child,
            retention_choice=choice,
            account_id=account_id,
        )
        profile.account = Account(id=account_id, jurisdiction=jurisdiction)
        profiles[external_id] = profile
    return profiles, (tuple(rows[0][6:]) if reads and rows else None)


# Field types whose Python values the drivers take as they are (no get_db_prep_save)
_AS_IS = frozenset(
    {
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "ForeignKey",
        "IntegerField",
        "PositiveIntegerField",
        "TextField",
    }
)
SQLITE_ROWS_PER_INSERT = 1_000  # keeps the parameters of a statement under SQLite's limit


_AS_WRITTEN, _TEXT, _DATETIME, _PREPARED = range(4)


# fields list (by identity, kept alive here) -> how `_columns` takes each field's values
_plans: dict[int, tuple[list[Any], tuple[tuple[str, int, Any], ...]]] = {}


def _column_plan(fields: list[Any], vendor: str) -> tuple[tuple[str, int, Any], ...]:
    """How `_columns` takes each field's values: (attname, how, field). Cached by the
    list's identity: the lists come from the statements' caches, and hashing every
    field for a cache key cost more than the plan saves."""
    cached = _plans.get(id(fields))
    if cached is not None and cached[0] is fields:
        return cached[1]
    plan = []
    for f in fields:
        kind = f.get_internal_type()
        if kind == "DateTimeField":
            # PostgreSQL's driver takes aware datetimes as they are
            how = _AS_WRITTEN if vendor == "postgresql" else _DATETIME
        elif kind in ("CharField", "TextField"):
            how = _TEXT
        elif kind in _AS_IS:
            how = _AS_WRITTEN
        else:
            how = _PREPARED
        plan.append((f.attname, how, f))
    _plans[id(fields)] = (fields, tuple(plan))
    return tuple(plan)


def _columns(fields: list[Any], objs: list[Any]) -> list[list[Any]]:
    """The values of `objs`, column by column, as the database takes them. The common
    types are passed through: preparing each value through its field cost more than
    the INSERT itself for a batch."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: the proxy costs per access
    columns = []
    for attname, how, f in _column_plan(fields, db.vendor):
        values = [getattr(obj, attname) for obj in objs]
        if how == _TEXT:
            # TextChoices members are str subclasses; the driver wants str
            values = [v if v is None or type(v) is str else str(v) for v in values]
        elif how == _DATETIME:
            adapt = db.ops.adapt_datetimefield_value
            values = [None if v is None else adapt(v) for v in values]
        elif how == _PREPARED:
            values = [f.get_db_prep_save(v, db) for v in values]
        columns.append(values)
    return columns


# Up to this many rows go as VALUES (one parameter per value, the statement's text the
# same for the same count, so the driver reuses its parse); more as arrays, unnested.
VALUES_ROWS = 8


@functools.lru_cache(maxsize=64)
def _insert_sql(model: type[Model], suffix: str, vendor: str, rows: int) -> tuple[list, str]:
    """The fields an insert writes and its statement for `rows` rows (0: unnest)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    # a concrete field always has a column (the stubs allow None)
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)  # type: ignore[arg-type]
    table = model._meta.db_table
    if rows == 0:
        arrays = ", ".join(f"%s::{f.cast_db_type(connection)}[]" for f in fields)
        # only the model's table, its columns and their types are formatted in
        return fields, f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {suffix}"  # noqa: S608
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return fields, f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * rows)} {suffix}"  # noqa: S608


def _insert(model: type[Model], objs: list[Any], *, suffix: str) -> list[tuple[Any, ...]]:
    """Insert `objs` (every concrete field but the id, as the objects hold them: no
    `pre_save`, so `created_at` is the ingest's own time), then `suffix` (ON CONFLICT
    ..., RETURNING ...); the rows returned. Many rows on PostgreSQL go as one
    statement with a parameter per column (an array, unnested): psycopg splits a
    query's text at every placeholder, which for 14 columns of 2,000 rows cost more
    than the database's work."""
    vendor = connection.vendor
    if vendor == "postgresql" and len(objs) > VALUES_ROWS:
        fields, sql = _insert_sql(model, suffix, vendor, 0)
        with bound_cursor() as cursor:
            cursor.execute(sql, _columns(fields, objs))
            return cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    with bound_cursor() as cursor:
        for start in range(0, len(objs), SQLITE_ROWS_PER_INSERT):
            chunk = objs[start : start + SQLITE_ROWS_PER_INSERT]
            fields, sql = _insert_sql(model, suffix, vendor, len(chunk))
            params = [v for row in zip(*_columns(fields, chunk), strict=True) for v in row]
            cursor.execute(sql, params)
            rows += cursor.fetchall()
    return rows


_NEW_RECORDINGS = "ON CONFLICT (external_id) DO NOTHING RETURNING id, external_id"


@functools.lru_cache(maxsize=64)
def _rows_sql(rows: int, artefacts: int, ledger: bool) -> tuple[list, list, str]:
    """The recording fields, the artefact fields (all but the recording) and the one
    statement (PostgreSQL) that inserts `rows` recordings and `artefacts` artefacts of
    those inserted (both 0: as unnested arrays). The artefacts come as (owner's
    external id, order, fields...), so that each is written with the id of its
    recording, in the order given, and none for a recording that existed already.

    With `ledger`, the statement then appends a ledger entry (LEDGER_APPEND_CALL's
    parameters, then the numbers of recordings and artefacts expected) if every
    recording and artefact was inserted, and answers its id, number and previous hash
    on each row (NULL when it appended none). The entry's guard counts both inserts'
    rows, so the append (and the ledger's lock) comes after them and after any wait
    for another transaction's conflicting key: the ledger's lock last."""
    recording_fields, recordings = _insert_sql(Recording, _NEW_RECORDINGS, "postgresql", rows)
    fields = [f for f in Artefact._meta.concrete_fields if not f.primary_key]
    fields = [f for f in fields if f.attname != "recording_id"]
    quote = connection.ops.quote_name
    columns = [quote(f.column) for f in fields]  # type: ignore[arg-type]  # concrete: a column
    types = ["text", "integer", *(f.cast_db_type(connection) for f in fields)]
    if rows == 0:
        source = "unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"
    else:
        one = "(" + ", ".join(f"%s::{t}" for t in types) + ")"
        source = f"(VALUES {', '.join([one] * artefacts)})"
    # only the models' tables, columns and types are formatted in
    sql = (
        f"WITH r AS ({recordings}),"  # noqa: S608
        f" a AS (INSERT INTO {Artefact._meta.db_table} (recording_id, {', '.join(columns)})"
        f" SELECT r.id, {', '.join('v.' + c for c in columns)}"
        f" FROM {source} AS v(_owner, _order, {', '.join(columns)})"
        " JOIN r ON r.external_id = v._owner ORDER BY v._order"
        " RETURNING id, recording_id, category)"
    )
    if not ledger:
        sql += (
            " SELECT r.id, r.external_id, a.id, a.category"
            " FROM r LEFT JOIN a ON a.recording_id = r.id"
        )
        return recording_fields, fields, sql
    # the ledger's own call (a constant) is formatted in
    sql += (
        f", l AS (SELECT * FROM {LEDGER_APPEND_CALL}"  # noqa: S608
        " WHERE (SELECT count(*) FROM r) = %s AND (SELECT count(*) FROM a) = %s)"
        " SELECT r.id, r.external_id, a.id, a.category, l.*"
        " FROM r LEFT JOIN a ON a.recording_id = r.id LEFT JOIN l ON true"
    )
    return recording_fields, fields, sql


def _insert_rows(
    recordings: list[Recording],
    artefacts: list[tuple[str, Artefact]],
    *,
    ledger: PreparedEntry | None = None,
) -> bool:
    """Insert the recordings that are new and the artefacts (each with its recording's
    external id, in the order given) of those inserted; set their ids. A recording
    whose external id exists (or is being inserted by a transaction that then commits)
    is skipped, not an error, and it and its artefacts keep no id. One statement on
    PostgreSQL, two elsewhere (SQLite has no INSERT in WITH).

    `ledger`: an entry the same statement appends if every row was inserted (see
    `_rows_sql`); whether it did (with no artefacts, the entry is left to the caller)."""
    if not recordings:
        return False
    if connection.vendor != "postgresql" or not artefacts:
        _insert_recordings(recordings)
        ids = {r.external_id: r.id for r in recordings}
        kept = []
        for owner, artefact in artefacts:
            if ids[owner] is not None:
                artefact.recording_id = ids[owner]
                kept.append(artefact)
        _insert_artefacts(kept)
        return False
    few = len(recordings) <= VALUES_ROWS
    recording_fields, fields, sql = _rows_sql(
        len(recordings) if few else 0, len(artefacts) if few else 0, ledger is not None
    )
    recording_columns = _columns(recording_fields, recordings)
    owners = [owner for owner, _ in artefacts]
    artefact_columns = [
        owners,
        list(range(len(artefacts))),
        *_columns(fields, [a for _, a in artefacts]),
    ]
    if few:
        params = [v for row in zip(*recording_columns, strict=True) for v in row]
        params += [v for row in zip(*artefact_columns, strict=True) for v in row]
    else:
        params = [*recording_columns, *artefact_columns]
    if ledger is not None:
        params += [*ledger.params(), len(recordings), len(artefacts)]
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.fetchall()
    by_owner = {r.external_id: r for r in recordings}
    artefact_ids = {}
    appended = False
    for pk, external_id, artefact_pk, category, *entry in written:
        by_owner[external_id].id = pk
        if artefact_pk is not None:
            artefact_ids[(external_id, category)] = (artefact_pk, pk)
        appended = appended or bool(entry and entry[0] is not None)
    for owner, artefact in artefacts:
        found = artefact_ids.get((owner, artefact.category))
        if found is not None:
            artefact.id, artefact.recording_id = found
    return appended


def _insert_recordings(recordings: list[Recording]) -> None:
    """Insert what is new; a recording whose external id exists (or is being inserted
    by a transaction that then commits) is skipped, not an error, and keeps no id."""
    if not recordings:
        return
    ids = dict(
        (external_id, pk)
        for pk, external_id in _insert(
            Recording,
            recordings,
            suffix=_NEW_RECORDINGS,
        )
    )
    for recording in recordings:
        recording.id = ids.get(recording.external_id)


def _insert_artefacts(artefacts: list[Artefact]) -> None:
    if artefacts:
        # matched by what is unique among them, not by the order of the returned rows
        ids = {
            (recording_id, category): pk
            for pk, recording_id, category in _insert(
                Artefact, artefacts, suffix="RETURNING id, recording_id, category"
            )
        }
        for artefact in artefacts:
            artefact.id = ids[(artefact.recording_id, artefact.category)]


def _same(data: RecordingInput, found: dict[str, Any]) -> bool:
    """Whether `data` describes the recording `found` (see `_existing`) as it was
    ingested: a resend of the same item."""
    audio = found["audio"]
    return (
        data.profile_external_id == found["profile"]
        and data.recorded_at == found["recorded_at"]
        and set(data.flags) == set(found["flags"])
        and data.transcript == found["transcript"]
        and (data.audio_key or None) == (audio[0] if audio else None)
        and (data.audio_size is None or (audio is not None and data.audio_size == audio[1]))
    )


def _as_found(item: _Item) -> dict[str, Any]:
    """An item that passed its storage check, as `_existing` gives a stored recording:
    a later item of the batch with its id is judged by `_same`, as a resend is. (A
    digest needs no comparison: each item that gives one was checked against the same
    object.)"""
    data = item.data
    return {
        "profile": data.profile_external_id,
        "recorded_at": data.recorded_at,
        "flags": data.flags,
        "transcript": data.transcript,
        "audio": (item.audio_key, item.audio_size) if item.audio_key else None,
    }


def _existing(external_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The recordings with these external ids, as `_same` compares them: one query for
    the recordings, one more for their artefacts when there are any."""
    if not external_ids:
        return {}
    found: dict[str, dict[str, Any]] = {}
    by_id: dict[int, dict[str, Any]] = {}
    for pk, external_id, state, profile, recorded_at, sensitive, false_wake in (
        Recording.objects.filter(external_id__in=list(external_ids))
        .values_list(
            "id",
            "external_id",
            "state",
            "profile__external_id",
            "recorded_at",
            "sensitive",
            "false_wake",
        )
        .order_by()
    ):
        flags = [f for f, on in ((Flag.SENSITIVE, sensitive), (Flag.FALSE_WAKE, false_wake)) if on]
        entry = {
            "state": state,
            "profile": profile,
            "recorded_at": recorded_at,
            "flags": flags,
            "transcript": None,
            "audio": None,
        }
        found[external_id] = by_id[pk] = entry
    if by_id:
        for recording_id, category, key, text, size in (
            Artefact.objects.filter(
                recording_id__any_of=list(by_id), category__in=[Category.AUDIO, Category.TRANSCRIPT]
            )
            .values_list("recording_id", "category", "storage_key", "text", "size_bytes")
            .order_by()
        ):
            if category == Category.TRANSCRIPT:
                by_id[recording_id]["transcript"] = text
            else:
                by_id[recording_id]["audio"] = (key, size)
    return found


def _classify(data: RecordingInput, found: dict[str, Any]) -> IngestResult:
    """An input whose external id exists: a resend, a different recording, or a tombstone."""
    if found["state"] == RecordingState.PURGED:
        return IngestResult(
            data.external_id,
            "error",
            "purged",
            "This recording was purged; its id cannot be used again.",
        )
    if _same(data, found):
        return IngestResult(data.external_id, "exists")
    return IngestResult(
        data.external_id,
        "error",
        "conflict",
        "A different recording with this external id exists.",
    )


def _keys_in_use(keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    return set(
        Artefact.objects.filter(storage_key__in=list(keys))
        .values_list("storage_key", flat=True)
        .order_by()
    )


def _names_shared(items: Sequence[_Item]) -> bool:
    """Whether two of `items` name the same external id or the same audio object."""
    ids = {i.data.external_id for i in items}
    keys = [i.data.audio_key for i in items if i.data.audio_key]
    return len(ids) < len(items) or len(set(keys)) < len(keys)


def _profiles_known(external_ids: Iterable[str]) -> set[str]:
    return set(
        Profile.objects.filter(external_id__in=list(external_ids))
        .values_list("external_id", flat=True)
        .order_by()
    )


def _unknown_profile(data: RecordingInput) -> IngestResult:
    return IngestResult(
        data.external_id, "error", "unknown_profile", f"No profile {data.profile_external_id!r}."
    )


def _key_in_use(external_id: str) -> IngestResult:
    return IngestResult(
        external_id,
        "error",
        "audio_key_in_use",
        "Another recording owns this audio object.",
    )


def _write(items: list[_Item], *, actor: str, ledger: bool, expiry: Expiry) -> _Written:
    """Write `items` (checked, external ids distinct, audio keys distinct and verified in
    storage) in one transaction; see the module's header for its locks. Each item ends
    `created`, `exists` or `error` (unknown profile, external id taken by another
    recording or by a tombstone, audio key owned by another recording). With `ledger`,
    one ledger entry names what was created. Raises IntegrityError only when key
    conflicts outlast KEY_CONFLICT_RETRIES."""
    written = _Written()
    pending = sorted(items, key=lambda i: i.data.external_id)
    # an ExpiryReading (by its attribute: isinstance on a runtime protocol costs more)
    reads: str | None = getattr(expiry, "reads", None)
    with transaction.atomic():
        profiles, read = _locked_profiles(
            sorted({i.data.profile_external_id for i in pending}), reads=reads
        )
        for item in pending:
            if item.data.profile_external_id not in profiles:
                written.results[item.index] = _unknown_profile(item.data)
        pending = [i for i in pending if i.index not in written.results]
        now = timezone.now()
        schedule = _schedule_at(now, expiry, read)
        # Only a registered key can be taken meanwhile (an upload's key is new): only
        # then is the savepoint worth its two statements.
        registers = any(i.data.audio_key for i in pending)
        for attempt in range(KEY_CONFLICT_RETRIES + 1):
            # the entry if every pending item is created, appended by the rows' statement
            # (None on SQLite: ledger_append below)
            entry = (
                ledger_entry_prepare(**_registered(pending, actor=actor))
                if ledger and pending
                else None
            )
            try:
                with transaction.atomic(savepoint=registers):
                    created, appended = _write_rows(
                        pending, profiles=profiles, schedule=schedule, now=now, ledger=entry
                    )
                break
            except IntegrityError:
                if not registers or attempt == KEY_CONFLICT_RETRIES:
                    raise
                # Another batch committed a key of ours after our check; it owns it now.
                in_use = _keys_in_use([i.audio_key for i in pending if i.audio_key])
                if not in_use:
                    raise
                for item in pending:
                    if item.audio_key in in_use:
                        written.results[item.index] = _key_in_use(item.data.external_id)
                pending = [i for i in pending if i.index not in written.results]
        skipped = [i for i in pending if i.data.external_id not in created]
        if skipped:
            # inserted meanwhile by another transaction, which has committed
            found = _existing([i.data.external_id for i in skipped])
            for item in skipped:
                written.results[item.index] = _classify(item.data, found[item.data.external_id])
        for item in pending:
            recording = created.get(item.data.external_id)
            if recording is not None:
                written.results[item.index] = IngestResult(item.data.external_id, "created")
                written.recordings[item.index] = recording
        if ledger and written.recordings and not appended:
            ledger_append(
                **_registered([i for i in pending if i.index in written.recordings], actor=actor)
            )
    return written


def _registered(items: list[_Item], *, actor: str) -> dict[str, Any]:
    """The ledger entry (ledger_append's arguments) that registers `items`, created."""
    ids = sorted(i.data.external_id for i in items)
    return {
        "kind": "recordings.registered",
        "subject": "recordings",
        "actor": actor,
        "payload": {
            "count": len(ids),
            "audio": sum(1 for i in items if i.audio_key),
            # the external ids, sorted, one per line: whoever holds the list can prove
            # it is the one recorded here
            "external_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "first": ids[0],
            "last": ids[-1],
        },
    }


def _write_rows(
    items: list[_Item],
    *,
    profiles: dict[str, Profile],
    schedule: ExpirySchedule,
    now: datetime,
    ledger: PreparedEntry | None = None,
) -> tuple[dict[str, Recording], bool]:
    """The recordings and the artefacts of those inserted (see `_insert_rows`), and
    whether the statement appended `ledger`."""
    recordings = {
        i.data.external_id: Recording(
            external_id=i.data.external_id,
            profile=profiles[i.data.profile_external_id],
            recorded_at=i.data.recorded_at,
            sensitive=Flag.SENSITIVE in i.data.flags,
            false_wake=Flag.FALSE_WAKE in i.data.flags,
            state=RecordingState.ACTIVE,
            created_at=now,
        )
        for i in items
    }
    audio: list[tuple[str, Artefact]] = []
    transcripts: list[tuple[str, Artefact]] = []
    for item in items:
        data = item.data
        artefacts = []
        if item.audio_key:
            artefacts.append(
                Artefact(
                    category=Category.AUDIO,
                    storage_key=item.audio_key,
                    size_bytes=item.audio_size,
                    created_at=now,
                )
            )
        if data.transcript is not None:
            artefacts.append(
                Artefact(
                    category=Category.TRANSCRIPT,
                    text=data.transcript,
                    size_bytes=len(data.transcript.encode()),
                    created_at=now,
                )
            )
        schedule(
            artefacts=artefacts,
            profile=profiles[data.profile_external_id],
            recorded_at=data.recorded_at,
        )
        for artefact in artefacts:
            owned = (data.external_id, artefact)
            (audio if artefact.category == Category.AUDIO else transcripts).append(owned)
        # what the single POST answers with, without reading it back (a plain list:
        # `recording.artefacts` stays a live manager for whoever keeps the object)
        recordings[data.external_id].written_artefacts = artefacts
    audio.sort(key=lambda owned: owned[1].storage_key)
    appended = _insert_rows(list(recordings.values()), audio + transcripts, ledger=ledger)
    return {key: r for key, r in recordings.items() if r.id is not None}, appended


# --- one recording, uploaded ----------------------------------------------------------


def recording_store(*, data: RecordingInput, actor: str, expiry: Expiry) -> Recording:
    """Store the audio, then the rows; if the rows fail, the file is removed again. For
    the ingest action (`compliance.actions.ingest.recording_create`), which hands down
    retention's `expiry`.

    A crash between the two leaves at worst a file without a row, which the storage
    sweep settles; never a row pointing at a missing file. The rows are written as a
    batch of one (see `_write`), with its ledger entry (every registration is in the
    ledger, docs/invariants.md); the answer is built from what was written.
    """
    _check(data)
    if data.audio_key is not None:
        raise _invalid("audio_key", "Register stored audio through /recordings/batch.")
    item = _Item(index=0, data=data)
    if data.audio is not None:
        # A known id is refused before the file is written (the write refuses it too).
        if Recording.objects.filter(external_id=data.external_id).exists():
            raise Conflict("duplicate", f"A recording {data.external_id!r} exists already.")
        item.audio_size = data.audio.size or 0
        item.audio_key = default_storage.save(_audio_key(data.audio.name), data.audio)
    try:
        written = _write([item], actor=actor, ledger=True, expiry=expiry)
    except IntegrityError:
        _discard(item.audio_key)
        raise Conflict("duplicate", f"A recording {data.external_id!r} exists already.") from None
    except BaseException:
        _discard(item.audio_key)
        raise
    result = written.results[0]
    if result.status != "created":
        _discard(item.audio_key)
        if result.code == "unknown_profile":
            raise _invalid("profile", result.message, code="unknown_profile")
        raise Conflict("duplicate", f"A recording {data.external_id!r} exists already.")
    recording = written.recordings[0]
    logger.info(
        "recording.ingested id=%s artefacts=%d",
        recording.pk,
        len(recording.written_artefacts),
    )
    return recording


def annotation_schedule(*, recording: Recording, expiry: Expiry) -> ExpirySchedule | None:
    """How an annotation of `recording` will be scheduled, read as the ingest reads it
    (`_locked_profiles`): the recording's profile locked FOR SHARE and read afresh, with
    an `ExpiryReading`'s row in the same statement, so that a retention-choice change or
    a policy's reschedule either came before or waits for this transaction. For
    sampling, before the hand-off's other locks (the lock order). `recording.profile`
    becomes the row read. None: the recording has no profile (any more)."""
    require_transaction("annotation_schedule")
    if recording.profile is None:
        return None
    profiles, read = _locked_profiles(
        [recording.profile.external_id], reads=getattr(expiry, "reads", None)
    )
    profile = profiles.get(recording.profile.external_id)
    if profile is None:
        return None
    recording.profile = profile
    return _schedule_at(timezone.now(), expiry, read)


def _schedule_at(now: datetime, expiry: Expiry, read: tuple[Any, ...] | None) -> ExpirySchedule:
    """The schedule at `now`, a time taken after `read` was read (an `ExpiryReading`'s
    row; None for a plain `Expiry`): retention relies on a write that read the policies
    after a version's reschedule began also scheduling at a time no earlier
    (`artefacts_scheduled_so_far`)."""
    return cast(ExpiryReading, expiry).given(now, read) if read is not None else expiry(now)


def annotation_create(
    *, recording: Recording, text: str, schedule: ExpirySchedule | None
) -> Artefact:
    """A reviewer's annotation of `recording`, an artefact with its own expiry, by
    `schedule` (`annotation_schedule`'s, read earlier in the same transaction). For
    sampling, which accepts it inside the transaction that holds the review item."""
    require_transaction("annotation_create")
    artefact = Artefact(
        recording=recording,
        category=Category.ANNOTATION,
        text=text,
        size_bytes=len(text.encode()),
    )
    if schedule is not None and recording.profile is not None:
        schedule(artefacts=[artefact], profile=recording.profile, recorded_at=recording.recorded_at)
    artefact.save()
    return artefact


def _discard(key: str) -> None:
    if key:
        storage_delete([key])


# --- many recordings, audio already stored --------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """What the storage holds at a key: its size, and its SHA-256 when an item asked."""

    size: int | None  # None: no object there
    sha256: str | None = None


def _stored(key: str, digest: bool) -> _Stored:
    if not default_storage.exists(key):
        return _Stored(None)
    size = default_storage.size(key)
    if not digest:
        return _Stored(size)
    hashed = hashlib.sha256()
    with default_storage.open(key, "rb") as stored:
        for chunk in iter(lambda: stored.read(1 << 20), b""):
            hashed.update(chunk)
    return _Stored(size, hashed.hexdigest())


def _storage_refusal(item: _Item, stored: _Stored) -> IngestResult | None:
    """Whether the object `item` names exists and is what the item says of it; records
    its size when it is."""
    data = item.data
    if stored.size is None:
        return IngestResult(data.external_id, "error", "audio_missing", "No object at audio_key.")
    if data.audio_size is not None and data.audio_size != stored.size:
        return IngestResult(
            data.external_id,
            "error",
            "audio_mismatch",
            f"The object has {stored.size} bytes, not {data.audio_size}.",
        )
    if data.audio_sha256 is not None and data.audio_sha256 != stored.sha256:
        return IngestResult(
            data.external_id,
            "error",
            "audio_mismatch",
            "The object's SHA-256 differs from audio_sha256.",
        )
    assert data.audio_key is not None
    item.audio_key, item.audio_size = data.audio_key, stored.size
    return None


def _storage_refusals(items: list[_Item]) -> dict[int, IngestResult]:
    """Each item's refusal by what the storage holds, each object looked at once however
    many items name it (and read whole only if one of them gives its SHA-256)."""
    digest: dict[str, bool] = {}
    for item in items:
        assert item.data.audio_key is not None
        key = item.data.audio_key
        digest[key] = digest.get(key, False) or item.data.audio_sha256 is not None
    keys = list(digest)
    with ThreadPoolExecutor(min(STORAGE_THREADS, len(keys))) as pool:
        stored = dict(zip(keys, pool.map(_stored, keys, [digest[k] for k in keys]), strict=True))
    refusals = {}
    for item in items:
        assert item.data.audio_key is not None
        refusal = _storage_refusal(item, stored[item.data.audio_key])
        if refusal is not None:
            refusals[item.index] = refusal
    return refusals


def recordings_store(
    *, items: Sequence[RecordingInput | IngestResult], actor: str, expiry: Expiry
) -> list[IngestResult]:
    """Register up to MAX_BATCH recordings; one result per item, in order. For the
    ingest action (`compliance.actions.ingest.recordings_register`), which hands down
    retention's `expiry`.

    An item that the API could not parse comes as its (error) result. A resend of an item
    already ingested answers `exists` and writes nothing; the same external id with
    other data is a `conflict`, and a purged one stays a tombstone (`purged`). Audio
    is checked in storage before the transaction (no lock is held while waiting for
    the storage), its owner enforced in it. One ledger entry for what was created.
    """
    if len(items) > MAX_BATCH:
        raise ApplicationError(
            "batch_too_large",
            f"At most {MAX_BATCH} recordings per batch; got {len(items)}.",
            fields=field_error("recordings", "max_length", f"At most {MAX_BATCH} recordings."),
        )
    results: dict[int, IngestResult] = {}
    checked: list[_Item] = []
    for index, data in enumerate(items):
        if isinstance(data, IngestResult):
            results[index] = data
            continue
        try:
            _check(data)
        except ApplicationError as refused:
            results[index] = IngestResult(data.external_id, "error", refused.code, refused.message)
            continue
        checked.append(_Item(index=index, data=data))

    # an external id already taken: each item is judged against what is stored
    found = _existing(sorted({i.data.external_id for i in checked}))
    fresh: list[_Item] = []
    for item in checked:
        if item.data.external_id in found:
            results[item.index] = _classify(item.data, found[item.data.external_id])
        else:
            fresh.append(item)

    # An external id or an object named by several items goes to the first of them
    # that can be written: one that fails for its own reasons (an unknown profile, its
    # object missing or not as described) holds neither, so those are found first.
    if _names_shared(fresh):
        known = _profiles_known({i.data.profile_external_id for i in fresh})
        for item in fresh:
            if item.data.profile_external_id not in known:
                results[item.index] = _unknown_profile(item.data)
    in_use = _keys_in_use(
        [i.data.audio_key for i in fresh if i.data.audio_key and i.index not in results]
    )
    to_check = [
        i
        for i in fresh
        if i.data.audio_key and i.data.audio_key not in in_use and i.index not in results
    ]
    if to_check:
        results.update(_storage_refusals(to_check))

    first_of: dict[str, _Item] = {}  # external id -> the item that stands for it
    claimed: set[str] = set()  # the objects of those items
    repeats: list[int] = []
    ready: list[_Item] = []
    for item in fresh:
        if item.index in results:
            continue
        if item.data.external_id in first_of:
            repeats.append(item.index)
            continue
        key = item.data.audio_key
        if key and (key in in_use or key in claimed):
            results[item.index] = _key_in_use(item.data.external_id)
            continue
        first_of[item.data.external_id] = item
        if key:
            claimed.add(key)
        ready.append(item)
    if ready:
        written = _write(ready, actor=actor, ledger=True, expiry=expiry)
        results.update(written.results)

    for index in repeats:
        data = items[index]
        assert isinstance(data, RecordingInput)
        first = first_of[data.external_id]
        if not _same(data, _as_found(first)):
            results[index] = IngestResult(
                data.external_id,
                "error",
                "conflict",
                "An earlier item of this batch has this external id and other data.",
            )
        elif results[first.index].status == "error":
            results[index] = results[first.index]
        else:
            results[index] = IngestResult(data.external_id, "exists")
    logger.info(
        "recordings.registered items=%d created=%d",
        len(items),
        sum(1 for r in results.values() if r.status == "created"),
    )
    return [results[index] for index in range(len(items))]
