"""Signed checkpoints of the ledger's Merkle tree, and their publication outside the
database.

A checkpoint is a C2SP tlog-checkpoint (`<origin>\\n<tree size>\\n<base64 root>\\n`)
inside a signed note. The checkpointer extends the tree to the newest committed entry,
proves the new tree consistent with the previous checkpoint (RFC 9162) and only then
signs: a tree that does not extend what was signed before (a rewritten, reordered or
removed entry) is refused, loudly, and never signed. It runs from beat every minute
while the log grows, and on demand, at most once a second, for an entry not yet
covered.

Every checkpoint and the leaves it adds go to LEDGER_EXPORT (a directory or an S3
prefix, `export.py`) as files that are created once and never rewritten (an existing
file must hold the same bytes). They are written before the checkpoint's row commits, so a
stored checkpoint is always published; a file for a checkpoint whose transaction then
failed holds the same bytes the retry writes (Ed25519 signatures are deterministic).

Locks: the checkpointer's own advisory lock only. It reads committed entries without
the append lock (appends are serialised, so committed entries are a prefix of `seq`)
and writes only tree nodes, keys and checkpoints, which nothing else locks.
"""

import base64
import hashlib
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from compliance.core.errors import Unavailable
from earshot_verify.merkle import ProofError, hash_children, hash_leaf, verify_consistency
from earshot_verify.note import Checkpoint, NoteError, Verifier, key_hash, open_checkpoint

from . import tree
from .export import ExportConflict, export_store
from .models import LedgerCheckpoint, LedgerEntry, LedgerEntryPart, LedgerKey
from .signing import SigningKey, signing_key

logger = logging.getLogger(__name__)

_CHECKPOINT_LOCK_KEY = 0x4541_5253_484F_56
ON_DEMAND_INTERVAL = timedelta(seconds=1)


class CheckpointRefused(Exception):
    """The tree does not extend the last signed checkpoint: the ledger was rewritten."""


def checkpoint_text(*, origin: str, tree_size: int, root: bytes) -> str:
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n"


def ledger_key_register(*, key: SigningKey, use: str) -> LedgerKey:
    """The published row of `key`, created when it is first used; the keys used before
    for the same purpose are marked retired (and stay published)."""
    now = timezone.now()
    row, created = LedgerKey.objects.get_or_create(
        use=use,
        public_key=key.public_key,
        defaults={"name": key.name, "key_hash": f"{key.key_hash:08x}", "created_at": now},
    )
    if created:
        LedgerKey.objects.filter(use=use, retired_at__isnull=True).exclude(pk=row.pk).update(
            retired_at=now
        )
    elif row.retired_at is not None:
        LedgerKey.objects.filter(pk=row.pk).update(retired_at=None)
        LedgerKey.objects.filter(use=use, retired_at__isnull=True).exclude(pk=row.pk).update(
            retired_at=now
        )
    return row


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHECKPOINT_LOCK_KEY])


def ledger_checkpoint_issue(*, min_interval: timedelta | None = None) -> LedgerCheckpoint | None:
    """Sign a checkpoint of every committed entry, unless the last one covers them all
    already or was signed less than `min_interval` ago; returns the latest checkpoint
    (None while the ledger is empty). Raises CheckpointRefused, signing nothing, when
    the tree is inconsistent with the last checkpoint."""
    with transaction.atomic():
        _lock()
        previous = LedgerCheckpoint.objects.order_by("-tree_size").first()
        if (
            previous is not None
            and min_interval is not None
            and previous.created_at > timezone.now() - min_interval
        ):
            return previous
        newest = LedgerEntry.objects.aggregate(newest=Max("seq"))["newest"] or 0
        if newest == 0 or (previous is not None and newest <= previous.tree_size):
            return previous
        try:
            size = tree.tree_extend(through_size=newest)
        except tree.TreeError as exc:
            logger.error("ledger.checkpoint_refused reason=%s", exc)
            raise CheckpointRefused(str(exc)) from exc
        root = tree.tree_root(size=size)
        if previous is not None:
            _check_consistent(previous, size, root)
        key = signing_key()
        text = checkpoint_text(origin=settings.LEDGER_ORIGIN, tree_size=size, root=root)
        note = key.sign_note(text)
        first = previous.tree_size + 1 if previous is not None else 1
        _export_entries(first, size)
        _export_parts(first, size)
        _export_file(Path("checkpoints") / f"{size:020d}", note.encode())
        checkpoint = LedgerCheckpoint.objects.create(
            tree_size=size,
            root_hash=root,
            note=note,
            key=ledger_key_register(key=key, use=LedgerKey.Use.CHECKPOINT),
            created_at=timezone.now(),
        )
    logger.info("ledger.checkpoint size=%d root=%s", size, base64.b64encode(root).decode())
    return checkpoint


