"""A shorter way through DRF for the common request to a hot JSON POST.

DRF's dispatch wraps the request, instantiates its parsers, authenticators, negotiator,
permissions and throttles, and answers through a template response: for the single
POST /api/v1/recordings that cost about as much as two of its statements
(bench/ingest.py). `LeanJsonPost` answers the request that needs none of DRF's choices
without it: a JSON body (UTF-8) that parses to an object, asked for JSON or anything,
no query string, no Idempotency-Key, from an API key holding the view's scope. It
runs the view's own authenticator, scope and throttles (the same classes DRF would)
and renders with DRF's JSON renderer, so the answer is DRF's, byte for byte.

Any other request goes through DRF's dispatch untouched, before anything is spent
(the throttles) or written: a missing, invalid or insufficient key, a body DRF would
refuse, another content type, a replayable request. An error raised once the lean
way is taken (a throttle, validation, the write) is answered by DRF's own exception
handling and finalisation, as DRF's dispatch would have answered it.
"""

import codecs
import json
from collections.abc import Callable
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from compliance.clients.authentication import ApiKeyAuthentication, ClientPrincipal
from compliance.core.idempotency import HEADER as IDEMPOTENCY_HEADER
from compliance.edge.negotiation import JsonFirstNegotiation
from compliance.edge.permissions import ScopeRequired

JSON = "application/json"
_PLAIN_ACCEPT = frozenset({"*/*", JSON})
_IDEMPOTENCY_META = "HTTP_" + IDEMPOTENCY_HEADER.upper().replace("-", "_")
_RENDERER = JSONRenderer()


def _utf8(charset: str | None) -> bool:
    if charset is None:
        return True
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


def _object_as_drf_parses(body: bytes) -> dict[str, Any] | None:
    """The JSON object DRF's JSONParser reads from a UTF-8 `body` (NaN and the
    infinities refused, as DRF refuses them), None for anything else: DRF then
    answers it."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class LeanJsonPost(APIView):
    # An APIView whose common POST skips DRF's per-request machinery (see the module).
    # The subclass implements `lean_post(payload, user)`, the part of its `post` after
    # the body is parsed, returning the 2xx answer's data; `post` stays DRF's way.
    # (No docstring: drf-spectacular would describe the subclasses' operations by it.)

    lean = True  # tests switch it off to hear DRF's own answer
    lean_status: ClassVar[int] = 201
    lean_post: Callable[..., dict[str, Any]]

    def _lean_config(self) -> str | None:
        """The scope a lean POST needs, None when the view is set up otherwise than
        the lean way assumes (DRF then answers everything)."""
        if not (
            self.lean
            and self.authentication_classes[:1] == [ApiKeyAuthentication]
            and self.permission_classes == [ScopeRequired]
            and self.renderer_classes == [JSONRenderer]
            and self.content_negotiation_class is JsonFirstNegotiation
            and self.versioning_class is None
        ):
            return None
        return getattr(self, "required_scopes", {}).get("POST")

    def _lean_request(
        self, request: HttpRequest
    ) -> tuple[ApiKeyAuthentication, ClientPrincipal, dict[str, Any]] | None:
        """The caller and the body of a request the lean way can answer, None when
        DRF must. Spends and writes nothing (the key's look-up is cached)."""
        meta = request.META
        if (
            request.method != "POST"
            or request.content_type != JSON
            or meta.get("QUERY_STRING")
            or meta.get("HTTP_ACCEPT", "*/*") not in _PLAIN_ACCEPT
            or _IDEMPOTENCY_META in meta
            or not _utf8((request.content_params or {}).get("charset"))
        ):
            return None
        scope = self._lean_config()
        if scope is None:
            return None
        authenticator = ApiKeyAuthentication()
        try:
            found = authenticator.authenticate(request)
        except Exception:  # DRF answers it (401) its own way
            return None
        if found is None or not found[0].has_scope(scope):
            return None
        payload = _object_as_drf_parses(request.body)
        if payload is None:
            return None
        return authenticator, found[0], payload

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        lean = self._lean_request(request)
        if lean is None:
            return super().dispatch(request, *args, **kwargs)
        authenticator, principal, payload = lean
        # what DRF's authentication leaves on the request
        request.user, request.auth = principal, None  # type: ignore[assignment, attr-defined]
        try:
            self.check_throttles(request)  # type: ignore[arg-type]  # reads request.user only
            data = self.lean_post(payload, principal)
        except Exception as exc:  # answered as DRF's dispatch answers it
            return self._drf_answer(request, exc, (authenticator, principal), args, kwargs)
        response = HttpResponse(
            _RENDERER.render(data, JSON, {}), status=self.lean_status, content_type=JSON
        )
        for name, value in self.default_response_headers.items():
            response[name] = value
        return response

    def _drf_answer(
        self,
        request: HttpRequest,
        exc: Exception,
        authenticated: tuple[ApiKeyAuthentication, ClientPrincipal],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> HttpResponseBase:
        """DRF's dispatch from the point where `exc` was raised: its request as
        `initial` leaves it, the exception handled and the answer finalised."""
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        self.format_kwarg = self.get_format_suffix(**kwargs)
        drf_request.accepted_renderer, drf_request.accepted_media_type = (
            self.perform_content_negotiation(drf_request)
        )
        drf_request.version, drf_request.versioning_scheme = self.determine_version(
            drf_request, *args, **kwargs
        )
        authenticator, principal = authenticated
        drf_request._authenticator = authenticator  # type: ignore[attr-defined]
        drf_request.user = principal  # type: ignore[assignment]
        drf_request.auth = None
        response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response
