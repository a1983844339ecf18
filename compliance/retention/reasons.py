"""Why something was purged: the value a tombstone keeps in `purge_reason`, that the
ledger's `purge.batch` entries count by, and that `recording.purged` webhook events
carry. They are API and ledger data: a value once written never changes meaning."""

from django.db import models


class PurgeReason(models.TextChoices):
    RETENTION_POLICY = "retention_policy", "retention policy"
    USER_CHOICE = "user_choice", "the person's retention choice"
    DONT_SAVE = "dont_save", "don't save"
    DELETION_REQUEST = "deletion_request", "deletion request"
    FILE_MISSING = "file_missing", "file missing from storage"


# The purges that follow from an expiry: only these can be late (the purge lag). A
# deletion request has no expiry to be late for, nor does a file found missing.
EXPIRY_REASONS: tuple[PurgeReason, ...] = (
    PurgeReason.RETENTION_POLICY,
    PurgeReason.USER_CHOICE,
    PurgeReason.DONT_SAVE,
)


def expiry_reason(basis: str) -> PurgeReason:
    """The reason an artefact that expired under `basis` (its `expiry_basis`: `policy:<id>`
    or `choice:<name>`) is purged for."""
    if basis.startswith("choice:dont_save"):
        return PurgeReason.DONT_SAVE
    if basis.startswith("choice:"):
        return PurgeReason.USER_CHOICE
    return PurgeReason.RETENTION_POLICY
