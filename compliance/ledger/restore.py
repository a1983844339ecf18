"""The database's log held against the exported one, and re-importing what it lacks.

A database restored from an older backup holds a prefix of the log that LEDGER_EXPORT
has published: the export's newest checkpoint covers entries the database no longer
has. Any entry appended then would take a number that a signed checkpoint already
commits to another entry, and fork the log for good. So while the database is
*behind*, nothing may append (`ledger_append` refuses, the API's writing methods answer
503 `ledger_behind_export`, `/readyz` answers 503, the purge, sampling and checkpoint
tasks skip), until `manage.py ledger_recover` re-imports the missing entries verbatim
from the export (`ledger_import_missing`) and re-applies their effects.

*Behind* needs evidence that both hold one history: the database's newest checkpoint
is published byte for byte, and its entries after that checkpoint equal the exported
ones. A fresh database (no entry, no checkpoint) beside a non-empty export, or one whose
entries differ, is *another history*: reported as such, never recovered from, and not
taken for behind. Only checkpoints a published key opens count; a file no key opens
proves nothing.

The check reads the export's listing and a checkpoint or two: cheap, but not free on a
hot path, so each process keeps its answer for STATE_TTL seconds (`ledger_export_state`);
after a restore the operator stops the processes first (docs/runtime.md), so a new
process never appends on a stale answer.
"""

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from compliance.core.errors import Unavailable
from earshot_verify.merkle import EMPTY_ROOT, hash_leaf, root_from_leaf_hashes
from earshot_verify.note import NoteError, key_hash, open_checkpoint

from . import tree
from .canonical import leaf_hash
from .checkpoints import _lock as _checkpoint_lock
from .checkpoints import (
    _published_verifiers,
    export_leaves,
    export_names,
    export_parts,
    export_read,
)
from .models import APPEND_LOCK_KEY, LedgerCheckpoint, LedgerEntry, LedgerEntryPart, LedgerKey
from .parts import Part, parts_store
from .signing import signing_key

logger = logging.getLogger(__name__)

STATE_TTL = 5.0

OK = "ok"
BEHIND = "behind"
OTHER_HISTORY = "other_history"


@dataclass(frozen=True)
class ExportState:
    status: str  # OK, BEHIND, OTHER_HISTORY
    database_size: int
    export_size: int
    message: str = ""

    @property
    def code(self) -> str:
        return {BEHIND: "ledger_behind_export", OTHER_HISTORY: "ledger_inconsistent"}.get(
            self.status, "ok"
        )


@dataclass(frozen=True)
class _Exported:
    tree_size: int
    root_hash: bytes
    note: str
    verifier_name: str
    public_key: bytes


def _open(note: str) -> _Exported | None:
    for verifier in _published_verifiers():
        try:
            checkpoint = open_checkpoint(note, verifier)
        except NoteError:
            continue
        return _Exported(
            checkpoint.tree_size, checkpoint.root_hash, note, verifier.name, verifier.public_key
        )
    return None


def _exported_checkpoints(after: int = 0) -> list[_Exported]:
    """The exported checkpoints of more than `after` entries that a published key opens,
    oldest first (the others are logged and skipped)."""
    found = []
    for name in export_names("checkpoints", after=f"{after:020d}"):
        if not name.isdigit() or int(name) <= after:
            continue
        content = export_read(f"checkpoints/{name}")
        opened = _open(content.decode()) if content is not None else None
        if opened is None or opened.tree_size != int(name):
            logger.error("ledger.export_unverifiable file=checkpoints/%s", name)
            continue
        found.append(opened)
    return found


