"""Who is a privacy officer: a user in the officers' group (or a superuser), signed in
with a verified second factor. The API edge asks this through `Caller.is_officer`;
this module installs the rule there (`SecurityConfig.ready`)."""

from typing import Any

OFFICERS_GROUP = "privacy_officers"


def has_officer_role(user: Any) -> bool:
    """A privacy officer by role (superuser or in the officers' group), verified or not.
    Decides who must sign in with a second factor; `is_officer` decides access."""
    if user is None or getattr(user, "is_client", False) or not user.is_authenticated:
        return False
    return bool(user.is_superuser or user.groups.filter(name=OFFICERS_GROUP).exists())


def is_officer(user: Any) -> bool:
    """A privacy officer signed in with a verified second factor (django-otp).

    Only sessions are ever verified (docs/reliability.md, "Access": django-otp verifies
    through the session), so an officer reaches officer endpoints through a session,
    never a key."""
    if user is None or getattr(user, "is_client", False) or not user.is_authenticated:
        return False
    verified = getattr(user, "is_verified", None)
    if verified is None or not verified():
        return False
    return has_officer_role(user)
