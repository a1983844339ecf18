"""From ledger entries to webhook events.

The ledger is the outbox: every change that matters appends its entry in the
transaction of the change, under a lock held to commit, so `seq` order is commit order
and a change that rolled back left no entry. Each kind below becomes zero or more
events; an event's id comes from its entry's `seq`, so it is the same however often the
entry is read.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NewType

from compliance.core.errors import ApplicationError, field_error
from compliance.ledger.models import LedgerEntry
from compliance.ledger.parts import entry_parts

EVENT_TYPES: dict[str, str] = {
    "consent.changed": "a profile's consent for a purpose was granted or withdrawn",
    "recording.purged": "recordings were deleted (retention, a request or the user)",
    "review_item.revoked": "open review items were revoked",
    "deletion_request.completed": "a deletion request finished; `receipt` is its ledger hash",
    "retention_policy.created": "a retention policy version was created",
    "retention_policy.retired": "a retention policy was retired",
    "legal_hold.placed": "a legal hold was placed",
    "legal_hold.released": "a legal hold was released",
    "retention_choice.changed": "a profile's retention choice changed",
    "webhook.ping": "a test event asked for through the API",
}


# Sorted, each once, each a key of EVENT_TYPES or "*": made only by `event_types_parse`.
EventTypes = NewType("EventTypes", list[str])


def event_types_parse(raw: Any) -> EventTypes:
    """A subscription's `events` from a request (the API, the officers' page): a
    non-empty list of event types, or ["*"]."""
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(e, str) for e in raw)
        or len(raw) > len(EVENT_TYPES) + 1
    ):
        raise ApplicationError(
            "webhook_events_invalid",
            '`events` is a non-empty list of event types, or ["*"].',
            fields=field_error(
                "events", "invalid", 'Must be a non-empty list of event types, or ["*"].'
            ),
        )
    unknown = sorted(set(raw) - set(EVENT_TYPES) - {"*"})
    if unknown:
        raise ApplicationError(
            "webhook_events_invalid",
            f"Unknown event types: {', '.join(unknown)}.",
            fields=field_error(
                "events", "unknown", f"Each must be one of {', '.join(EVENT_TYPES)} or *."
            ),
        )
    return EventTypes(sorted(set(raw)))


_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}
_MAYBE = {"type": ["string", "null"]}


def _object(required: dict[str, dict[str, Any]], **optional: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **optional},
    }


# The JSON Schema of each event type's `data` (what receivers may rely on).
EVENT_DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "consent.changed": _object(
        {
            "profile": _TEXT,
            "purpose": _TEXT,
            "granted": {"type": "boolean"},
            "channel": _TEXT,
            "time": _TIME,
        }
    ),
    "recording.purged": _object(
        {
            "profile": _TEXT,
            "recordings": {"type": "array", "items": _TEXT, "minItems": 1},
            "reason": _TEXT,
            "time": _TIME,
        }
    ),
    "review_item.revoked": _object(
        {"profile": _MAYBE, "reason": _TEXT, "items": {"type": "integer"}, "time": _TIME},
        purpose=_MAYBE,
    ),
    "deletion_request.completed": _object(
        {
            "request": _TEXT,
            "profile": _TEXT,
            "recordings_deleted": {"type": "integer"},
            "recordings_held": {"type": "integer"},
            "receipt": _TEXT,
            "time": _TIME,
        }
    ),
    "retention_policy.created": _object(
        {
            "id": _TEXT,
            "jurisdiction": _TEXT,
            "category": _TEXT,
            "retention_days": {"type": "integer"},
            "version": {"type": "integer"},
            "time": _TIME,
        },
        applies_to=_TEXT,
        effective_from=_TEXT,
    ),
    "retention_policy.retired": _object(
        {
            "id": _TEXT,
            "jurisdiction": _TEXT,
            "category": _TEXT,
            "version": {"type": "integer"},
            "time": _TIME,
        }
    ),
    "legal_hold.placed": _object(
        {"id": _TEXT, "account": _MAYBE, "profile": _MAYBE, "case_reference": _TEXT, "time": _TIME},
        **{"from": _MAYBE, "to": _MAYBE},
    ),
    "legal_hold.released": _object(
        {"id": _TEXT, "account": _MAYBE, "profile": _MAYBE, "case_reference": _TEXT, "time": _TIME}
    ),
    "retention_choice.changed": _object(
        {"profile": _TEXT, "from": _MAYBE, "to": _TEXT, "time": _TIME}
    ),
    "webhook.ping": _object({"subscription": _TEXT}),
}


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    profile: str  # "" when the event is about no single profile
    data: dict[str, Any]


def _profile(entry: LedgerEntry) -> str:
    return entry.subject.removeprefix("profile:") if entry.subject.startswith("profile:") else ""


def _time(entry: LedgerEntry) -> str:
    return entry.created_at.isoformat()


def _consent(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    profile = _profile(entry)
    return [
        (
            profile,
            {
                "profile": profile,
                "purpose": entry.payload.get("purpose"),
                "granted": entry.kind == "consent.granted",
                "channel": entry.payload.get("channel"),
                "time": _time(entry),
            },
        )
    ]


def _purged(entry: LedgerEntry) -> list[tuple[str, str, str]]:
    """(profile, recording, reason) of each recording the batch purged: from the
    entry's per-profile parts (the payload commits to them by `parts_root` only), or
    from the payload of a batch written before there were parts."""
    if "purged_recordings" in entry.payload:
        return [(p, r, why) for p, r, why in entry.payload["purged_recordings"]]
    return [
        (part["profile"], purged["recording"], purged["reason"])
        for part in entry_parts(seq=entry.seq)
        for purged in part.get("recordings", [])
    ]


def _purge(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    # one event per profile and reason in the batch, listing its recordings
    groups: dict[tuple[str, str], list[str]] = {}
    for profile, recording, reason in _purged(entry):
        groups.setdefault((profile, reason), []).append(recording)
    return [
        (
            profile,
            {
                "profile": profile,
                "recordings": sorted(recordings),
                "reason": reason,
                "time": _time(entry),
            },
        )
        for (profile, reason), recordings in sorted(groups.items())
    ]


def _revoked(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    profile = _profile(entry)
    data = {
        "profile": profile or None,
        "purpose": entry.payload.get("purpose"),
        "reason": entry.payload.get("reason"),
        "items": entry.payload.get("items"),
        "time": _time(entry),
    }
    return [(profile, data)]


def _deletion_done(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    profile = _profile(entry)
    data = {
        "request": entry.payload.get("request"),
        "profile": profile,
        "recordings_deleted": entry.payload.get("deleted"),
        "recordings_held": entry.payload.get("held"),
        "receipt": entry.hash,
        "time": _time(entry),
    }
    return [(profile, data)]


def _plain(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    profile = _profile(entry) or entry.payload.get("profile") or ""
    if entry.kind == "retention_choice.changed":
        return [(profile, {"profile": profile, **entry.payload, "time": _time(entry)})]
    ident = entry.subject.split(":", 1)[-1]
    return [(profile, {"id": ident, **entry.payload, "time": _time(entry)})]


# Each ledger kind that is announced: the event type it becomes, and how its events'
# (profile, data) are made. The dispatcher converts an entry only when a subscription
# listens for its type (a purge batch's conversion reads its parts, one row a profile).
CONVERTERS: dict[str, tuple[str, Callable[[LedgerEntry], list[tuple[str, dict[str, Any]]]]]] = {
    "consent.granted": ("consent.changed", _consent),
    "consent.withdrawn": ("consent.changed", _consent),
    "purge.batch": ("recording.purged", _purge),
    "review_items.revoked": ("review_item.revoked", _revoked),
    "deletion_request.done": ("deletion_request.completed", _deletion_done),
    "retention_policy.created": ("retention_policy.created", _plain),
    "retention_policy.retired": ("retention_policy.retired", _plain),
    "legal_hold.placed": ("legal_hold.placed", _plain),
    "legal_hold.released": ("legal_hold.released", _plain),
    "retention_choice.changed": ("retention_choice.changed", _plain),
}


def events_from_entry(entry: LedgerEntry) -> list[Event]:
    if entry.kind not in CONVERTERS:
        return []
    event_type, converter = CONVERTERS[entry.kind]
    produced = converter(entry)
    if len(produced) == 1:
        profile, data = produced[0]
        return [Event(id=f"evt_{entry.seq}", type=event_type, profile=profile, data=data)]
    return [
        Event(id=f"evt_{entry.seq}_{n}", type=event_type, profile=profile, data=data)
        for n, (profile, data) in enumerate(produced, start=1)
    ]
