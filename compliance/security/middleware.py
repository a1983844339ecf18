"""Headers every answer carries, and the request size limit.

Django's SecurityMiddleware already sends X-Content-Type-Options, Referrer-Policy,
Cross-Origin-Opener-Policy (and HSTS in production); XFrameOptionsMiddleware sends
X-Frame-Options. This adds a Content-Security-Policy and a Permissions-Policy, and
keeps API answers (personal data) out of caches.
"""

import ipaddress
import json
import secrets
from collections.abc import Callable
from typing import Any

from auditlog.cid import set_cid
from auditlog.middleware import AuditlogMiddleware
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.permissions import SAFE_METHODS

from compliance.core.errors import error_body
from compliance.security.throttling import client_address

# Pages: scripts only from us or carrying this response's nonce (request.csp_nonce);
# inline styles are allowed, as they cannot run code.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The Swagger UI (drf-spectacular's template) starts itself with an inline script
# that carries no nonce; that page shows no personal data.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Anything that is not a page (JSON, audio, metrics) runs nothing and embeds nothing.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
DOCS_PATH = "/api/docs/"


class _Nonce:
    """A script nonce, made when a page first asks for it (`{{ request.csp_nonce }}`)
    and not at all for the API's answers."""

    _value = ""

    def __str__(self) -> str:
        if not self._value:
            self._value = secrets.token_urlsafe(16)
        return self._value


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = _Nonce()
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        page = response.get("Content-Type", "").startswith("text/html")
        if "Content-Security-Policy" not in response:
            if not page:
                policy = DATA_POLICY
            elif request.path == DOCS_PATH:
                policy = DOCS_POLICY
            else:
                policy = PAGE_POLICY.format(nonce=str(nonce))
            response["Content-Security-Policy"] = policy
        if page:  # a policy for documents and what they embed
            response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        if request.path.startswith("/api/v1/") and "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        return response


def _refusal(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message, fields), status=status)
    return HttpResponse(message, status=status, content_type="text/plain")


NUL_MESSAGE = "contains a NUL character"
_ESCAPED_NUL = b"\\u0000"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _json_fields_with_nul(request: HttpRequest) -> dict[str, list[str]] | None:
    """The top-level fields of a JSON body that hold a NUL ({} for a body that is not
    an object), None when there is none. request.body is read once and kept, so the
    view reads nothing twice; a NUL can only arrive in JSON as the escape \\u0000,
    so only a body containing that is parsed here."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    if request.content_type != "application/json":
        return None
    body = request.body
    if _ESCAPED_NUL not in body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the view says so
    if isinstance(data, dict):
        fields = {
            str(key).replace("\x00", "\\x00"): [NUL_MESSAGE]
            for key, value in data.items()
            if _has_nul(key) or _has_nul(value)
        }
        return fields or None
    return {} if _has_nul(data) else None


class RequestGuardMiddleware:
    """What no view should ever be handed, refused before any runs:

    - a body larger than REQUEST_MAX_BYTES, judged by its Content-Length before a
      byte of it is read or spooled to disk (413). Django's DATA_UPLOAD_MAX_MEMORY_SIZE
      still limits what is read into memory, MAX_AUDIO_BYTES the audio file itself;
    - a NUL character in the path or query string (400 malformed_request) or in a
      JSON body (400 validation_error naming the fields): no field holds one, and
      PostgreSQL refuses it in any text parameter, so a NUL reaching a lookup would be
      a 500. Form bodies are checked by the API's parsers
      (compliance/security/parsers.py).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.REQUEST_MAX_BYTES:
            return _refusal(
                request, 413, "payload_too_large", "The request body exceeds the size limit."
            )
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            return _refusal(
                request, 400, "malformed_request", "The request contains a NUL character."
            )
        fields = _json_fields_with_nul(request)
        if fields is not None:
            return _refusal(
                request,
                400,
                "validation_error",
                "Text may not contain a NUL character.",
                fields,
            )
        return self.get_response(request)


class AuditContextMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, for the requests that can change something.

    It names the signed-in user and the client's address on the history entries a
    request writes, by connecting a signal receiver for the request's length and
    disconnecting it after (which also empties Django's receiver caches). Per request
    that cost more than the eligibility query itself (bench/eligibility.py), and a GET,
    HEAD or OPTIONS request changes nothing here (RFC 9110's safe methods), so those
    only get their correlation id. Should one ever write an audited model, its entry
    is still written, without the actor.
    """

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in SAFE_METHODS:
            set_cid(request)
            return self.get_response(request)
        return super().__call__(request)

    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        """The address the throttles see (TRUSTED_PROXY_HOPS), not auditlog's leftmost
        X-Forwarded-For entry, which any client can write; None if it is no address
        (the column is an inet: a bad one would fail the request's write)."""
        try:
            return str(ipaddress.ip_address(client_address(request)))
        except ValueError:
            return None

    @staticmethod
    def _get_remote_port(request: HttpRequest) -> int | None:
        """X-Forwarded-Port only behind trusted proxies, and only a real port."""
        if settings.TRUSTED_PROXY_HOPS < 1:
            return None
        port = request.META.get("HTTP_X_FORWARDED_PORT", "")
        return int(port) if port.isdigit() and int(port) <= 65535 else None
