from typing import Any

from compliance.clients.permissions import is_client, is_officer, require_scope
from compliance.core.errors import NotFound

from .models import Profile


def profile_get(*, external_id: str) -> Profile:
    profile = Profile.objects.select_related("account").filter(external_id=external_id).first()
    if profile is None:
        raise NotFound("Profile")
    return profile


def profile_for_caller(*, caller: Any, external_id: str, scope: str) -> Profile:
    """The profile, if `caller` may act on it: a client with `scope`, an officer, or
    the end user whose account owns it. Anyone else is told it does not exist, so
    that ids cannot be probed."""
    if is_client(caller):
        require_scope(caller, scope)
        return profile_get(external_id=external_id)
    profile = profile_get(external_id=external_id)
    if is_officer(caller) or (
        caller is not None
        and caller.is_authenticated
        and profile.account.user_id is not None
        and profile.account.user_id == caller.pk
    ):
        return profile
    raise NotFound("Profile")


def profiles_of_user(*, user: Any) -> list[Profile]:
    return list(
        Profile.objects.filter(account__user=user).select_related("account").order_by("external_id")
    )
