from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class WebhooksCollector(Collector):
    """Subscribers that stopped hearing from us, and how far behind delivery is."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Min

        from .models import Delivery, DeliveryStatus, Subscription, SubscriptionStatus

        yield GaugeMetricFamily(
            "earshot_webhook_subscriptions_failing",
            "Subscriptions whose deliveries ran out of retries (replay them once fixed)",
            value=Subscription.objects.filter(status=SubscriptionStatus.FAILING).count(),
        )
        oldest = Delivery.objects.filter(
            status=DeliveryStatus.PENDING, subscription__status=SubscriptionStatus.ACTIVE
        ).aggregate(t=Min("created_at"))["t"]
        from .selectors import deletions_unconfirmed

        yield GaugeMetricFamily(
            "earshot_webhook_unconfirmed_deletions",
            "Deletions a subscriber holding copies was told of longer ago than "
            "WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS and has not confirmed (an alert)",
            value=deletions_unconfirmed()["count"],
        )
        yield GaugeMetricFamily(
            "earshot_webhook_oldest_pending_seconds",
            "Age of the oldest undelivered event of an active subscription",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
