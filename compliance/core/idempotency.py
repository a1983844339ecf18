"""`Idempotency-Key` on the POSTs that create something: a client that lost an answer
(a timeout, a dropped connection) retries under the same key and gets the first
answer again, and nothing is created twice.

- The key is kept per caller (service client or signed-in user) for
  IDEMPOTENCY_KEY_SECONDS (24 h); `idempotency_keys_cleanup` (beat) removes older ones,
  and an older key still present counts as unused.
- Same key, same method, path and body (sha256): the stored answer, byte for byte, with
  `Idempotent-Replayed: true`. Same key, another request: 422
  `idempotency_key_reused`. Same key while the first request still runs: 409
  `idempotency_key_in_flight`.
- Only a 2xx answer is stored, in the transaction of the request's own writes, so an
  answer is stored exactly when its change committed. A 4xx here commits nothing
  (bad input is refused before anything is written), so the key is freed and a retry
  runs again and may succeed once the state changed (the profile now exists); a 5xx or
  a rollback leaves nothing to replay either. Stripe stores 4xx answers too; ours carry
  no committed effect worth pinning.

Transactions and locks. The key row is inserted and committed on its own before the
request runs: a second request with the key then conflicts on the unique (caller, key)
and sees it in flight. The request's writes run in one transaction that first locks its
key row (so the key row comes before the whole codebase's lock order: account -> profile
-> consent lock -> consent state -> recording -> artefact -> review item -> ledger
append), and last writes the answer into it (a view that stores a file before its rows,
as the recording ingest does, can thus leave a file whose rows rolled back; the storage
sweep deletes such files). An attempt that crashed holds its key only until
`locked_until` (IDEMPOTENCY_IN_FLIGHT_SECONDS); then the next attempt takes the row over
with a conditional UPDATE on the old token, under NOWAIT, so of two retries one wins.
"""

import functools
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request

from .errors import ApplicationError, Conflict, Unprocessable, field_error
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
CLEANUP_BATCH = 10_000
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's answer to NOWAIT on a row another holds

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Up to 255 printable ASCII characters, unique per request you mean (a UUID). "
        "Retrying with the same key and body replays the first 2xx answer, kept 24 hours, "
        "and creates nothing; the same key with another body is a 422 "
        "`idempotency_key_reused`; while the first is still running, a 409 "
        "`idempotency_key_in_flight`. Answers other than 2xx are not kept."
    ),
)


@dataclass(frozen=True)
class _Claim:
    pk: int
    token: str


