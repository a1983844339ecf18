from django.db import models

NAME_MAX_LENGTH = 100


class ServiceClient(models.Model):
    """A machine caller. Only the SHA-256 of its key is kept; the key is shown once.

    A plain hash suffices (no slow KDF): keys carry 256 bits of randomness, so there is
    nothing to brute-force, and the check stays cheap on the hot path.
    """

    name = models.CharField(max_length=NAME_MAX_LENGTH, unique=True)
    key_prefix = models.CharField(max_length=16, help_text="First characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
