"""Headers every answer carries, and the request size limit.

Django's SecurityMiddleware already sends X-Content-Type-Options, Referrer-Policy,
Cross-Origin-Opener-Policy (and HSTS in production); XFrameOptionsMiddleware sends
X-Frame-Options. This adds a Content-Security-Policy and a Permissions-Policy, and
keeps API answers (personal data) out of caches.
"""

import ipaddress
import json
import re
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from auditlog import get_logentry_model
from auditlog.cid import set_cid
from auditlog.middleware import AuditlogMiddleware
from django.conf import settings
from django.db.models.signals import pre_save
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework.permissions import SAFE_METHODS

from compliance.core.errors import FieldError, FieldErrors, error_body
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
    fields: FieldErrors | None = None,
) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message, fields), status=status)
    return HttpResponse(message, status=status, content_type="text/plain")


NUL_CHARACTER = FieldError("nul_character", "Contains a NUL character.")
LONE_SURROGATE = FieldError(
    "lone_surrogate", "Contains a lone UTF-16 surrogate, which is not a Unicode character."
)
_ESCAPED_NUL = b"\\u0000"
# A lone surrogate can reach Python from JSON only as the escape \udXXX (raw UTF-8
# cannot encode one; Django decodes forms, queries and paths with replacement).
_ESCAPED_SURROGATES = (b"\\ud", b"\\uD")
# ...or as the bytes a careless encoder writes for one (ED A0..BF xx), which json.loads
# decodes with "surrogatepass" where DRF's parser refuses them.
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> FieldError | None:
    """Why `value` cannot be stored as text, or None. PostgreSQL refuses a NUL in any
    text parameter and psycopg cannot encode a lone surrogate to UTF-8: either would
    fail the query with a 500 instead of answering the 400 the input deserves."""
    if "\x00" in value:
        return NUL_CHARACTER
    if _SURROGATE.search(value):
        return LONE_SURROGATE
    return None


def printable(value: str) -> str:
    """`value` with NULs and lone surrogates escaped, safe to echo in an error body."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()


def _problem(value: Any) -> FieldError | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _problem(key) or _problem(item)
            if problem:
                return problem
    if isinstance(value, list):
        for item in value:
            problem = _problem(item)
            if problem:
                return problem
    return None


def _json_fields_with_bad_text(request: HttpRequest) -> dict[str, list[FieldError]] | None:
    """The top-level fields of a JSON body that hold a NUL or a lone surrogate ({} for
    a body that is not an object), None when there is none. request.body is read once
    and kept, so the view reads nothing twice; both can only arrive in JSON as
    escapes (or raw surrogate bytes), so only a body containing one is parsed here."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    if request.content_type != "application/json":
        return None
    body = request.body
    # What the views will read: DRF decodes by the charset parameter, json.loads (the
    # eligibility batch) by the bytes. The two disagree when the parameter lies (UTF-8
    # bytes declared UTF-16), so the body is checked as each reader would read it.
    declared = (request.content_params or {}).get("charset")
    detected = json.detect_encoding(body)
    for encoding in dict.fromkeys(e for e in (declared, detected) if e):
        fields = _bad_text_read_as(body, encoding)
        if fields is not None:
            return fields
    return None


def _bad_text_read_as(body: bytes, encoding: str) -> dict[str, list[FieldError]] | None:
    """_json_fields_with_bad_text for `body` read in `encoding`."""
    if encoding.lower().replace("-", "").replace("_", "") != "utf8":
        try:
            body = body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
        except (LookupError, UnicodeError):
            return None  # not readable so: that reader refuses it itself
    if (
        _ESCAPED_NUL not in body
        and not any(e in body for e in _ESCAPED_SURROGATES)
        and not (b"\xed" in body and _RAW_SURROGATE.search(body))
    ):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the view says so
    if isinstance(data, dict):
        fields = {}
        for key, value in data.items():
            problem = _problem(key) or _problem(value)
            if problem:
                fields[printable(str(key))] = [problem]
        return fields or None
    return {} if _problem(data) else None


def _cookies_without_bad_text(request: HttpRequest) -> None:
    """Drops every cookie whose name or value holds a NUL (Django unquotes the octal
    escape \\000 in a quoted cookie value): such a cookie is no session anyone was
    given, so the request goes on as signed out instead of failing the session lookup."""
    cookies = request.COOKIES
    if any("\x00" in name or "\x00" in value for name, value in cookies.items()):
        request.COOKIES = {
            name: value
            for name, value in cookies.items()
            if "\x00" not in name and "\x00" not in value
        }


# Cookies are dropped instead (the request goes on signed out); the credentials are
# judged by authentication, which never looks one up as text (a 401).
_HEADERS_CHECKED_ELSEWHERE = ("HTTP_COOKIE", "HTTP_AUTHORIZATION")


def _header_with_nul(request: HttpRequest) -> bool:
    return any(
        "\x00" in value
        for name, value in request.META.items()
        if name.startswith("HTTP_")
        and name not in _HEADERS_CHECKED_ELSEWHERE
        and isinstance(value, str)
    )


