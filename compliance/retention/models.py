from django.db import models
from django.db.models import Q

from compliance.accounts.models import Account, Profile


class AppliesTo(models.TextChoices):
    ALL = "all"
    ADULTS = "adults"
    CHILDREN = "children"


class RetentionPolicy(models.Model):
    """How long artefacts of one category are kept in one jurisdiction, for adults,
    children or all; versioned per key, in force from `effective_from`.

    The version in force for a key at time t is the newest one with
    `effective_from <= t` that is not retired by t. Retiring a version retires the
    versions before it too: the key then has no policy until a later version starts.
    """

    jurisdiction = models.CharField(max_length=8, help_text="Country code, group (EU, EEA) or *")
    category = models.CharField(max_length=16)
    applies_to = models.CharField(max_length=8, choices=AppliesTo.choices, default=AppliesTo.ALL)
    retention_days = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    effective_from = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(
        null=True, blank=True, help_text="When artefacts were rescheduled under this version."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["jurisdiction", "category", "applies_to", "version"],
                name="retentionpolicy_one_version",
            ),
            models.CheckConstraint(
                condition=Q(retention_days__lte=36_500), name="retentionpolicy_days_sane"
            ),
        ]
        indexes = [
            # the beat's look for versions that came into force and are not applied yet
            models.Index(
                fields=["effective_from"],
                condition=Q(applied_at__isnull=True),
                name="retentionpolicy_pending",
            ),
        ]

    def __str__(self) -> str:
        key = f"{self.jurisdiction}/{self.category}/{self.applies_to}"
        return f"{key} v{self.version}: {self.retention_days} days"


class LegalHold(models.Model):
    """Suspends every deletion of an account's or a profile's recordings (optionally
    only those recorded within a date range) until released."""

    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_from = models.DateTimeField(null=True, blank=True)
    recorded_to = models.DateTimeField(null=True, blank=True)
    reason = models.TextField()
    case_reference = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(account__isnull=False, profile__isnull=True)
                | Q(account__isnull=True, profile__isnull=False),
                name="legalhold_one_scope",
            ),
            models.CheckConstraint(
                condition=Q(recorded_from__isnull=True)
                | Q(recorded_to__isnull=True)
                | Q(recorded_from__lte=models.F("recorded_to")),
                name="legalhold_range_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} ({self.case_reference})"


class DeletionStatus(models.TextChoices):
    RECEIVED = "received"
    RUNNING = "running"
    DONE = "done"


class DeletionRequest(models.Model):
    """A person's (or a client's on their behalf) request to delete recordings.

    Claimed by a worker with a lease; a worker that dies leaves a lease that expires,
    and the sweep hands the request to another. Every step is safe to run twice.
    """

    public_id = models.CharField(max_length=32, unique=True)
    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="deletion_requests")
    recorded_from = models.DateTimeField(null=True, blank=True)
    recorded_to = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=8, choices=DeletionStatus.choices, default=DeletionStatus.RECEIVED
    )
    requested_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    recordings_matched = models.PositiveIntegerField(default=0)
    recordings_deleted = models.PositiveIntegerField(default=0)
    recordings_held = models.PositiveIntegerField(default=0)
    holds = models.JSONField(default=list, help_text="Ids of the holds that blocked part of it.")
    receipt = models.CharField(max_length=64, blank=True, help_text="Hash of the ledger entry.")

    class Meta:
        indexes = [
            # the sweep's look for requests to start or to take over
            models.Index(
                fields=["status", "lease_until"],
                condition=~Q(status="done"),
                name="deletionrequest_open",
            ),
        ]

    def __str__(self) -> str:
        return f"deletion {self.public_id} ({self.status})"