def _check_consistent(previous: LedgerCheckpoint, size: int, root: bytes) -> None:
    proof = tree.tree_consistency_proof(first=previous.tree_size, second=size)
    try:
        verify_consistency(
            first_size=previous.tree_size,
            second_size=size,
            proof=proof,
            first_root=bytes(previous.root_hash),
            second_root=root,
        )
    except ProofError as exc:
        logger.error(
            "ledger.checkpoint_refused previous_size=%d size=%d reason=%s",
            previous.tree_size,
            size,
            exc,
        )
        raise CheckpointRefused(
            f"the tree of {size} entries is not consistent with checkpoint "
            f"{previous.tree_size}: {exc}"
        ) from exc


def ledger_checkpoint_covering(*, seq: int, wait_seconds: float = 2.0) -> LedgerCheckpoint | None:
    """The latest checkpoint, signed now if it does not cover entry `seq` yet (at most
    one on-demand checkpoint a second, so callers may wait up to about a second).
    None if `seq` is not a committed entry."""
    deadline = time.monotonic() + wait_seconds
    while True:
        latest = LedgerCheckpoint.objects.order_by("-tree_size").first()
        if latest is not None and latest.tree_size >= seq:
            return latest
        if not LedgerEntry.objects.filter(seq=seq).exists():
            return None
        try:
            latest = ledger_checkpoint_issue(min_interval=ON_DEMAND_INTERVAL)
        except (CheckpointRefused, ExportConflict) as exc:
            # The database's log contradicts what was signed or published before (a
            # rewrite, or a restore from an older backup): nothing new may be signed
            # until an operator reconciles the two, so the caller is told so.
            logger.error("ledger.checkpoint_unavailable reason=%s", exc)
            raise Unavailable(
                "ledger_inconsistent",
                "The ledger disagrees with its published checkpoints; no new proof can "
                "be signed until an operator reconciles them.",
            ) from exc
        if latest is not None and latest.tree_size >= seq:
            return latest
        if time.monotonic() >= deadline:
            return latest
        time.sleep(0.1)


# --- publication ---------------------------------------------------------------------------


def _export_file(relative: Path, content: bytes) -> None:
    export_store().write_once(relative.as_posix(), content)


def export_names(folder: str, *, after: str | None = None) -> list[str]:
    """The names of the published files in `folder` (`checkpoints`, `entries`), sorted
    (the names are zero-padded numbers, so this is their order); `after`: only those
    that sort after it."""
    return export_store().names(folder, after=after)


def export_read(relative: str) -> bytes | None:
    """A published file's bytes; None if there is none."""
    return export_store().read(relative)


EXPORT_CHUNK = 10000


def _export_entries(first: int, last: int) -> None:
    """Leaves `first`..`last` as files `entries/<first>-<last>`, one line per entry:
    `<seq> <base64 leaf>`."""
    start = first
    while start <= last:
        end = min(last, start + EXPORT_CHUNK - 1)
        rows = LedgerEntry.objects.filter(seq__gte=start, seq__lte=end).order_by("seq")
        lines = [
            f"{seq} {base64.b64encode(bytes(leaf)).decode()}\n"
            for seq, leaf in rows.values_list("seq", "leaf")
        ]
        _export_file(Path("entries") / f"{start:020d}-{end:020d}", "".join(lines).encode())
        start = end + 1


def export_leaves(first: int, last: int) -> dict[int, bytes]:
    """The published leaves `first`..`last` (those there are), by `seq`; the files
    outside the range are not read."""
    leaves: dict[int, bytes] = {}
    if last < first:
        return leaves
    for name in export_names("entries"):
        low, _, high = name.partition("-")
        if not (low.isdigit() and high.isdigit()) or int(high) < first or int(low) > last:
            continue
        content = export_read(f"entries/{name}") or b""
        for line in content.decode().splitlines():
            seq_text, _, encoded = line.partition(" ")
            if seq_text.isdigit() and first <= int(seq_text) <= last:
                leaves.setdefault(int(seq_text), base64.b64decode(encoded))
    return leaves


def _export_parts(first: int, last: int) -> None:
    """The per-profile parts of entries `first`..`last` (compliance/ledger/parts.py) as
    files `parts/<first>-<last>`, one line per part: `<seq> <index> <base64 part>`; a
    range without parts has no file. The entries' `parts_root` commits to them, so a
    restore can re-import them as it re-imports the leaves."""
    start = first
    while start <= last:
        end = min(last, start + EXPORT_CHUNK - 1)
        rows = LedgerEntryPart.objects.filter(seq__gte=start, seq__lte=end).order_by("seq", "index")
        lines = [
            f"{seq} {index} {base64.b64encode(bytes(part)).decode()}\n"
            for seq, index, part in rows.values_list("seq", "index", "part")
        ]
        if lines:
            _export_file(Path("parts") / f"{start:020d}-{end:020d}", "".join(lines).encode())
        start = end + 1


