"""Writes of the pages' own settings (the data's writes live in their apps' services)."""

from django.contrib.auth.models import User

from .models import PagePreference


def page_language_set(*, user: User, language: str) -> PagePreference:
    """Save the language a person reads the pages in; the caller checked it is one the
    pages speak."""
    preference, _ = PagePreference.objects.update_or_create(
        user=user, defaults={"language": language}
    )
    return preference