def _compute_state() -> ExportState:
    own = LedgerCheckpoint.objects.order_by("-tree_size").first()
    published_since = export_names(
        "checkpoints", after=f"{own.tree_size:020d}" if own is not None else None
    )
    sizes = [int(name) for name in published_since if name.isdigit()]
    database_size = LedgerEntry.objects.aggregate(newest=Max("seq"))["newest"] or 0
    if own is not None and own.tree_size > database_size:
        return ExportState(
            OTHER_HISTORY,
            database_size,
            own.tree_size,
            f"The database holds {database_size} ledger entries but signed checkpoint "
            f"{own.tree_size} itself: entries were removed (a backup never lacks the entries "
            "its own checkpoints cover). Run verify_ledger.",
        )
    if not sizes or max(sizes) <= database_size:
        return ExportState(
            OK, database_size, max(sizes, default=own.tree_size if own is not None else 0)
        )
    ahead = _exported_checkpoints(after=database_size)
    if not ahead:
        return ExportState(OK, database_size, database_size)
    export_size = ahead[-1].tree_size
    if own is None and database_size == 0:
        return ExportState(
            OTHER_HISTORY,
            database_size,
            export_size,
            "The ledger is empty but LEDGER_EXPORT holds a signed checkpoint of "
            f"{export_size} entries: another deployment's export, or a database created "
            "anew. Point LEDGER_EXPORT at this deployment's export.",
        )
    since = 0
    if own is not None:
        published = export_read(f"checkpoints/{own.tree_size:020d}")
        if published is None or published.decode() != own.note:
            return ExportState(
                OTHER_HISTORY,
                database_size,
                export_size,
                f"The database's checkpoint {own.tree_size} is not the one LEDGER_EXPORT "
                "published: the export holds another history.",
            )
        since = own.tree_size
    exported = export_leaves(since + 1, database_size)
    for seq, leaf in (
        LedgerEntry.objects.filter(seq__gt=since).order_by("seq").values_list("seq", "leaf")
    ):
        if exported.get(seq) != bytes(leaf):
            return ExportState(
                OTHER_HISTORY,
                database_size,
                export_size,
                f"Ledger entry #{seq} differs from the exported one: the database and "
                "LEDGER_EXPORT hold two histories.",
            )
    return ExportState(
        BEHIND,
        database_size,
        export_size,
        f"The database's ledger holds {database_size} entries but LEDGER_EXPORT has a signed "
        f"checkpoint of {export_size} (restored from an older backup?): appending, purging "
        "and sampling are stopped until `manage.py ledger_recover` re-imports the missing "
        "entries.",
    )


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, ExportState]] = {}


def _cache_key() -> str:
    return f"{connection.settings_dict.get('NAME')}|{settings.LEDGER_EXPORT}"


def ledger_export_state(*, fresh: bool = False) -> ExportState:
    """The database's log against the exported one, as found at most STATE_TTL seconds
    ago by this process (`fresh`: now)."""
    key = _cache_key()
    now = time.monotonic()
    if not fresh:
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and now - cached[0] < STATE_TTL:
            return cached[1]
    state = _compute_state()
    if state.status != OK:
        logger.error(
            "ledger.export_state status=%s database=%d export=%d",
            state.status,
            state.database_size,
            state.export_size,
        )
    with _cache_lock:
        _cache[key] = (now, state)
    return state


def ledger_export_state_forget() -> None:
    """Forget the cached answers (after a restore or a recovery in this process)."""
    with _cache_lock:
        _cache.clear()


def ledger_writes_paused() -> ExportState | None:
    """The state that stops appending, purging and sampling, or None when they may go on."""
    state = ledger_export_state()
    return state if state.status == BEHIND else None


def ledger_require_writable() -> None:
    """Raise the API's 503 while the database is behind the export."""
    state = ledger_writes_paused()
    if state is not None:
        raise Unavailable(state.code, state.message)


# --- recovery -----------------------------------------------------------------------------


class RecoveryRefused(Exception):
    """The export cannot be re-imported as it is: nothing was changed."""


@dataclass(frozen=True)
class Recovery:
    first: int
    last: int
    checkpoints: int


def _decode(leaf: bytes) -> dict:
    fields = json.loads(leaf)
    if not isinstance(fields, dict) or not isinstance(fields.get("payload"), dict):
        raise RecoveryRefused("an exported leaf is not a ledger entry")
    return fields


def _key_row(opened: _Exported) -> LedgerKey:
    current = signing_key()
    row, created = LedgerKey.objects.get_or_create(
        use=LedgerKey.Use.CHECKPOINT,
        public_key=opened.public_key,
        defaults={
            "name": opened.verifier_name,
            "key_hash": f"{key_hash(opened.verifier_name, opened.public_key):08x}",
            "created_at": timezone.now(),
        },
    )
    if created and opened.public_key != current.public_key:
        LedgerKey.objects.filter(pk=row.pk).update(retired_at=timezone.now())
    return row


def _checked_parts(entry: LedgerEntry, exported: dict[int, bytes] | None) -> list[Part]:
    """The exported parts of `entry`, in index order, once they are exactly the ones its
    payload's `parts_root` and `parts` commit to (compliance/ledger/parts.py)."""
    payload = entry.payload
    if "parts_root" not in payload:
        if exported:
            raise RecoveryRefused(
                f"LEDGER_EXPORT holds parts of entry #{entry.seq}, whose payload has no parts_root"
            )
        return []
    count = payload.get("parts")
    exported = exported or {}
    if not isinstance(count, int) or sorted(exported) != list(range(count)):
        raise RecoveryRefused(
            f"the parts of entry #{entry.seq} are missing from LEDGER_EXPORT or incomplete "
            f"({len(exported)} of {count})"
        )
    parts = []
    for index in range(count):
        part = exported[index]
        try:
            body = json.loads(part)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("profile"), str):
            raise RecoveryRefused(f"exported part {index} of entry #{entry.seq} is not a part")
        parts.append(Part(body["profile"], part, hash_leaf(part)))
    root = root_from_leaf_hashes([p.leaf_hash for p in parts]) if parts else EMPTY_ROOT
    if base64.b64encode(root).decode() != payload["parts_root"]:
        raise RecoveryRefused(
            f"the exported parts of entry #{entry.seq} do not match its parts_root"
        )
    return parts


