from django.db import models
from django.db.models import Q


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active"
    # the receiver answered 410 Gone: it asked to be left alone
    DISABLED = "disabled"
    # a delivery ran out of retries; an officer replays once the receiver is back
    FAILING = "failing"
    DELETED = "deleted"


class Subscription(models.Model):
    """A system outside Earshot that holds copies and must hear of changes.

    The signing secret must be recoverable to sign, so it is stored encrypted (Fernet),
    never hashed. After a rotation the previous secret keeps signing beside the new one
    until `previous_secret_until`, so receivers can switch without losing a delivery.
    """

    external_id = models.CharField(max_length=40, unique=True)
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=500, blank=True)
    holds_copies = models.BooleanField(default=False)
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    status_reason = models.CharField(max_length=200, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # the dispatcher's "who listens now" and the failing gauge
            models.Index(fields=["status"], name="webhooks_sub_status"),
        ]

    def __str__(self) -> str:
        return f"webhook {self.external_id}"

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DispatchCursor(models.Model):
    """The last ledger `seq` turned into deliveries. One row; the dispatcher locks it,
    so one dispatcher runs at a time and the cursor moves with the rows it created."""

    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"webhook cursor at {self.last_seq}"


class Delivery(models.Model):
    """One event for one subscription, and the log of sending it.

    `event_id` comes from the ledger entry, so a retry (or a dispatcher that runs twice)
    keeps the same `webhook-id`. `ordering_key` is the profile the event is about ("" for
    events about no profile): a later delivery for the same subscription and key waits
    while an earlier one is undelivered (pending or failed), so receivers see each
    profile's changes in commit order. Ids grow in dispatch order, which is ledger order.
    A sender holds a delivery by `lease_until` and `lane` (its claim's token): an
    outcome is written only where the delivery still carries the token, so a sender
    whose lease lapsed writes nothing.
    """

    # no index of its own: the indexes below all begin with it (every write of a delivery
    # pays for each index, bench/webhooks.py)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    seq = models.BigIntegerField(null=True, blank=True)
    ordering_key = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    # the sender's lane that holds it: a lane sends its deliveries one after another on
    # one connection; a subscription has at most WEBHOOKS_MAX_IN_FLIGHT lanes sending at
    # a time (compliance/webhooks/sender.py)
    lane = models.CharField(max_length=32, blank=True)
    # retries run until retry_from + WEBHOOKS_RETRY_SECONDS (a replay restarts it)
    retry_from = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="webhooks_delivery_once"
            ),
        ]
        indexes = [
            # the claim's bounded read: a subscription's pending deliveries in id order
            models.Index(
                fields=["subscription", "id"],
                name="webhooks_delivery_pending",
                condition=Q(status="pending"),
            ),
            # the ordering check: earlier undelivered ones of the same subscription and key
            models.Index(
                fields=["subscription", "ordering_key", "id"],
                name="webhooks_delivery_order",
                condition=Q(status__in=["pending", "failed"]),
            ),
            # the deliveries page of a subscription, newest first
            models.Index(fields=["subscription", "-id"], name="webhooks_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.subscription_id} ({self.status})"


class Confirmation(models.Model):
    """A subscriber's word that it deleted what an event told it of (a delivery only
    says the event arrived)."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="confirmations"
    )
    event_id = models.CharField(max_length=64)
    confirmed_at = models.DateTimeField()
    via = models.CharField(max_length=16)  # "signature" or "api_key"

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="webhooks_confirmation_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} confirmed {self.event_id}"
