from typing import Any

from django.db.models import QuerySet

from compliance.core.errors import NotFound
from compliance.ledger.models import LedgerEntry

from .models import Confirmation, Delivery, Subscription, SubscriptionStatus


def subscriptions_list() -> QuerySet[Subscription]:
    return Subscription.objects.exclude(status=SubscriptionStatus.DELETED).order_by("id")


def subscription_get(*, external_id: str) -> Subscription:
    subscription = subscriptions_list().filter(external_id=external_id).first()
    if subscription is None:
        raise NotFound("Webhook")
    return subscription


def deliveries_list(*, subscription: Subscription, limit: int = 100) -> QuerySet[Delivery]:
    return Delivery.objects.filter(subscription=subscription).order_by("-id")[:limit]


def deletion_request_confirmations(*, receipt: str) -> dict[str, Any]:
    """Who must confirm a finished deletion request (subscriptions that hold copies and
    were sent its `deletion_request.completed`), who did and when, who has not yet.
    `receipt` is the hash of the request's ledger entry, whose seq names the event."""
    empty: dict[str, Any] = {"required": 0, "confirmed": [], "pending": []}
    seq = LedgerEntry.objects.filter(hash=receipt).values_list("seq", flat=True).first()
    if not receipt or seq is None:
        return empty
    event_id = f"evt_{seq}"
    required = list(
        Delivery.objects.filter(event_id=event_id, subscription__holds_copies=True)
        .order_by("subscription_id")
        .values_list("subscription_id", "subscription__external_id")
    )
    confirmed = dict(
        Confirmation.objects.filter(
            event_id=event_id, subscription_id__in=[pk for pk, _ in required]
        ).values_list("subscription_id", "confirmed_at")
    )
    return {
        "required": len(required),
        "confirmed": [
            {"webhook": ext, "confirmed_at": confirmed[pk]}
            for pk, ext in required
            if pk in confirmed
        ],
        "pending": [ext for pk, ext in required if pk not in confirmed],
    }
