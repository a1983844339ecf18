"""A profile's evidence bundle: its consent events, retention choices and deletion
requests as plain fields, beside the ledger leaves that record them, their inclusion
proofs, the signed checkpoint they prove against and, from an earlier tree size, the
consistency proof; `python3 -m earshot_verify BUNDLE --key KEY` checks it offline.

Only entries whose subject is this profile are included, so a bundle shows nothing of
other profiles.
"""

from typing import Any

from compliance.accounts.models import Profile
from compliance.ledger.bundles import ledger_proof_bundle
from compliance.ledger.models import LedgerEntry

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
    bundle = ledger_proof_bundle(seqs=[row["seq"] for row in rows], since_size=since_size)
    return {
        "profile": profile.external_id,
        "consent_events": consent_events,
        "retention_choices": retention_choices,
        "deletions": deletions,
        "other_records": other,
        **bundle,
    }
