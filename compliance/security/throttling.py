"""Throttles: failed sign-ins, and API requests per key and per user.

Both count in the default cache with one atomic increment per event. With the local
memory cache every process counts for itself; production sets CACHE_URL to a shared
cache so that the limits hold across processes.

The API throttles are a brake on a runaway client, not a security boundary
(docs/reliability.md, "Access"; DRF #8127): access is decided by authentication and scopes. They use
a fixed window and one counter per caller, because DRF's own throttles keep every
request's timestamp in the cache and rewrite that list on each request, which costs
more than the eligibility check they would guard.
"""

import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from compliance.edge.callers import is_key

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def _increment(key: str, timeout: int) -> int:
    """Add one to the counter at `key`, creating it to live `timeout` seconds; atomic
    in every Django cache backend. The expiry is set once, when the counter starts."""
    try:
        return cache.incr(key)
    except ValueError:  # no such key (yet, or expired)
        if cache.add(key, 1, timeout=timeout):
            return 1
        return cache.incr(key)


def client_address(request: HttpRequest) -> str:
    """The caller's address: REMOTE_ADDR, or the entry that the outermost of
    TRUSTED_PROXY_HOPS proxies added to X-Forwarded-For (entries further left are the
    client's own claims and prove nothing)."""
    hops = settings.TRUSTED_PROXY_HOPS
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops > 0 and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",") if entry.strip()]
        if len(entries) >= hops:
            return entries[-hops][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


# --- sign-in ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInThrottle:
    """Failed sign-ins per (username, address) and per address, within a window that
    starts at the first failure. Usernames are hashed: no login name in cache keys."""

    username: str
    address: str

    @property
    def _user_key(self) -> str:
        digest = hashlib.sha256(self.username.strip().lower().encode()).hexdigest()[:32]
        return f"signin:fail:{digest}:{self.address}"

    @property
    def _address_key(self) -> str:
        return f"signin:fail-address:{self.address}"

    def blocked(self) -> bool:
        counts = cache.get_many([self._user_key, self._address_key])
        return (
            counts.get(self._user_key, 0) >= settings.SIGN_IN_MAX_FAILURES
            or counts.get(self._address_key, 0) >= settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS
        )

    def failed(self) -> None:
        window = settings.SIGN_IN_FAILURE_WINDOW_SECONDS
        _increment(self._user_key, window)
        _increment(self._address_key, window)

    def succeeded(self) -> None:
        """The person got in: their own count starts again (the address count stays)."""
        cache.delete(self._user_key)


# --- API ------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'20000/min' -> (20000, 60); None or '' -> no limit."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


class _FixedWindowThrottle(BaseThrottle):
    scope = ""

    def __init__(self) -> None:
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        self.rate = parse_rate(rates.get(self.scope))
        self._wait: float | None = None

    def ident(self, request: Request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        ident = self.ident(request)
        if ident is None:
            return True
        limit, period = self.rate
        now = time.time()
        window = int(now // period)
        count = _increment(f"throttle:{self.scope}:{ident}:{window}", period + 1)
        if count > limit:
            self._wait = (window + 1) * period - now
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


class ClientKeyThrottle(_FixedWindowThrottle):
    """Requests per service client (API key)."""

    scope = "client"

    def ident(self, request: Request) -> str | None:
        user = request.user
        return str(user.id) if is_key(user) else None


class UserThrottle(_FixedWindowThrottle):
    """Requests per signed-in person (session)."""

    scope = "user"

    def ident(self, request: Request) -> str | None:
        user = request.user
        if user is None or is_key(user) or not user.is_authenticated:
            return None
        return str(user.pk)
