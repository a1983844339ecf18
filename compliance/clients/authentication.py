"""API-key authentication: `Authorization: Api-Key <key>`.

The hot paths (eligibility) answer thousands of requests a second, so a verified key
is remembered in-process for API_KEY_CACHE_SECONDS: a revoked key stops working within
that time, and no request pays a database lookup for its key more often than that.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from rest_framework import authentication, exceptions

from .keys import api_key_hash
from .models import ServiceClient

_HEADER_PREFIX = "Api-Key "


@dataclass(frozen=True)
class ClientPrincipal:
    """The caller when a service client authenticated; stands in for `request.user`."""

    id: int
    name: str
    scopes: frozenset[str]

    is_authenticated = True
    is_client = True
    is_staff = False
    is_superuser = False

    @property
    def actor(self) -> str:
        return f"client:{self.name}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


_cache: dict[str, tuple[ClientPrincipal, float]] = {}
_CACHE_MAX = 10_000


class InvalidApiKey(Exception):
    pass


def principal_for_header(header: str) -> ClientPrincipal | None:
    """The client that `header` names, None when it carries no API key.

    Raises InvalidApiKey for a key that is malformed, unknown or revoked.
    """
    if not header.startswith(_HEADER_PREFIX):
        return None
    key = header[len(_HEADER_PREFIX) :].strip()
    if not key or len(key) > 200:
        raise InvalidApiKey
    digest = api_key_hash(key)
    now = time.monotonic()
    cached = _cache.get(digest)
    if cached is not None and cached[1] > now:
        return cached[0]
    row = (
        ServiceClient.objects.filter(key_hash=digest, revoked_at__isnull=True)
        .values_list("id", "name", "scopes")
        .first()
    )
    if row is None:
        _cache.pop(digest, None)
        raise InvalidApiKey
    principal = ClientPrincipal(id=row[0], name=row[1], scopes=frozenset(row[2]))
    ttl = settings.API_KEY_CACHE_SECONDS
    if ttl > 0:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[digest] = (principal, now + ttl)
    return principal


def forget_cached_keys() -> None:
    _cache.clear()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: HttpRequest) -> tuple[ClientPrincipal, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        try:
            principal = principal_for_header(header)
        except InvalidApiKey:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if principal is None:
            return None
        return principal, None

    def authenticate_header(self, request: HttpRequest) -> str:
        return self.keyword
