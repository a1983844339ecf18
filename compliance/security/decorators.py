"""Guards for server-rendered pages. Officers (and reviewers) must have signed in
with their second factor; the check is the same one the API uses."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

from compliance.clients.permissions import is_officer


def officer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, an officer, and verified by a second factor in this session."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated or not user.is_verified():  # type: ignore[attr-defined]  # OTPMiddleware adds it
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not is_officer(user):
            return HttpResponseForbidden("Privacy officers only.")
        return view(request, *args, **kwargs)

    return guarded
