"""The scopes a service client may hold (docs/domain.md, "The API")."""

SCOPES: dict[str, str] = {
    "accounts:write": "register accounts and profiles",
    "consents:read": "read consent state and history",
    "consents:write": "record consent changes and retention choices",
    "recordings:read": "read recordings",
    "recordings:write": "ingest recordings",
    "eligibility:read": "ask whether recordings may be used",
    "samples:draw": "draw review samples",
    "policies:write": "manage retention policies, consent defaults and transfer rules",
    "holds:write": "place and release legal holds",
    "deletions:write": "request deletions",
    "reports:read": "read reports",
    "ledger:read": "read ledger entries, their leaves and the evidence they prove",
    "webhooks:write": "manage webhook subscriptions and replay their deliveries",
    "webhooks:confirm": "confirm, for a subscriber, that it deleted what an event named",
}
