from django.conf import settings
from django.db import models


class Account(models.Model):
    """A person who owns voice profiles, as the platform knows them."""

    external_id = models.CharField(max_length=128, unique=True)
    jurisdiction = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="account",
        help_text="The login that may use the privacy page for this account.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The eligibility rule reads the jurisdiction by id: from this index alone
            # (docs/capacity.md, at 10x the data).
            models.Index(fields=["id"], include=["jurisdiction"], name="account_id_cover"),
        ]

    def __str__(self) -> str:
        return self.external_id


class RetentionChoice(models.TextChoices):
    THREE_MONTHS = "3_months", "3 months"
    EIGHTEEN_MONTHS = "18_months", "18 months"
    UNTIL_DELETED = "until_deleted", "until I delete them"
    DONT_SAVE = "dont_save", "don't save"


DISPLAY_NAME_MAX = 60


class Profile(models.Model):
    """A voice profile: the data subject."""

    external_id = models.CharField(max_length=128, unique=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="profiles")
    is_child = models.BooleanField(default=False)
    # NULL: the user has not chosen (policy alone applies); "" would read as a choice.
    retention_choice = models.CharField(  # noqa: DJ001
        max_length=16, choices=RetentionChoice.choices, null=True, blank=True
    )
    # What the person calls the profile ("Kitchen speaker"); empty: not named yet.
    # Only the pages show it; the API and the ledger keep the external id.
    display_name = models.CharField(max_length=DISPLAY_NAME_MAX, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The eligibility rule reads the account and is_child by id: from this index
            # alone (docs/capacity.md, at 10x the data).
            models.Index(fields=["id"], include=["account", "is_child"], name="profile_id_cover"),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def name(self) -> str:
        """The profile as a page names it: its display name, else its external id."""
        return self.display_name or self.external_id
