"""At sign-in the saved language goes into the session, where every page reads it."""

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from .languages import SESSION_KEY, supported
from .selectors import page_language_of


@receiver(user_logged_in)
def language_at_sign_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    language = page_language_of(user=user)
    if language and supported(language):
        request.session[SESSION_KEY] = language
