from django.db import models

from compliance.accounts.models import Profile


class Purpose(models.TextChoices):
    """What a recording may be used for. Closed in code; add a member to extend it."""

    HUMAN_REVIEW = "human_review", "human review (people listen and annotate)"
    MODEL_TRAINING = "model_training", "model training (automated use)"


class Channel(models.TextChoices):
    APP = "app"
    WEB = "web"
    VOICE = "voice"
    API = "api"
    OFFICER = "officer"


class ConsentEvent(models.Model):
    """Append-only: every grant and withdrawal as it happened."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consent_events")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    granted = models.BooleanField()
    channel = models.CharField(max_length=16, choices=Channel.choices)
    notice_version = models.CharField(max_length=64)
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # history: one profile and purpose, newest first
            models.Index(fields=["profile", "purpose", "-created_at"], name="consentevent_history"),
        ]

    def __str__(self) -> str:
        verb = "granted" if self.granted else "withdrew"
        return f"{self.profile_id} {verb} {self.purpose} ({self.channel})"


class ConsentState(models.Model):
    """The current state per (profile, purpose), written in the event's transaction.

    One row exists per profile and purpose from the profile's creation on. `granted`
    is NULL until the first event: the jurisdiction's default applies then. An opt-out
    and a hand-off meet on the profile's `ConsentLock`, not on this row.
    """

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consent_states")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    granted = models.BooleanField(null=True)
    last_event = models.ForeignKey(
        ConsentEvent, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "purpose"], name="consentstate_one_per_purpose"
            ),
        ]
        indexes = [
            # The eligibility rule reads the answer from this index alone (docs/capacity.md,
            # at 10x the data). Apart from the unique key: SQLite has no covering unique
            # keys, and Django leaves such a key out there (a plain index here).
            models.Index(
                fields=["profile", "purpose"], include=["granted"], name="consentstate_cover"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id}/{self.purpose}={self.granted}"


# How many rows `ConsentLock` holds. Migration 0003 created exactly these; changing the
# number needs a migration that adds or removes rows to match, in the same release.
CONSENT_LOCKS = 16_384


class ConsentLock(models.Model):
    """Where an opt-out and a hand-off to a reviewer meet: a fixed table of
    `CONSENT_LOCKS` rows, the profile `p` on row `p % CONSENT_LOCKS`.

    A withdrawal locks its profile's row FOR UPDATE; a hand-off (a sample draw, a clip
    access, an annotation) locks its profiles' rows FOR KEY SHARE, which conflicts with
    that and with nothing else, so hand-offs go side by side. The rows are never
    updated: a lock writes only the row's header, on one of some seventy pages whatever
    the number of profiles, where locking the profiles' own consent-state rows wrote a
    page of a table that grows with them (docs/capacity.md, "The opt-out's lock"). Two
    profiles on one row are one to the lock: a withdrawal waits until no hand-off holds
    its row, a draw of another profile included (docs/reliability.md, "Opt-out against
    hand-off", says how long that can be).
    """

    id = models.IntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"consent lock {self.id}"


class ConsentDefault(models.Model):
    """What applies to a profile that has no event for a purpose, per jurisdiction."""

    jurisdiction = models.CharField(max_length=2)
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    granted = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["jurisdiction", "purpose"], name="consentdefault_one_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.jurisdiction}/{self.purpose}={self.granted}"
