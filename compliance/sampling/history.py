"""Who heard what, when, from where: the reviews of one profile's recordings.

The ledger records a draw (`sample.drawn`: its payload the scope and counts; each
profile's items and recordings in that profile's part of the entry, committed to by
`parts_root`, compliance/ledger/parts.py) and each clip access (`review_item.accessed`,
subject `review_item:<id>`, no recording or profile: a reviewer must not be able to
link an item to a profile). The items are listed from the review items table (which
knows their state); when each was handed out is the time of the draw entry whose part
names it (the item's own time for draws recorded before there were parts), and when
its clip was first fetched, that of its first access entry: both what the profile's
evidence bundle proves. Only for the owner or an officer (the API authorises).
"""

import json
from datetime import datetime
from typing import Any

from compliance.accounts.models import Profile
from compliance.ledger.models import LedgerEntry, LedgerEntryPart

from .models import ReviewItem

REVIEWS_DEFAULT_LIMIT = 100
REVIEWS_MAX_LIMIT = 1_000
_SUBJECT = "review_item:"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def profile_reviews(
    *, profile: Profile, limit: int = REVIEWS_DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """The profile's review items, newest hand-out first, each with the first clip
    access the ledger recorded for it (its time and `seq`), or none if never heard."""
    items = list(
        ReviewItem.objects.filter(recording__profile=profile)
        .order_by("-created_at", "-id")
        .values("id", "recording__external_id", "reviewer_location", "purpose", "state",
                "created_at")[:limit]
    )  # fmt: skip
    fetched: dict[str, tuple[datetime, int]] = {}
    if items:
        entries = (
            LedgerEntry.objects.filter(
                kind="review_item.accessed",
                subject__in=[f"{_SUBJECT}{item['id']}" for item in items],
            )
            .order_by("seq")
            .values_list("subject", "created_at", "seq", "payload")
        )
        for subject, created_at, seq, payload in entries:
            item_id = subject[len(_SUBJECT) :]
            if payload.get("action") == "audio" and item_id not in fetched:
                fetched[item_id] = (created_at, seq)
    drawn = _drawn_at(profile.external_id) if items else {}
    rows = []
    for item in items:
        access = fetched.get(item["id"])
        rows.append(
            {
                "review_item": item["id"],
                "recording": item["recording__external_id"],
                "purpose": item["purpose"],
                "reviewer_location": item["reviewer_location"],
                "state": item["state"],
                "delivered_at": _iso(drawn.get(item["id"], item["created_at"])),
                "clip_fetched_at": _iso(access[0]) if access else None,
                "clip_access_seq": access[1] if access else None,
            }
        )
    return rows


def _drawn_at(profile: str) -> dict[str, datetime]:
    """When each of the profile's items was handed out, as the ledger records it: the
    time of the draw entry whose part for this profile names the item."""
    parts = list(LedgerEntryPart.objects.filter(profile=profile).values_list("seq", "part"))
    if not parts:
        return {}
    draws = dict(
        LedgerEntry.objects.filter(
            seq__in=[seq for seq, _ in parts], kind="sample.drawn"
        ).values_list("seq", "created_at")
    )
    found: dict[str, datetime] = {}
    for seq, part in parts:
        if seq in draws:
            for item in json.loads(bytes(part)).get("items", []):
                found[item["review_item"]] = draws[seq]
    return found