def _key_of(request: Request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    printable = all(" " <= c <= "~" for c in raw)
    if not 0 < len(raw) <= MAX_KEY_LENGTH or not printable or not raw.strip():
        raise ApplicationError(
            "invalid_idempotency_key",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            fields=field_error(
                HEADER, "invalid", f"Must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."
            ),
        )
    return raw


def _caller_of(user: Any) -> str | None:
    if getattr(user, "is_client", False):
        return f"client:{user.id}"
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return None


def _fingerprint(request: Request) -> str:
    """sha256 of the method, the path with its query and the parsed body: JSON in a
    canonical form (key order and spacing do not matter), form fields and files by
    content."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.get_full_path()}\n".encode())
    data = request.data
    if hasattr(data, "lists"):
        for name, values in sorted(data.lists(), key=lambda item: item[0]):
            for value in values:
                digest.update(json.dumps(name).encode())
                if hasattr(value, "chunks"):
                    digest.update(f" file {json.dumps(value.name)} {value.size}\n".encode())
                    for chunk in value.chunks():
                        digest.update(chunk)
                    value.seek(0)
                else:
                    digest.update(f" {json.dumps(value)}\n".encode())
    else:
        try:
            canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        except (RecursionError, ValueError):
            raise ApplicationError(
                "malformed_request", "The request body is nested too deeply."
            ) from None
        digest.update(canonical.encode())
    return digest.hexdigest()


def _claim(*, caller: str, key: str, fingerprint: str) -> _Claim | IdempotencyKey:
    """The key for this attempt (a claim), or the finished row whose answer to replay.
    Each step commits on its own, so another request sees the key at once."""
    row: IdempotencyKey | None
    for _ in range(3):
        now = timezone.now()
        token = secrets.token_hex(16)
        lease = now + timedelta(seconds=settings.IDEMPOTENCY_IN_FLIGHT_SECONDS)
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    caller=caller,
                    key=key,
                    fingerprint=fingerprint,
                    created_at=now,
                    locked_until=lease,
                    token=token,
                )
            return _Claim(pk=row.pk, token=token)
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(caller=caller, key=key).first()
        if row is None:
            continue  # freed between the insert and the read: insert again
        expired = row.created_at <= now - timedelta(seconds=settings.IDEMPOTENCY_KEY_SECONDS)
        if not expired:
            if row.fingerprint != fingerprint:
                raise Unprocessable(
                    "idempotency_key_reused",
                    f"This {HEADER} was used for another request; use a new key.",
                )
            if row.locked_until is None:
                return row
            if row.locked_until > now:
                raise _in_flight()
        # past its lifetime, or its attempt died: take it over unless someone else did
        if _take_over(row=row, fingerprint=fingerprint, token=token, now=now, lease=lease):
            return _Claim(pk=row.pk, token=token)
    raise _in_flight()


def _take_over(
    *, row: IdempotencyKey, fingerprint: str, token: str, now: datetime, lease: datetime
) -> bool:
    try:
        with transaction.atomic():
            # Only the row as it was read: an attempt that finished since then (same
            # token, its lease cleared) keeps its answer. NOWAIT: a lock held on the row
            # means its attempt is alive (its request's transaction holds it): in flight.
            as_read = IdempotencyKey.objects.filter(
                pk=row.pk, token=row.token, locked_until=row.locked_until
            )
            if not list(as_read.select_for_update(nowait=True).values_list("pk", flat=True)):
                return False
            return bool(
                as_read.update(
                    fingerprint=fingerprint,
                    created_at=now,
                    locked_until=lease,
                    token=token,
                    response_status=None,
                    response_body=None,
                    response_content_type="",
                )
            )
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise _in_flight() from None


def _in_flight() -> Conflict:
    return Conflict(
        "idempotency_key_in_flight",
        f"A request with this {HEADER} is still running; retry when it has answered.",
    )


def _replay(row: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(
        bytes(row.response_body or b""),
        status=row.response_status,
        content_type=row.response_content_type or None,
    )
    response["Idempotent-Replayed"] = "true"
    return response


def _release(claim: _Claim) -> None:
    IdempotencyKey.objects.filter(
        pk=claim.pk, token=claim.token, locked_until__isnull=False
    ).delete()


def idempotent(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an APIView's `post` that creates something; see the module docstring.
    Authentication, permissions and throttles have run when `post` is called, so a
    refused caller never touches a key."""

    @functools.wraps(handler)
    def post(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        key = _key_of(request)
        caller = _caller_of(request.user)
        if key is None or caller is None:
            return handler(view, request, *args, **kwargs)
        claimed = _claim(caller=caller, key=key, fingerprint=_fingerprint(request))
        if isinstance(claimed, IdempotencyKey):
            return _replay(claimed)
        stored = False
        try:
            with transaction.atomic():
                # Lock order: this key row before everything the request locks.
                mine = IdempotencyKey.objects.select_for_update().filter(
                    pk=claimed.pk, token=claimed.token
                )
                if not list(mine.values_list("pk", flat=True)):
                    raise _in_flight()  # our lease ran out and a retry took the key
                response = handler(view, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    response = view.finalize_response(request, response, *args, **kwargs)
                    if hasattr(response, "render"):
                        response.render()
                    mine.update(
                        locked_until=None,
                        response_status=response.status_code,
                        response_body=bytes(response.content),
                        response_content_type=response.get("Content-Type", ""),
                    )
                    stored = True
        finally:
            if not stored:
                _release(claimed)
        return response

    return extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER])(post)


def idempotency_keys_cleanup(*, now: datetime | None = None, batch: int = CLEANUP_BATCH) -> int:
    """Delete keys past their lifetime, in batches; how many. A key whose attempt
    still holds its lease is left to it, whatever its age."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IDEMPOTENCY_KEY_SECONDS)
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                IdempotencyKey.objects.filter(created_at__lt=cutoff)
                .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
                .order_by("created_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch]
            )
            deleted, _ = IdempotencyKey.objects.filter(pk__in=ids).delete()
        total += deleted
        if len(ids) < batch:
            return total


def document_idempotency(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular hook: the 409 and 422 answers of operations that take the header
    (the error hook after this one gives them the error envelope)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            parameters = operation.get("parameters", [])
            if not any(p.get("in") == "header" and p.get("name") == HEADER for p in parameters):
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "409", {"description": f"A request with this {HEADER} is still running"}
            )
            responses.setdefault(
                "422", {"description": f"This {HEADER} was used for another request"}
            )
    return result
