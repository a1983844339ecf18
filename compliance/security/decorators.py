"""Guards for server-rendered pages. Officers (and reviewers) must have signed in
with their second factor; the check is the same one the API uses."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from compliance.security.roles import has_officer_role, is_officer

NOT_AN_OFFICER = _(
    "The officer pages are for privacy officers only: they need an officer account, "
    "signed in with a second factor. You are signed in with an account that is not an "
    "officer's. Your own recordings and choices are on your privacy page."
)


def officer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, an officer, and verified by a second factor in this session."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not has_officer_role(user):
            # Signing in again cannot help someone who is no officer: say so (a 403
            # page in the site's frame) instead of showing a sign-in form to a person
            # the header calls signed in.
            raise PermissionDenied(NOT_AN_OFFICER)
        if not user.is_authenticated or not user.is_verified():  # type: ignore[attr-defined]  # OTPMiddleware adds it
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not is_officer(user):
            raise PermissionDenied(NOT_AN_OFFICER)
        return view(request, *args, **kwargs)

    return guarded
