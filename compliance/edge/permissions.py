"""Whether a caller may call a view at all: keys by scope, officers by role, owners
let through to the view's ownership filter (which answers 404 for what is not theirs).

A view says who may call it in one line, `permission_classes = [scope_or_officer(...)]`."""

from collections.abc import Mapping
from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from .callers import Caller, CallerKind, caller_of


def request_caller(request: Request) -> Caller:
    """The request's caller, made once and kept on the request."""
    caller = getattr(request, "_edge_caller", None)
    if caller is None:
        caller = caller_of(request.user)
        request._edge_caller = caller  # type: ignore[attr-defined]
    return caller


class ScopeRequired(permissions.BasePermission):
    """Service clients with the scope the view requires for the method; optionally
    officers (`officer_allowed`) and signed-in end users (`owner_allowed`), whom the
    view's ownership filter then answers."""

    required_scopes: Mapping[str, str] = {}
    officer_allowed = False
    owner_allowed = False

    def _setting(self, view: Any, name: str) -> Any:
        return getattr(view, name, getattr(self, name))

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = request_caller(request)
        if caller.kind is CallerKind.ANONYMOUS:
            return False
        if not hasattr(view, (request.method or "").lower()):
            return True  # nothing to guard: the view answers 405, not a misleading 403
        scopes: Mapping[str, str] = self._setting(view, "required_scopes")
        method = request.method or ""
        if method == "HEAD":
            method = "GET"  # Django answers HEAD with the GET handler: it reads what GET reads
        scope = scopes.get(method, scopes.get("*"))
        if caller.is_key:
            if scope is None:
                return False
            caller.require_scope(scope)
            return True
        if caller.is_officer and self._setting(view, "officer_allowed"):
            return True
        return bool(self._setting(view, "owner_allowed"))


def scope_or_officer(
    scopes: str | Mapping[str, str], *, owner: bool = False
) -> type[ScopeRequired]:
    """The permission of a view open to keys holding `scopes` (one scope for every
    method, or one per method) and to officers; with `owner`, also to end users, for
    the view's ownership filter to answer."""
    per_method = {"*": scopes} if isinstance(scopes, str) else dict(scopes)
    return type(
        "ScopeOwnerOrOfficer" if owner else "ScopeOrOfficer",
        (ScopeRequired,),
        {"required_scopes": per_method, "officer_allowed": True, "owner_allowed": owner},
    )
