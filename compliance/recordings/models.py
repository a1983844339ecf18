from django.db import models

from compliance.accounts.models import Profile
from compliance.core.constraints import CoveringUniqueConstraint


class RecordingState(models.TextChoices):
    ACTIVE = "active"
    PURGED = "purged"


class Flag(models.TextChoices):
    SENSITIVE = "sensitive"
    FALSE_WAKE = "false_wake"


class Category(models.TextChoices):
    AUDIO = "audio"
    TRANSCRIPT = "transcript"
    ANNOTATION = "annotation"


class Recording(models.Model):
    """A voice request. When purged it stays as a tombstone that holds no personal data."""

    # Unique through `recording_external_id_unique` below.
    external_id = models.CharField(max_length=128)
    # Indexed by `recording_profile_time` below, which starts with it: a second index
    # would only slow every write (a purge's tombstoning included).
    profile = models.ForeignKey(
        Profile, null=True, on_delete=models.SET_NULL, related_name="recordings", db_index=False
    )
    # Copies of what the eligibility rule needs of the profile and its account, which
    # never change once created: the profile's `is_child` and the account's
    # `jurisdiction` (empty and false without a profile). A decision then reads neither
    # the profile's row nor the account's (docs/capacity.md, "Fewer lookups per
    # decision"). Set by the database on every insert and every change of `profile`
    # (migration 0009's trigger), whatever the application sends: never set or read
    # them in Python, where a new object holds the defaults, not the copies.
    is_child = models.BooleanField(default=False, db_default=False, editable=False)
    jurisdiction = models.CharField(
        max_length=2, blank=True, default="", db_default="", editable=False
    )
    recorded_at = models.DateTimeField()
    sensitive = models.BooleanField(default=False)
    false_wake = models.BooleanField(default=False)
    state = models.CharField(
        max_length=8, choices=RecordingState.choices, default=RecordingState.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_reason = models.CharField(max_length=32, blank=True)
    purge_policy = models.CharField(max_length=64, blank=True, help_text="The policy that applied.")
    # Not a column: the ingest sets it on the object it wrote, for the single POST's answer.
    written_artefacts: "list[Artefact]"

    class Meta:
        constraints = [
            # The ingest's ON CONFLICT (external_id) relies on it. A constraint, not
            # unique=True: no LIKE index beside it, nothing searches by prefix.
            models.UniqueConstraint(fields=["external_id"], name="recording_external_id_unique"),
        ]
        indexes = [
            # What the eligibility rule reads of a recording, by external id, from the
            # index alone, without the heap page: at 10M recordings that halved the pages
            # a 10,000-id batch reads (docs/capacity.md). Apart from the unique key:
            # SQLite has no covering unique keys, and Django leaves such a key out there
            # (a plain index here).
            models.Index(
                fields=["external_id"],
                include=[
                    "id",
                    "profile",
                    "state",
                    "sensitive",
                    "false_wake",
                    "is_child",
                    "jurisdiction",
                ],
                name="recording_external_id_cover",
            ),
            # the owner's list of recordings, newest first
            models.Index(fields=["profile", "-recorded_at"], name="recording_profile_time"),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def flags(self) -> list[str]:
        return [
            f
            for f, on in ((Flag.SENSITIVE, self.sensitive), (Flag.FALSE_WAKE, self.false_wake))
            if on
        ]


class ArtefactState(models.TextChoices):
    ACTIVE = "active"
    PURGING = "purging"  # claimed by a purge; its file may already be gone
    PURGED = "purged"  # a tombstone: no content, no file


class Artefact(models.Model):
    """What a recording is made of, by category: an audio file in storage, or text.

    The storage key is stored, never recomputed, so a purge deletes exactly the file
    that was written.
    """

    # Indexed by `artefact_recording` below.
    recording = models.ForeignKey(
        Recording, on_delete=models.CASCADE, related_name="artefacts", db_index=False
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    storage_key = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(
        max_length=8, choices=ArtefactState.choices, default=ArtefactState.ACTIVE
    )
    # When the effective retention (the shorter of policy and user choice) ends;
    # NULL: nothing limits it. Maintained by compliance.retention, read by the purge.
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_basis = models.CharField(
        max_length=64, blank=True, help_text="policy:<id> or choice:<name>"
    )
    # The purge found it held and skipped it; cleared when a hold is released.
    purge_blocked = models.BooleanField(default=False)
    purge_attempt = models.PositiveIntegerField(default=0)
    purge_started_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            # One audio and one transcript a recording (annotations may be several).
            # Each key's index also carries what the eligibility rule reads of the
            # artefact, so a decision reads its audio's or its transcript's state and
            # expiry from the index alone: an index of one category, half the entries
            # of an index of all of them, which at 10M recordings is a level shallower
            # (docs/capacity.md, "One index a category"). The rule's SQL names the
            # category as a constant, or a prepared statement could not use them.
            CoveringUniqueConstraint(
                fields=["recording"],
                condition=models.Q(category="audio"),
                include=["state", "expires_at"],
                name="artefact_one_audio",
            ),
            CoveringUniqueConstraint(
                fields=["recording"],
                condition=models.Q(category="transcript"),
                include=["state", "expires_at"],
                name="artefact_one_transcript",
            ),
            # One owner per stored object: a registered key (POST /recordings/batch)
            # that another recording already names would have its file deleted by
            # that recording's purge. Purged rows have no key, so a purged object's key
            # may be registered again (it then names a missing file, and is refused).
            # Also serves the storage sweep's and the ingest's look-ups by key. (The
            # sweep's pages in byte order on S3 use `artefact_active_key_bytes`, on
            # storage_key COLLATE "C": PostgreSQL only, so in migration 0008, not here.)
            models.UniqueConstraint(
                fields=["storage_key"],
                condition=~models.Q(storage_key=""),
                name="artefact_storage_key_owner",
            ),
        ]
        indexes = [
            # A recording's artefacts of every category: its page, the cascade of its
            # deletion, a purge's check of what is left.
            models.Index(fields=["recording"], name="artefact_recording"),
            # the purge: active artefacts past their expiry, in the claim's order
            # (expires_at, id), so that a batch reads its own rows only. On expires_at
            # alone, a backlog of rows due at the same instant (a retention-choice
            # change, a policy shortened) was read and sorted whole by every batch's
            # claim: quadratic in the backlog (docs/capacity.md, "The purge at 10x").
            models.Index(
                fields=["expires_at", "id"],
                condition=models.Q(state="active", purge_blocked=False, expires_at__isnull=False),
                name="artefact_due",
            ),
            # the sweep: purges that a dead worker left half done
            models.Index(
                fields=["purge_started_at"],
                condition=models.Q(state="purging"),
                name="artefact_purging",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} of recording {self.recording_id}"
