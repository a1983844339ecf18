"""Field-level history (django-auditlog) of the models officers care about.

auditlog follows `save()` and `delete()` through signals; bulk and queryset updates
send none (its #203, #515, #537), so the code that makes them calls
`audit_bulk_change` in the same transaction. The hash-chained ledger remains the
evidence; this is the detail behind it.

Nothing personal goes into the history: no transcripts, no storage keys, no key
hashes, no second-factor secrets.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from auditlog.cid import get_cid
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.encoding import smart_str

# app_label.Model -> how auditlog registers it
AUDITED: dict[str, dict[str, Any]] = {
    "accounts.Account": {},
    "accounts.Profile": {},
    "consent.ConsentDefault": {},
    "transfers.TransferRule": {},
    "retention.RetentionPolicy": {},
    "retention.LegalHold": {},
    "clients.ServiceClient": {"exclude_fields": ["key_hash"]},
    # Who has which second factor, never its secret.
    "otp_totp.TOTPDevice": {"include_fields": ["user", "name", "confirmed"]},
    "otp_static.StaticDevice": {"include_fields": ["user", "name", "confirmed"]},
}

BULK_BATCH = 1000


def audit_register() -> None:
    for label, options in AUDITED.items():
        model = apps.get_model(label)
        if not auditlog.contains(model):
            auditlog.register(model, **options)


def _as_text(value: Any) -> str:
    """A value as auditlog writes it in `changes` (its default, text form)."""
    return "None" if value is None else smart_str(value)


def audit_bulk_change(
    *,
    model: type[models.Model],
    pks: Iterable[Any],
    changes: Mapping[str, tuple[Any, Any] | list[Any]],
    actor: str,
    reprs: Mapping[Any, str] | None = None,
) -> int:
    """Write one auditlog UPDATE entry per object that a bulk update changed.

    `changes` is {field: (old, new)}, the same for every object (what a queryset
    `update()` does); run it in the transaction of the update, so the history and the
    change commit together. `actor` is the service or person, as the ledger names it.
    Returns the number of entries written.
    """
    pks = list(pks)
    if not pks:
        return 0
    content_type = ContentType.objects.get_for_model(model)
    payload = {name: [_as_text(old), _as_text(new)] for name, (old, new) in changes.items()}
    cid = get_cid()
    name = model._meta.verbose_name
    entries = [
        LogEntry(
            content_type=content_type,
            object_pk=str(pk),
            object_id=pk if isinstance(pk, int) else None,
            object_repr=(reprs or {}).get(pk) or f"{name} {pk}",
            action=LogEntry.Action.UPDATE,
            changes=payload,
            changes_text="",
            cid=cid,
            additional_data={"actor": actor, "bulk": True},
        )
        for pk in pks
    ]
    LogEntry.objects.bulk_create(entries, batch_size=BULK_BATCH)
    return len(entries)