def ledger_import_missing(
    *,
    apply: Callable[[LedgerEntry], None] | None = None,
    finish: Callable[[], None] | None = None,
) -> Recovery:
    """Re-import, verbatim, the entries the export holds beyond the database's newest
    (same `seq`, leaf bytes and hashes) with the parts of those that cover many
    profiles (each entry's exported parts must be exactly those its `parts_root`
    commits to), extend the tree over them, check that it reaches the root of every
    exported checkpoint beyond the database's own, record those
    checkpoints, and hand each imported entry, in order, to `apply` (which re-applies its
    effects without appending), then call `finish`. One transaction: a refusal or a
    failure changes nothing.

    Raises RecoveryRefused when the database is not behind, or the export does not
    extend it (an entry that does not link, parts missing or not matching their
    `parts_root`, a tree that misses a checkpoint's root)."""
    with transaction.atomic():
        # The checkpointer's lock, then the append lock: neither may run meanwhile.
        _checkpoint_lock()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_KEY])
        state = ledger_export_state(fresh=True)
        if state.status != BEHIND:
            raise RecoveryRefused(
                state.message or "The database's ledger is not behind LEDGER_EXPORT: nothing to do."
            )
        first = state.database_size + 1
        last_row = LedgerEntry.objects.order_by("-seq").values_list("hash", flat=True).first()
        prev_hash = last_row or "0" * 64
        leaves = export_leaves(first, state.export_size)
        imported: list[LedgerEntry] = []
        for seq in range(first, state.export_size + 1):
            leaf = leaves.get(seq)
            if leaf is None:
                raise RecoveryRefused(f"ledger entry #{seq} is not in LEDGER_EXPORT's entries")
            fields = _decode(leaf)
            if fields.get("seq") != seq or fields.get("prev_hash") != prev_hash:
                raise RecoveryRefused(f"exported entry #{seq} does not link to the entry before it")
            digest = hashlib.sha256(leaf).hexdigest()
            imported.append(
                LedgerEntry(
                    seq=seq,
                    created_at=datetime.fromisoformat(fields["created_at"]),
                    kind=fields["kind"],
                    subject=fields["subject"],
                    actor=fields["actor"],
                    payload=fields["payload"],
                    prev_hash=prev_hash,
                    hash=digest,
                    leaf=leaf,
                    leaf_hash=leaf_hash(leaf),
                )
            )
            prev_hash = digest
        # Each entry's parts, checked against its parts_root before anything is written.
        exported_parts = export_parts(first, state.export_size)
        if LedgerEntryPart.objects.filter(seq__gte=first).exists():
            raise RecoveryRefused(
                f"the database holds parts of entries from #{first} on, which it lacks"
            )
        parts = {
            entry.seq: _checked_parts(entry, exported_parts.get(entry.seq)) for entry in imported
        }
        LedgerEntry.objects.bulk_create(imported, batch_size=2000)
        for seq, entry_parts in parts.items():
            parts_store(seq=seq, parts=entry_parts)
        tree.tree_extend(through_size=state.export_size)
        own = LedgerCheckpoint.objects.aggregate(newest=Max("tree_size"))["newest"] or 0
        recorded = 0
        for opened in _exported_checkpoints(after=own):
            if tree.tree_root(size=opened.tree_size) != opened.root_hash:
                raise RecoveryRefused(
                    f"the re-imported entries do not reach the root of exported checkpoint "
                    f"{opened.tree_size}"
                )
            LedgerCheckpoint.objects.create(
                tree_size=opened.tree_size,
                root_hash=opened.root_hash,
                note=opened.note,
                key=_key_row(opened),
                created_at=timezone.now(),
            )
            recorded += 1
        for entry in LedgerEntry.objects.filter(seq__gte=first).order_by("seq"):
            if apply is not None:
                apply(entry)
        if finish is not None:
            finish()
    ledger_export_state_forget()
    logger.warning(
        "ledger.recovered first=%d last=%d checkpoints=%d root=%s",
        first,
        state.export_size,
        recorded,
        base64.b64encode(tree.tree_root(size=state.export_size)).decode(),
    )
    return Recovery(first=first, last=state.export_size, checkpoints=recorded)
