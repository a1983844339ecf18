"""Deletion receipts: a compact JWS (EdDSA, the ledger's published key, signed as
consent receipts are in compliance/consent/receipts.py) for a finished deletion
request, binding the ledger entry that records its completion (`deletion_request.done`,
its `seq` and `leaf_hash`), so receipt and log cannot disagree. A request not done yet
has no receipt (409 `deletion_not_done`).

Purge receipts (`purge_receipts` below): one per retention purge batch and profile,
binding the batch's entry and the profile's part of it."""

import base64
import json
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef

from compliance.core.errors import Conflict, NotFound
from compliance.ledger.checkpoints import ledger_checkpoint_covering, ledger_key_register
from compliance.ledger.models import LedgerEntry, LedgerEntryPart, LedgerKey
from compliance.ledger.parts import ProfilePart, profile_parts
from compliance.ledger.signing import receipt_sign, signing_key

from .models import DeletionRequest, DeletionStatus


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def deletion_done_entry(*, request: DeletionRequest) -> LedgerEntry:
    """The ledger entry that records the request's completion (written in its
    transaction, compliance/retention/deletion_requests.py)."""
    entry = (
        LedgerEntry.objects.filter(
            subject=f"profile:{request.profile.external_id}",
            kind="deletion_request.done",
            payload__request=request.public_id,
        )
        .order_by("seq")
        .first()
    )
    if entry is None:
        raise NotFound("no_ledger_entry", "No ledger entry records this deletion.")
    return entry


def deletion_receipt(
    *, request: DeletionRequest, confirmations: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The receipt for a done request: {receipt (the JWS), seq, leaf_hash, tree_size,
    confirmations}. `confirmations` are the partner systems' (compliance/webhooks:
    {required, confirmed: [{webhook, name, confirmed_at}], ...}); the receipt lists who
    confirmed and when, and how many were asked, never who has not confirmed yet."""
    if request.status != DeletionStatus.DONE:
        raise Conflict(
            "deletion_not_done",
            f"The deletion request is {request.status}; its receipt exists once it is done.",
        )
    entry = deletion_done_entry(request=request)
    checkpoint = ledger_checkpoint_covering(seq=entry.seq)
    leaf_hash = base64.b64encode(bytes(entry.leaf_hash)).decode()
    claims = {
        "iss": settings.LEDGER_ORIGIN,
        "record_id": f"deletion-request:{request.public_id}",
        "request": request.public_id,
        "pii_principal": request.profile.external_id,
        "controller": settings.LEDGER_CONTROLLER,
        "rule": {
            "profile": request.profile.external_id,
            "recorded_from": _iso(request.recorded_from),
            "recorded_to": _iso(request.recorded_to),
            "requested_by": request.requested_by,
            "requested_at": _iso(request.created_at),
        },
        "recordings_matched": request.recordings_matched,
        "recordings_deleted": request.recordings_deleted,
        "recordings_held": request.recordings_held,
        "legal_holds": len(request.holds),
        "completed_at": _iso(request.finished_at),
        "status": request.status,
        "ledger": {"seq": entry.seq, "leaf_hash": leaf_hash},
        "confirmations": _confirmations(confirmations),
    }
    ledger_key_register(key=signing_key(), use=LedgerKey.Use.RECEIPT)
    return {
        "receipt": receipt_sign(claims),
        "seq": entry.seq,
        "leaf_hash": leaf_hash,
        "tree_size": checkpoint.tree_size if checkpoint else None,
        "confirmations": claims["confirmations"],
    }


def _confirmations(confirmations: dict[str, Any] | None) -> dict[str, Any]:
    confirmations = confirmations or {"required": 0, "confirmed": []}
    return {
        "required": confirmations["required"],
        "confirmed": [
            {
                "webhook": c["webhook"],
                "name": c.get("name", ""),
                "confirmed_at": _iso(c["confirmed_at"]),
            }
            for c in confirmations["confirmed"]
        ],
    }


# The newest purge receipts a profile's listing returns (GET
# /api/v1/profiles/{id}/purge-receipts); older ones stay provable through the
# profile's evidence bundle, which holds every part.
PURGE_RECEIPTS_LIMIT = 100


def purge_receipts(
    *, profile_external_id: str, limit: int = PURGE_RECEIPTS_LIMIT
) -> list[dict[str, Any]]:
    """A receipt for each retention purge batch that deleted recordings of the profile,
    newest first (at most `limit`): [{seq, purged_at, recordings, receipt}].

    A purge batch covers many profiles; its entry commits to each profile's part
    (compliance/ledger/parts.py). The receipt carries the entry's leaf and this
    profile's part with its audit path to the leaf's `parts_root`, so that
    `earshot_verify receipt` proves offline what was deleted, when and why, and the
    receipt shows no other profile's recordings."""
    seqs = list(
        LedgerEntryPart.objects.filter(profile=profile_external_id)
        .filter(Exists(LedgerEntry.objects.filter(seq=OuterRef("seq"), kind="purge.batch")))
        .order_by("-seq")
        .values_list("seq", flat=True)[:limit]
    )
    if not seqs:
        return []
    parts = profile_parts(profile=profile_external_id, seqs=seqs)
    entries = {e.seq: e for e in LedgerEntry.objects.filter(seq__in=seqs)}
    ledger_key_register(key=signing_key(), use=LedgerKey.Use.RECEIPT)
    return [
        _purge_receipt(profile=profile_external_id, entry=entries[seq], part=parts[seq])
        for seq in seqs
    ]


def _purge_receipt(*, profile: str, entry: LedgerEntry, part: ProfilePart) -> dict[str, Any]:
    leaf = bytes(entry.leaf)
    recorded = json.loads(leaf)
    recordings = part.body.get("recordings", [])
    claims = {
        "iss": settings.LEDGER_ORIGIN,
        "record_id": f"purge:{entry.seq}:{profile}",
        "pii_principal": profile,
        "controller": settings.LEDGER_CONTROLLER,
        "rule": {
            "reasons": sorted({r["reason"] for r in recordings}),
            "policies": recorded.get("payload", {}).get("policies", []),
        },
        "recordings": recordings,
        "purged_at": recorded.get("created_at"),
        "ledger": {
            "seq": entry.seq,
            "leaf_hash": base64.b64encode(bytes(entry.leaf_hash)).decode(),
            "leaf": base64.b64encode(leaf).decode(),
            "part": {
                "index": part.index,
                "count": part.count,
                "part": base64.b64encode(part.part).decode(),
                "inclusion": [base64.b64encode(h).decode() for h in part.path],
            },
        },
    }
    return {
        "seq": entry.seq,
        "purged_at": claims["purged_at"],
        "recordings": [r["recording"] for r in recordings],
        "receipt": receipt_sign(claims),
    }
