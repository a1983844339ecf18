from typing import Any

from django.db.models import QuerySet

from compliance.core.errors import NotFound
from compliance.edge.callers import Caller, visible_rows

from .models import Profile


def profile_get(*, external_id: str) -> Profile:
    profile = Profile.objects.select_related("account").filter(external_id=external_id).first()
    if profile is None:
        raise NotFound("Profile")
    return profile


def profiles_visible_to(caller: Caller, *, scope: str) -> QuerySet[Profile]:
    """The one answer to "which profiles may this caller see?", asked by the API and
    the privacy page alike."""
    return visible_rows(
        Profile.objects.select_related("account"), caller, scope=scope, owner="account__user_id"
    )


def profile_for_caller(*, caller: Caller, external_id: str, scope: str) -> Profile:
    """The profile, if `caller` may see it; anyone else is told it does not exist, so
    that ids cannot be probed. (A key without `scope` was refused with a 403 before:
    `compliance.edge.permissions`.)"""
    profile = profiles_visible_to(caller, scope=scope).filter(external_id=external_id).first()
    if profile is None:
        raise NotFound("Profile")
    return profile


def profiles_of_user(*, user: Any) -> list[Profile]:
    return list(
        Profile.objects.filter(account__user=user).select_related("account").order_by("external_id")
    )
