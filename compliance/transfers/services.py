from django.db import IntegrityError, transaction

from compliance.core.countries import require_country
from compliance.core.errors import Conflict
from compliance.ledger.services import ledger_append

from .models import TransferRule


@transaction.atomic
def transfer_rule_create(*, jurisdiction: str, reviewer_location: str, actor: str) -> TransferRule:
    require_country(jurisdiction, field="jurisdiction", code="unknown_jurisdiction")
    require_country(reviewer_location, field="reviewer_location", code="unknown_location")
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