class RequestGuardMiddleware:
    """What no view should ever be handed, refused before any runs:

    - a body larger than REQUEST_MAX_BYTES, judged by its Content-Length before a
      byte of it is read or spooled to disk (413). Django's DATA_UPLOAD_MAX_MEMORY_SIZE
      still limits what is read into memory, MAX_AUDIO_BYTES the audio file itself;
    - a body sent with Transfer-Encoding (chunked), which Django, reading by the
      Content-Length, would take for an empty one (411 length_required);
    - a NUL character in the path, the query string or a header (400
      malformed_request), or a NUL or lone surrogate in a JSON body (400
      validation_error naming the fields): no field holds one, and PostgreSQL refuses
      them in any text parameter, so one reaching a lookup would be a 500. Form
      bodies are checked by the API's parsers (compliance/security/parsers.py) and by
      Django's form fields;
    - a cookie holding a NUL is dropped: the request is served as signed out;
    - an API OPTIONS request is answered 405 with the path's Allow header (see
      `_allowed_methods`).
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
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            # Django reads a body by its Content-Length: a chunked one, which has none,
            # would reach the view as an empty body (for a deletion request with a
            # range, a request for everything).
            return _refusal(
                request,
                411,
                "length_required",
                "Send the body with a Content-Length; a chunked body is not read.",
            )
        query = request.META.get("QUERY_STRING", "")
        if (
            "\x00" in request.path_info
            or "%00" in query
            or "\x00" in query
            or _header_with_nul(request)
        ):
            return _refusal(
                request, 400, "malformed_request", "The request contains a NUL character."
            )
        fields = _json_fields_with_bad_text(request)
        if fields is not None:
            return _refusal(
                request,
                400,
                "validation_error",
                "Text may not contain a NUL character or a lone surrogate.",
                fields,
            )
        if request.META.get("HTTP_COOKIE"):
            _cookies_without_bad_text(request)
        if request.method == "OPTIONS" and request.path.startswith("/api/"):
            allowed = _allowed_methods(request.path_info)
            if allowed is not None:
                response = _refusal(
                    request,
                    405,
                    "method_not_allowed",
                    "OPTIONS describes nothing here: the API is described at /api/schema/.",
                )
                response["Allow"] = ", ".join(allowed)
                return response
        return self.get_response(request)


def _allowed_methods(path: str) -> list[str] | None:
    """The methods the view at `path` answers, None for no such path (a 404 follows).

    An API OPTIONS request is answered here, the same for every caller: 405 with the
    path's Allow header. DRF would check the view's scopes first and refuse a key that
    lacks them with a 403 (no scope is needed to ask), ask an anonymous caller to
    authenticate, and otherwise describe the view, which the schema already does.
    """
    try:
        match = resolve(path)
    except Resolver404:
        return None
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    if view_class is None:
        return ["GET", "HEAD"]
    return [
        method.upper()
        for method in view_class.http_method_names
        if method not in ("trace", "options") and hasattr(view_class, method)
    ]


# The request whose history entries are being written, while an unsafe one runs.
_audited_request: ContextVar[HttpRequest | None] = ContextVar("audited_request", default=None)


class AuditContextMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, for the requests that can change something.

    It names the signed-in user and the client's address on the history entries a
    request writes. auditlog's own middleware works that out before every request and
    connects a signal receiver for the request's length (disconnecting it after also
    empties Django's receiver caches): per request that cost more than the eligibility
    query itself (bench/eligibility.py) and a tenth of a single POST
    /api/v1/recordings, which writes no history at all. Here one receiver
    (`name_the_request`, connected once when the app is ready) asks the request only
    when an entry is written, as the request is then. A GET, HEAD or OPTIONS request
    changes nothing here (RFC 9110's safe methods) and gets only its correlation id;
    should one ever write an audited model, its entry is still written, without the
    actor.
    """

    def __call__(self, request: HttpRequest) -> HttpResponse:
        set_cid(request)
        if request.method in SAFE_METHODS:
            return self.get_response(request)
        token = _audited_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _audited_request.reset(token)

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


def name_the_request(sender: type, instance: Any, **kwargs: Any) -> None:
    """pre_save of auditlog's LogEntry: the running request's user (when a person is
    signed in) and address, as auditlog's middleware would have set them."""
    request = _audited_request.get()
    if request is None:
        return
    actor = AuditContextMiddleware._get_actor(request)
    if actor is not None and instance.actor is None:
        instance.actor = actor
        instance.actor_email = getattr(actor, "email", None)
    instance.remote_addr = AuditContextMiddleware._get_remote_addr(request)
    instance.remote_port = AuditContextMiddleware._get_remote_port(request)


def audit_context_install() -> None:
    """SecurityConfig.ready(): connect `name_the_request`, once."""
    pre_save.connect(
        name_the_request, sender=get_logentry_model(), dispatch_uid="earshot.audit_context"
    )
