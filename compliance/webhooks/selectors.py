from django.db.models import QuerySet

from compliance.core.errors import NotFound

from .models import Delivery, Subscription, SubscriptionStatus


def subscriptions_list() -> QuerySet[Subscription]:
    return Subscription.objects.exclude(status=SubscriptionStatus.DELETED).order_by("id")


def subscription_get(*, external_id: str) -> Subscription:
    subscription = subscriptions_list().filter(external_id=external_id).first()
    if subscription is None:
        raise NotFound("Webhook")
    return subscription


def deliveries_list(*, subscription: Subscription, limit: int = 100) -> QuerySet[Delivery]:
    return Delivery.objects.filter(subscription=subscription).order_by("-id")[:limit]
