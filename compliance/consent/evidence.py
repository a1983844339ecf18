"""A profile's evidence bundle: its consent events, retention choices, deletion
requests, purges and reviews as plain fields, beside the ledger leaves that record
them, their inclusion proofs, the signed checkpoint they prove against and, from an
earlier tree size, the consistency proof; `python3 -m earshot_verify BUNDLE --key KEY`
checks it offline.

A bundle shows nothing of other profiles. It holds the entries whose subject is this
profile; the entries that cover many profiles (purge batches, sample draws) with this
profile's part only, proven against the entry's `parts_root` (compliance/ledger/
parts.py); and the clip accesses of the profile's review items, whose entries name
the item only.
"""

from typing import Any

from compliance.accounts.models import Profile
from compliance.ledger.bundles import ledger_proof_bundle
from compliance.ledger.models import LedgerEntry
from compliance.ledger.parts import profile_parts

_CONSENT_KINDS = {"consent.granted": True, "consent.withdrawn": False}


def profile_evidence(*, profile: Profile, since_size: int | None = None) -> dict[str, Any]:
    rows = list(
        LedgerEntry.objects.filter(subject=f"profile:{profile.external_id}")
        .order_by("seq")
        .values("seq", "kind", "payload", "created_at")
    )
    consent_events, retention_choices, deletions, other = [], [], [], []
    for row in rows:
        time = row["created_at"].isoformat()
        if row["kind"] in _CONSENT_KINDS:
            payload = row["payload"]
            consent_events.append(
                {
                    "seq": row["seq"],
                    "purpose": payload.get("purpose"),
                    "granted": _CONSENT_KINDS[row["kind"]],
                    "channel": payload.get("channel"),
                    "notice_version": payload.get("notice_version"),
                    "time": time,
                }
            )
            continue
        record = {"seq": row["seq"], "kind": row["kind"], "time": time, "payload": row["payload"]}
        if row["kind"].startswith("retention_choice."):
            retention_choices.append(record)
        elif row["kind"].startswith("deletion_request."):
            deletions.append(record)
        else:
            other.append(record)
    parts = profile_parts(profile=profile.external_id)
    shared = {
        row["seq"]: row
        for row in LedgerEntry.objects.filter(seq__in=list(parts)).values(
            "seq", "kind", "payload", "created_at"
        )
    }
    purges, reviews = [], []
    for seq, part in sorted(parts.items()):
        entry = shared[seq]
        time = entry["created_at"].isoformat()
        if entry["kind"] == "purge.batch":
            purges.append({"seq": seq, "time": time, "recordings": part.body["recordings"]})
        elif entry["kind"] == "sample.drawn":
            reviews += [
                {
                    "review_item": item["review_item"],
                    "recording": item["recording"],
                    "purpose": entry["payload"].get("purpose"),
                    "reviewer_location": entry["payload"].get("reviewer_location"),
                    "delivered_at": time,
                    "seq": seq,
                    "clip_fetched_at": None,
                    "clip_access_seq": None,
                }
                for item in part.body["items"]
            ]
    accessed = _first_clip_accesses([review["review_item"] for review in reviews])
    for review in reviews:
        access = accessed.get(review["review_item"])
        if access is not None:
            review["clip_access_seq"], review["clip_fetched_at"] = access
    seqs = [row["seq"] for row in rows] + list(parts)
    seqs += [seq for seq, _ in accessed.values()]
    bundle = ledger_proof_bundle(seqs=seqs, since_size=since_size, parts=parts)
    return {
        "profile": profile.external_id,
        "consent_events": consent_events,
        "retention_choices": retention_choices,
        "deletions": deletions,
        "purges": purges,
        "reviews": reviews,
        "other_records": other,
        **bundle,
    }


def _first_clip_accesses(item_ids: list[str]) -> dict[str, tuple[int, str]]:
    """The first allowed audio fetch the ledger recorded for each item: (seq, time)."""
    found: dict[str, tuple[int, str]] = {}
    if not item_ids:
        return found
    entries = (
        LedgerEntry.objects.filter(
            kind="review_item.accessed", subject__in=[f"review_item:{i}" for i in item_ids]
        )
        .order_by("seq")
        .values_list("subject", "seq", "created_at", "payload")
    )
    for subject, seq, created_at, payload in entries:
        item = subject.removeprefix("review_item:")
        if payload.get("action") == "audio" and item not in found:
            found[item] = (seq, created_at.isoformat())
    return found
