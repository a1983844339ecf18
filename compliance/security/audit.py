"""Field-level history (django-auditlog) of the models officers care about.

auditlog follows `save()` and `delete()` through signals; bulk and queryset updates
send none, so the code that makes them calls `audit_bulk_change`
(`compliance/core/audit.py`) in the same transaction. The hash-chained ledger remains
the evidence; this is the detail behind it.

Nothing personal goes into the history: no transcripts, no storage keys, no key
hashes, no second-factor secrets.
"""

from typing import Any

from auditlog.registry import auditlog
from django.apps import apps

# app_label.Model -> how auditlog registers it
AUDITED: dict[str, dict[str, Any]] = {
    "accounts.Account": {},
    "accounts.Profile": {},
    "consent.ConsentDefault": {},
    "transfers.TransferRule": {},
    "retention.RetentionPolicy": {},
    "retention.LegalHold": {},
    "clients.ServiceClient": {"exclude_fields": ["key_hash"]},
    "webhooks.Subscription": {"exclude_fields": ["secret_encrypted", "previous_secret_encrypted"]},
    # each attempt's outcome; never the body (it names profiles and recordings)
    "webhooks.Delivery": {
        "include_fields": [
            "status",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
        ]
    },
    # Who has which second factor, never its secret.
    "otp_totp.TOTPDevice": {"include_fields": ["user", "name", "confirmed"]},
    "otp_static.StaticDevice": {"include_fields": ["user", "name", "confirmed"]},
}


def audit_register() -> None:
    for label, options in AUDITED.items():
        model = apps.get_model(label)
        if not auditlog.contains(model):
            auditlog.register(model, **options)
