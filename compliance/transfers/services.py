from typing import Any

from django.db import IntegrityError, transaction

from compliance.core.countries import is_country
from compliance.core.errors import ApplicationError, Conflict
from compliance.ledger.services import ledger_append

from .models import TransferRule


def _country(value: Any, field: str) -> str:
    if not isinstance(value, str) or not is_country(value):
        raise ApplicationError(
            "unknown_jurisdiction" if field == "jurisdiction" else "unknown_location",
            f"{value!r} is not an ISO 3166-1 alpha-2 country code.",
            fields={field: ["unknown"]},
        )
    return value


@transaction.atomic
def transfer_rule_create(*, jurisdiction: str, reviewer_location: str, actor: str) -> TransferRule:
    _country(jurisdiction, "jurisdiction")
    _country(reviewer_location, "reviewer_location")
    try:
        with transaction.atomic():
            rule = TransferRule.objects.create(
                jurisdiction=jurisdiction, reviewer_location=reviewer_location, created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            "duplicate", f"A rule {jurisdiction} -> {reviewer_location} exists."
        ) from None
    ledger_append(
        kind="transfer_rule.created",
        subject=f"transfer_rule:{rule.pk}",
        actor=actor,
        payload={"jurisdiction": jurisdiction, "reviewer_location": reviewer_location},
    )
    return rule


@transaction.atomic
def transfer_rule_delete(*, rule: TransferRule, actor: str) -> None:
    ledger_append(
        kind="transfer_rule.deleted",
        subject=f"transfer_rule:{rule.pk}",
        actor=actor,
        payload={"jurisdiction": rule.jurisdiction, "reviewer_location": rule.reviewer_location},
    )
    rule.delete()
