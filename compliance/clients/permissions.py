"""Who may call what: service clients by scope, officers by role and second factor,
end users only for what they own (checked where the object is known)."""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from compliance.core.errors import ApplicationError

from .authentication import ClientPrincipal

OFFICERS_GROUP = "privacy_officers"


def is_client(user: Any) -> bool:
    return isinstance(user, ClientPrincipal)


def has_officer_role(user: Any) -> bool:
    """A privacy officer by role (superuser or in the officers' group), verified or not.
    Decides who must sign in with a second factor; `is_officer` decides access."""
    if user is None or is_client(user) or not user.is_authenticated:
        return False
    return user.is_superuser or user.groups.filter(name=OFFICERS_GROUP).exists()


def is_officer(user: Any) -> bool:
    """A privacy officer signed in with a verified second factor (django-otp).

    Only sessions are ever verified (docs/reliability.md, "Access": django-otp verifies through the
    session), so an officer reaches officer endpoints through a session, never a key."""
    if user is None or is_client(user) or not user.is_authenticated:
        return False
    verified = getattr(user, "is_verified", None)
    if verified is None or not verified():
        return False
    return has_officer_role(user)


def actor_of(user: Any) -> str:
    if is_client(user):
        return user.actor
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "anonymous"


def require_scope(user: Any, scope: str) -> None:
    if not user.has_scope(scope):
        raise ApplicationError(
            "insufficient_scope",
            f"This API key lacks the scope {scope!r}.",
            status_code=403,
        )


class ScopeRequired(permissions.BasePermission):
    """Service clients with the view's `required_scope` per method; optionally officers.

    Views that also admit owners (end users) check ownership once the object is
    loaded; this class lets authenticated session users through to that check when
    the view sets `owner_allowed`.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if not hasattr(view, (request.method or "").lower()):
            return True  # nothing to guard: the view answers 405, not a misleading 403
        scopes = getattr(view, "required_scopes", {})
        scope = scopes.get(request.method, scopes.get("*"))
        if is_client(user):
            if scope is None:
                return False
            require_scope(user, scope)
            return True
        if getattr(view, "officer_allowed", False) and is_officer(user):
            return True
        return bool(getattr(view, "owner_allowed", False))
