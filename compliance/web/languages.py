"""The languages the pages speak, and where a person's choice is kept in a session."""

from django.conf import settings

SESSION_KEY = "earshot_language"


def supported(code: str) -> bool:
    return code in {code for code, _ in settings.LANGUAGES}
