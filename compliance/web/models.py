"""What a person chose for the pages themselves (not for their data)."""

from django.conf import settings
from django.db import models


class PagePreference(models.Model):
    """The language a signed-in person reads the pages in, whichever browser they use.

    Officers have no Account, so the setting belongs to the login, not to the account.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="page_preference",
    )
    language = models.CharField(max_length=8)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language}"
