from django.conf import settings
from django.db import models

from compliance.recordings.models import Artefact, Recording

DEFAULT_DAILY_QUOTA = 1_000


class Reviewer(models.Model):
    """A person who listens to clips: a login user with a location and a daily quota.

    `location` decides, with the transfer rules, which jurisdictions' recordings the
    reviewer may hear (docs/domain.md, "The eligibility rule").
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviewer"
    )
    location = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    daily_quota = models.PositiveIntegerField(
        default=DEFAULT_DAILY_QUOTA, help_text="Clips a day (UTC) this reviewer may be assigned."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"reviewer {self.user_id} ({self.location})"


class ReviewItemState(models.TextChoices):
    PENDING = "pending"  # drawn, its audio not yet fetched
    DELIVERED = "delivered"  # its audio fetched at least once
    DONE = "done"  # annotated
    REVOKED = "revoked"  # the recording stopped being eligible (withdrawal, purge, gate)
    EXPIRED = "expired"  # past expires_at

    @classmethod
    def open(cls) -> list[str]:
        """States in which the item may still reach its reviewer."""
        return [cls.PENDING, cls.DELIVERED]


# An item in these states counts as the recording's one hand-out; so does one whose
# audio was fetched before it was revoked or expired (it was heard).
HANDED_OUT = [ReviewItemState.PENDING, ReviewItemState.DELIVERED, ReviewItemState.DONE]
HANDED_OUT_Q = models.Q(state__in=HANDED_OUT) | models.Q(delivered_at__isnull=False)


class ReviewItem(models.Model):
    """One recording handed out for review.

    The id is random and says nothing about the recording or whose voice it holds; the
    answer to the sampling pipeline carries only this id, a signed link and the
    transcript.
    """

    id = models.CharField(primary_key=True, max_length=32, editable=False)
    # Indexed by `reviewitem_one_handout_per_recording` below, which serves every
    # lookup by recording (the draw's "handed out before?", revocations).
    recording = models.ForeignKey(
        Recording, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    purpose = models.CharField(max_length=32)
    reviewer = models.ForeignKey(  # indexed by `reviewitem_reviewer_day`
        Reviewer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="items",
        db_index=False,
    )
    reviewer_location = models.CharField(max_length=2)
    state = models.CharField(
        max_length=9, choices=ReviewItemState.choices, default=ReviewItemState.PENDING
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=32, blank=True)
    # One annotation per item; the unique index is partial so that the thousand items
    # of a draw, none annotated yet, add nothing to it.
    annotation = models.ForeignKey(
        Artefact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            # "each handed out once": at most one item per recording that is live, done,
            # or was heard before it closed
            models.UniqueConstraint(
                fields=["recording"],
                condition=HANDED_OUT_Q,
                name="reviewitem_one_handout_per_recording",
            ),
            models.UniqueConstraint(
                fields=["annotation"],
                condition=models.Q(annotation__isnull=False),
                name="reviewitem_one_item_per_annotation",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=ReviewItemState.values),
                name="reviewitem_state_valid",
            ),
        ]
        indexes = [
            # the expiry sweep: open items past their expiry
            models.Index(
                fields=["expires_at"],
                condition=models.Q(state__in=[ReviewItemState.PENDING, ReviewItemState.DELIVERED]),
                name="reviewitem_open_expiry",
            ),
            # the daily quota: a reviewer's items since midnight
            models.Index(
                fields=["reviewer", "created_at"],
                condition=models.Q(reviewer__isnull=False),
                name="reviewitem_reviewer_day",
            ),
        ]

    def __str__(self) -> str:
        return f"review item {self.id} ({self.state})"
