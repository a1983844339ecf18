from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from compliance.core.errors import NotFound
from compliance.ledger.models import LedgerEntry

from .models import Confirmation, Delivery, DeliveryStatus, Subscription, SubscriptionStatus


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
    names = dict(
        Subscription.objects.filter(pk__in=[pk for pk, _ in required]).values_list(
            "pk", "description"
        )
    )
    confirmed = dict(
        Confirmation.objects.filter(
            event_id=event_id, subscription_id__in=[pk for pk, _ in required]
        ).values_list("subscription_id", "confirmed_at")
    )
    return {
        "required": len(required),
        "confirmed": [
            {"webhook": ext, "name": names.get(pk, ""), "confirmed_at": confirmed[pk]}
            for pk, ext in required
            if pk in confirmed
        ],
        "pending": [ext for pk, ext in required if pk not in confirmed],
    }


def subscriptions_overview() -> list[dict[str, Any]]:
    """Every subscription not deleted, with its last delivery, how many of its deliveries
    failed for good (waiting for a replay) and how many wait to be sent: the officers'
    webhooks page."""
    undelivered = Q(deliveries__status=DeliveryStatus.PENDING)
    rows = (
        subscriptions_list()
        .annotate(
            last_delivered_at=Max("deliveries__delivered_at"),
            last_attempt_at=Max("deliveries__last_attempt_at"),
            failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
            pending=Count("deliveries", filter=undelivered),
        )
        .order_by("id")
    )
    return [
        {
            "subscription": row,
            "last_delivered_at": row.last_delivered_at,
            "last_attempt_at": row.last_attempt_at,
            "failed": row.failed,
            "pending": row.pending,
        }
        for row in rows
    ]


def deletions_unconfirmed(*, now: datetime | None = None) -> dict[str, Any]:
    """Deletions a partner system that holds copies was told of more than
    WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS ago and has not confirmed: {count, oldest,
    by_subscription: [(external_id, description, count)]}. An alert (dashboard, /metrics)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS)
    late = Delivery.objects.filter(
        event_type="deletion_request.completed",
        subscription__holds_copies=True,
        created_at__lte=since,
    ).exclude(subscription__status=SubscriptionStatus.DELETED)
    late = late.exclude(
        Exists(
            Confirmation.objects.filter(
                subscription_id=OuterRef("subscription_id"), event_id=OuterRef("event_id")
            )
        )
    )
    summary = late.aggregate(count=Count("id"), oldest=Min("created_at"))
    by_subscription = list(
        late.values("subscription__external_id", "subscription__description")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("subscription__external_id", "subscription__description", "n")[:20]
    )
    return {
        "count": summary["count"],
        "oldest": summary["oldest"],
        "after_seconds": settings.WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS,
        "by_subscription": by_subscription,
    }


def subscriptions_failing() -> list[Subscription]:
    """Subscriptions whose deliveries ran out of retries: an officer replays them."""
    return list(subscriptions_list().filter(status=SubscriptionStatus.FAILING)[:20])
