"""Throttles: failed sign-ins, and API requests per key and per user.

Both count in the default cache with one atomic increment per event. With the local
memory cache every process counts for itself; production sets CACHE_URL to a shared
cache so that the limits hold across processes.

The API throttles are a brake on a runaway client, not a security boundary
(docs/reliability.md, "Access"; DRF #8127): access is decided by authentication and scopes. They use
a fixed window and one counter per caller, because DRF's own throttles keep every
request's timestamp in the cache and rewrite that list on each request, which costs
more than the eligibility check they would guard.

A process takes the API's allowance from the shared counter in blocks, a hundredth of
the window's limit at a time (one request at a time for limits under 200), and spends
each block itself: one cache round trip per block, not two per request, which cost a
single POST /api/v1/recordings more CPU than its validation (bench/ingest.py). What a
process took and had not spent when the window ends is lost to the others: together
they are refused at most (processes - 1) hundredths of the limit early.
"""

import hashlib
import threading
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


def _increment(key: str, timeout: int, delta: int = 1) -> int:
    """Add `delta` to the counter at `key`, creating it to live `timeout` seconds;
    atomic in every Django cache backend. The expiry is set once, when the counter
    starts."""
    try:
        return cache.incr(key, delta)
    except ValueError:  # no such key (yet, or expired)
        if cache.add(key, delta, timeout=timeout):
            return delta
        return cache.incr(key, delta)


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

# A window's limit is taken from the shared counter in this many blocks (see above).
BLOCKS_PER_WINDOW = 100
# What this process has taken and not spent: (counter, limit) -> (window, requests left).
_blocks: dict[tuple[str, int], tuple[int, int]] = {}
_blocks_lock = threading.Lock()
# Callers this process keeps a block for, at most; beyond that all are forgotten (what
# they held is lost, which only refuses a little early).
MAX_BLOCKS = 10_000


def throttle_blocks_forget() -> None:
    """Forget the blocks this process holds (tests, with the cache they came from)."""
    with _blocks_lock:
        _blocks.clear()


def _spend(counter: str, window: int, limit: int, period: int) -> bool:
    """One request of `counter`'s allowance in `window`, from this process's block or
    from a new block taken from the shared counter; False once the limit is spent."""
    local = (counter, limit)
    with _blocks_lock:
        held = _blocks.get(local)
        if held is not None and held[0] == window and held[1] > 0:
            _blocks[local] = (window, held[1] - 1)
            return True
    block = max(1, limit // BLOCKS_PER_WINDOW)
    taken = _increment(f"{counter}:{window}", period + 1, block)  # this block included
    granted = min(block, limit - (taken - block))
    if granted <= 0:
        return False
    with _blocks_lock:
        if len(_blocks) >= MAX_BLOCKS:
            _blocks.clear()
        held = _blocks.get(local)
        left = held[1] if held is not None and held[0] == window else 0
        _blocks[local] = (window, left + granted - 1)
    return True


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
        if not _spend(f"throttle:{self.scope}:{ident}", window, limit, period):
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
