"""Consent receipts: a compact JWS (EdDSA, the ledger's published key) for a consent
event, shaped after ISO/IEC TS 27560, that binds the ledger entry recording the event
(its `seq` and `leaf_hash`), so receipt and log cannot disagree. A checkpoint covering
the entry is signed first if none does, so the receipt is provable at once."""

import base64
from typing import Any

from django.conf import settings

from compliance.accounts.models import Profile
from compliance.core.errors import NotFound
from compliance.ledger.checkpoints import ledger_checkpoint_covering, ledger_key_register
from compliance.ledger.models import LedgerEntry, LedgerKey
from compliance.ledger.signing import receipt_sign, signing_key
from compliance.transfers.models import TransferRule

from .models import ConsentEvent, Purpose
from .selectors import consent_current_for

_PROCESSING: dict[str, str] = {
    Purpose.HUMAN_REVIEW: "human review",
    Purpose.MODEL_TRAINING: "model training",
}


def consent_event_entry(*, event: ConsentEvent) -> LedgerEntry:
    """The ledger entry that records `event` (written in its transaction)."""
    entry = (
        LedgerEntry.objects.filter(
            subject=f"profile:{event.profile.external_id}",
            kind__in=["consent.granted", "consent.withdrawn"],
            payload__event=event.pk,
        )
        .order_by("seq")
        .first()
    )
    if entry is None:
        raise NotFound("no_ledger_entry", "No ledger entry records this consent event.")
    return entry


def _recipients(profile: Profile, purpose: str) -> list[str]:
    if purpose != Purpose.HUMAN_REVIEW:
        return []
    jurisdiction = profile.account.jurisdiction
    allowed = set(
        TransferRule.objects.filter(jurisdiction=jurisdiction).values_list(
            "reviewer_location", flat=True
        )
    )
    return sorted(allowed | {jurisdiction})


def consent_receipt(*, event: ConsentEvent) -> dict[str, Any]:
    """The receipt for `event`: {receipt (the JWS), seq, leaf_hash, tree_size}."""
    entry = consent_event_entry(event=event)
    checkpoint = ledger_checkpoint_covering(seq=entry.seq)
    profile = event.profile
    leaf_hash = base64.b64encode(bytes(entry.leaf_hash)).decode()
    claims = {
        "iss": settings.LEDGER_ORIGIN,
        "record_id": f"consent-event:{event.pk}",
        "pii_principal": profile.external_id,
        "controller": settings.LEDGER_CONTROLLER,
        "jurisdiction": profile.account.jurisdiction,
        "purposes": [event.purpose],
        "processing": [_PROCESSING.get(event.purpose, event.purpose)],
        "pii_categories": ["voice recordings", "transcripts"],
        "recipients": _recipients(profile, event.purpose),
        "retention": profile.retention_choice or "policy",
        "legal_basis": "consent",
        "notice_version": event.notice_version,
        "event": "given" if event.granted else "withdrawn",
        "granted": event.granted,
        "method": event.channel,
        "time": event.created_at.isoformat(),
        "source": "explicit",
        "ledger": {"seq": entry.seq, "leaf_hash": leaf_hash},
    }
    ledger_key_register(key=signing_key(), use=LedgerKey.Use.RECEIPT)
    return {
        "receipt": receipt_sign(claims),
        "seq": entry.seq,
        "leaf_hash": leaf_hash,
        "tree_size": checkpoint.tree_size if checkpoint else None,
    }


def consent_receipt_latest(*, profile: Profile, purpose: str) -> dict[str, Any]:
    """The receipt of the event behind the current state. A state that comes from the
    jurisdiction's default has no event: the person gave nothing, and no receipt says
    they did."""
    current = consent_current_for(profile=profile, purpose=purpose)
    event = (
        ConsentEvent.objects.filter(profile=profile, purpose=purpose)
        .order_by("-created_at", "-id")
        .first()
    )
    if current.source != "explicit" or event is None:
        where = (
            "the jurisdiction's default"
            if current.source == "default"
            else "no choice and no default: not granted"
        )
        raise NotFound(
            "no_consent_event",
            f"No consent event for {purpose}: the current state comes from {where},"
            " not from anything this person gave.",
        )
    return consent_receipt(event=event)
