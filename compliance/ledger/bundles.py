"""Proof bundles: ledger entries with their leaves and inclusion proofs, the signed
checkpoint they prove against, and optionally the consistency proof from an earlier
tree size; what `python3 -m earshot_verify BUNDLE --key KEY` checks offline."""

import base64
from collections.abc import Iterable
from typing import Any

from compliance.core.errors import ApplicationError, Unavailable, field_error

from . import tree
from .checkpoints import ledger_checkpoint_covering
from .models import LedgerCheckpoint, LedgerEntry


def _b64(raw: bytes | memoryview) -> str:
    return base64.b64encode(bytes(raw)).decode()


def ledger_proof_bundle(
    *, seqs: Iterable[int], since_size: int | None = None, records: dict[int, Any] | None = None
) -> dict[str, Any]:
    """The bundle for entries `seqs` (a checkpoint is signed now if one does not cover
    them yet). `records` are the plain fields shown beside each leaf, by seq."""
    wanted = sorted(set(seqs))
    checkpoint = (
        ledger_checkpoint_covering(seq=wanted[-1])
        if wanted
        else LedgerCheckpoint.objects.order_by("-tree_size").first()
    )
    if checkpoint is None or (wanted and checkpoint.tree_size < wanted[-1]):
        raise Unavailable(
            "checkpoint_pending",
            "No signed checkpoint covers these entries yet; try again in a second.",
        )
    size = checkpoint.tree_size
    entries = LedgerEntry.objects.filter(seq__in=wanted).order_by("seq")
    bundle: dict[str, Any] = {
        "checkpoint": checkpoint.note,
        "entries": [
            {
                "seq": entry.seq,
                "leaf": _b64(entry.leaf),
                "leaf_hash": _b64(entry.leaf_hash),
                "inclusion": [
                    _b64(h) for h in tree.tree_inclusion_proof(index=entry.seq - 1, size=size)
                ],
                **({"record": records[entry.seq]} if records and entry.seq in records else {}),
            }
            for entry in entries
        ],
    }
    if since_size is not None:
        if not 0 <= since_size <= size:
            raise ApplicationError(
                "out_of_range",
                "since_size is larger than the bundle's checkpoint.",
                fields=field_error(
                    "since_size", "out_of_range", "Must not exceed the checkpoint's tree size."
                ),
            )
        bundle["consistency"] = {
            "from": since_size,
            "to": size,
            "hashes": [_b64(h) for h in tree.tree_consistency_proof(first=since_size, second=size)],
        }
    return bundle
