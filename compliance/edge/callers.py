"""Who is calling: an API key with its scopes, an end user, or an officer.

Every question "is this caller allowed?" is asked of a `Caller`, made once per request
from `request.user` by `caller_of`. Which signed-in users are officers is the security
app's rule (`compliance/security/roles.py`); it installs that rule here when Django
starts (`SecurityConfig.ready`), because this package sits below every app. Until it
does, nobody is an officer: the edge fails closed."""

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from compliance.core.errors import PermissionDenied

_M = TypeVar("_M", bound=Model)


class CallerKind(enum.StrEnum):
    KEY = "key"  # a service client's API key
    USER = "user"  # an end user, signed in on the privacy page
    OFFICER = "officer"  # a privacy officer, signed in with a second factor
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    actor: str  # as the ledger records it: "client:<name>", "user:<pk>", "anonymous"
    scopes: frozenset[str] = frozenset()
    user_id: int | None = None  # the signed-in user's pk (users and officers)

    @property
    def is_key(self) -> bool:
        return self.kind is CallerKind.KEY

    @property
    def is_officer(self) -> bool:
        return self.kind is CallerKind.OFFICER

    @property
    def is_user(self) -> bool:
        """An end user who is not an officer: what they may see is what they own."""
        return self.kind is CallerKind.USER

    def as_end_user(self) -> "Caller":
        """The same person as an end user: the privacy page shows an officer their own
        profiles, not everyone's."""
        if self.kind is CallerKind.OFFICER:
            return replace(self, kind=CallerKind.USER)
        return self

    def has_scope(self, scope: str) -> bool:
        return self.is_key and scope in self.scopes

    def require_scope(self, scope: str) -> None:
        """A key without `scope` is refused (403); other callers are not keys and
        are answered by ownership or role instead."""
        if self.is_key and scope not in self.scopes:
            raise PermissionDenied("insufficient_scope", f"This API key lacks the scope {scope!r}.")


ANONYMOUS = Caller(kind=CallerKind.ANONYMOUS, actor="anonymous")

_officer_rule: Callable[[Any], bool] = lambda user: False  # noqa: E731 (until security installs its rule)


def install_officer_rule(rule: Callable[[Any], bool]) -> None:
    global _officer_rule
    _officer_rule = rule


def is_key(user: Any) -> bool:
    """`request.user` is a service client's principal (clients' authentication)."""
    return bool(getattr(user, "is_client", False))


def actor_of(user: Any) -> str:
    """Who the ledger says acted: "client:<name>", "user:<pk>" or "anonymous"."""
    if is_key(user):
        return str(user.actor)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return "anonymous"


def caller_of(user: Any) -> Caller:
    """The caller behind `request.user`: a key's principal, a Django user, or nobody."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    if is_key(user):
        return Caller(kind=CallerKind.KEY, actor=user.actor, scopes=frozenset(user.scopes))
    kind = CallerKind.OFFICER if _officer_rule(user) else CallerKind.USER
    return Caller(kind=kind, actor=f"user:{user.pk}", user_id=user.pk)


def visible_rows(rows: QuerySet[_M], caller: Caller, *, scope: str, owner: str) -> QuerySet[_M]:
    """The rule every subject's ownership filter applies: all `rows` for a key holding
    `scope` and for an officer; for an end user, the rows whose `owner` (the lookup of
    the owning user's id, such as "account__user_id") is theirs; none for anyone else."""
    if caller.has_scope(scope) or caller.is_officer:
        return rows
    if caller.is_user and caller.user_id is not None:
        return rows.filter(**{owner: caller.user_id})
    return rows.none()
