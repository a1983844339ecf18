"""Whether a caller may call a view at all: keys by scope, officers by role, owners
let through to the view's ownership filter (which answers 404 for what is not theirs).

A view says who may call it in one line, `permission_classes = [scope_or_officer(...)]`,
and finds the row a request names with `find_for_caller`, under the same scope."""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework import permissions
from rest_framework.request import Request

from .callers import Caller, CallerKind, caller_of

_T = TypeVar("_T")


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

    def scope_for(self, request: Request, view: Any) -> str | None:
        """The scope a key needs for the request's method on `view`."""
        scopes: Mapping[str, str] = self._setting(view, "required_scopes")
        method = request.method or ""
        if method == "HEAD":
            method = "GET"  # Django answers HEAD with the GET handler: it reads what GET reads
        return scopes.get(method, scopes.get("*"))

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = request_caller(request)
        if caller.kind is CallerKind.ANONYMOUS:
            return False
        if not hasattr(view, (request.method or "").lower()):
            return True  # nothing to guard: the view answers 405, not a misleading 403
        scope = self.scope_for(request, view)
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


def find_for_caller(request: Request, view: Any, lookup: Callable[..., _T], **key: Any) -> _T:
    """The row a request names, as its caller may see it: `lookup`, a subject's ownership
    lookup (`profile_for_caller`, `recording_for_caller`, `deletion_request_for_caller`),
    asked for the request's caller under the scope the view's permission requires for this
    method, so that the 403 and the filter never disagree. The lookup answers 404, never
    403, for a row that is not the caller's (ids cannot be probed)."""
    for permission in view.get_permissions():
        if isinstance(permission, ScopeRequired):
            scope = permission.scope_for(request, view)
            break
    else:
        scope = None
    if scope is None:
        raise ImproperlyConfigured(
            f"{type(view).__name__} requires no scope for {request.method}: "
            "a row found for a caller needs one"
        )
    return lookup(caller=request_caller(request), scope=scope, **key)