def export_parts(first: int, last: int) -> dict[int, dict[int, bytes]]:
    """The published parts of entries `first`..`last` (those there are), by `seq` and
    index; the files outside the range are not read, and a line that is not
    `<seq> <index> <base64>` is left out (the entry's `parts_root` then finds the part
    missing)."""
    parts: dict[int, dict[int, bytes]] = {}
    if last < first:
        return parts
    for name in export_names("parts"):
        low, _, high = name.partition("-")
        if not (low.isdigit() and high.isdigit()) or int(high) < first or int(low) > last:
            continue
        content = export_read(f"parts/{name}") or b""
        for line in content.decode().splitlines():
            seq_text, index_text, encoded = [*line.split(" "), "", ""][:3]
            if not (seq_text.isdigit() and index_text.isdigit()):
                continue
            if not first <= int(seq_text) <= last:
                continue
            try:
                part = base64.b64decode(encoded, validate=True)
            except ValueError:
                continue
            parts.setdefault(int(seq_text), {}).setdefault(int(index_text), part)
    return parts


def ledger_export_checkpoints() -> list[str]:
    """The exported checkpoint notes, oldest first."""
    return [
        (export_read(f"checkpoints/{name}") or b"").decode()
        for name in export_names("checkpoints")
        if name.isdigit()
    ]


# --- holding the database against what was published ----------------------------------------


def _published_verifiers() -> list[Verifier]:
    current = signing_key()
    keys = {(current.name, current.public_key)}
    for name, public_key in LedgerKey.objects.filter(use=LedgerKey.Use.CHECKPOINT).values_list(
        "name", "public_key"
    ):
        keys.add((name, bytes(public_key)))
    return [Verifier(name, key_hash(name, key), key) for name, key in keys]


def _newest_exported() -> tuple[Checkpoint, str] | None:
    """The newest exported checkpoint that a published key signed, with its file name;
    an exported file no key opens is skipped (and logged): it proves nothing."""
    verifiers = _published_verifiers()
    for name in reversed([name for name in export_names("checkpoints") if name.isdigit()]):
        note = (export_read(f"checkpoints/{name}") or b"").decode()
        for verifier in verifiers:
            try:
                return open_checkpoint(note, verifier), name
            except NoteError:
                continue
        logger.error("ledger.export_unverifiable file=checkpoints/%s", name)
    return None


def _exported_leaves(upto: int) -> dict[int, bytes]:
    return export_leaves(1, upto)


def _leaves_upto(size: int, chunk: int) -> Iterator[tuple[int, bytes, bytes, str]]:
    """(seq, leaf, leaf_hash, hash) of the entries up to `size`, in `seq` order."""
    rows = LedgerEntry.objects.filter(seq__lte=size).order_by("seq")
    if connection.vendor != "postgresql":
        for seq, leaf, stored, hash_ in rows.values_list("seq", "leaf", "leaf_hash", "hash"):
            yield seq, bytes(leaf), bytes(stored), hash_
        return
    # A server-side cursor read straight from psycopg: the ORM's per-row conversion
    # costs more than the hashing this pass exists for.
    with transaction.atomic(), connection.cursor() as outer:
        cursor = outer.connection.cursor(name="ledger_leaves")
        cursor.itersize = chunk
        cursor.execute(
            "SELECT seq, leaf, leaf_hash, hash FROM ledger_ledgerentry WHERE seq <= %s"
            " ORDER BY seq",
            [size],
        )
        try:
            for seq, leaf, stored, hash_ in cursor:
                yield seq, bytes(leaf), bytes(stored), hash_
        finally:
            cursor.close()


def ledger_checkpoint_problem(*, chunk: int = 5000) -> tuple[int, str] | None:
    """Rebuild the tree from the stored leaves and hold it against the newest exported
    checkpoint: (the entry, what is wrong) if the database contradicts it, else None.

    Each stored leaf must be what its chain hash commits to. Fewer entries than the
    checkpoint signed is a truncation (or a restore from an older backup); a different
    root over its first entries is a rewrite or a reorder, and the exported leaves name
    the first entry that differs.
    """
    exported = _newest_exported()
    if exported is None:
        return None
    checkpoint, _ = exported
    size = checkpoint.tree_size
    name = f"signed checkpoint {size} ({checkpoint.origin})"
    stack: list[tuple[int, bytes]] = []
    count = 0
    for seq, leaf, stored_leaf_hash, hash_ in _leaves_upto(size, chunk):
        if seq != count + 1:
            return count + 1, f"missing (removed); contradicts {name}"
        node = hash_leaf(leaf)
        if hashlib.sha256(leaf).hexdigest() != hash_ or stored_leaf_hash != node:
            return seq, f"stored leaf does not match its hash (edited); contradicts {name}"
        width = 1
        while stack and stack[-1][0] == width:
            node, width = hash_children(stack.pop()[1], node), width * 2
        stack.append((width, node))
        count = seq
    if count < size:
        return count + 1, (
            f"missing: the ledger holds {count} entries but {name} covers {size} (shortened, "
            "or restored from an older backup)"
        )
    root = stack[-1][1]
    for _, node in reversed(stack[:-1]):
        root = hash_children(node, root)
    if root == checkpoint.root_hash:
        return None
    published = _exported_leaves(size)
    for seq, leaf, _, _ in _leaves_upto(size, chunk):
        if published.get(seq) != leaf:
            return (
                seq,
                f"differs from the published entry (rewritten or reordered); contradicts {name}",
            )
    return size, f"the tree of its first {size} entries does not match {name}"
