from django.db.models import QuerySet

from compliance.core.errors import NotFound

from .models import TransferRule


def transfer_rules_list() -> QuerySet[TransferRule]:
    return TransferRule.objects.order_by("jurisdiction", "reviewer_location")


def transfer_rule_get(*, pk: int) -> TransferRule:
    rule = TransferRule.objects.filter(pk=pk).first()
    if rule is None:
        raise NotFound("Transfer rule")
    return rule
