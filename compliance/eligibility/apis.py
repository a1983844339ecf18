"""Eligibility over HTTP: the hot path, asked thousands of times a second.

The two endpoints are declared as DRF views (so the schema, the docs and the URL
conf treat them like every other), but `dispatch` serves them without DRF's
request, negotiation, throttling and response machinery: per request that
machinery costs more than the PostgreSQL query itself (docs/reliability.md,
"Performance lessons"; bench/eligibility.py measures it). What they keep: the same
API-key check (with its in-process cache of verified keys), the same scope, the same
error envelope, one query per 1,000 ids, answers built from plain values. They only
read, so no CSRF or session is involved; DRF throttling is not a security boundary
(docs/reliability.md).
"""

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from compliance.clients.authentication import (
    ApiKeyAuthentication,
    ClientPrincipal,
    InvalidApiKey,
    principal_for_header,
)
from compliance.consent.models import Purpose
from compliance.core.countries import COUNTRY_FIELD_MESSAGE
from compliance.core.errors import (
    ApplicationError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    error_body,
)
from compliance.edge import parsing
from compliance.edge.callers import caller_of
from compliance.edge.permissions import ScopeRequired

from .selectors import NOT_FOUND, eligibility_check

SCOPE = "eligibility:read"


def _json(data: Any, status: int = 200) -> HttpResponse:
    response = HttpResponse(
        json.dumps(data, separators=(",", ":")), content_type="application/json", status=status
    )
    if status == 401:
        response["WWW-Authenticate"] = ApiKeyAuthentication.keyword
    return response


def _authorize(request: HttpRequest) -> ClientPrincipal:
    try:
        principal = principal_for_header(request.META.get("HTTP_AUTHORIZATION", ""))
    except InvalidApiKey:
        raise Unauthenticated("authentication_failed", "Invalid or revoked API key.") from None
    if principal is None:
        raise Unauthenticated("not_authenticated", "Authentication credentials were not provided.")
    caller_of(principal).require_scope(SCOPE)
    return principal


def _purpose(value: Any) -> Purpose:
    return parsing.choice(
        value,
        Purpose,
        field="purpose",
        code="unknown_purpose",
        message=f"purpose must be one of {', '.join(Purpose.values)}.",
    )


def _location(value: Any) -> str | None:
    return parsing.optional_country(
        value,
        field="reviewer_location",
        code="unknown_location",
        message="reviewer_location must be an ISO 3166-1 alpha-2 country code.",
        field_message=COUNTRY_FIELD_MESSAGE,
    )


class _HotPathApi(APIView):
    """Declared for DRF, served by `dispatch` (see the module docstring)."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ScopeRequired]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        method = request.method.lower() if request.method else ""
        handler = getattr(self, method, None) if method in ("get", "post") else None
        if handler is None:
            return _json(
                error_body("method_not_allowed", f'Method "{request.method}" not allowed.'), 405
            )
        try:
            _authorize(request)
            return handler(request, *args, **kwargs)
        except ApplicationError as error:
            return _json(error.body(), error.status_code)


_Result = inline_serializer(
    "EligibilityResult",
    {
        "recording": serializers.CharField(),
        "purpose": serializers.CharField(),
        "eligible": serializers.BooleanField(),
        "reasons": serializers.ListField(child=serializers.CharField()),
    },
)


class EligibilityApi(_HotPathApi):
    required_scopes = {"GET": SCOPE}

    @extend_schema(
        parameters=[
            OpenApiParameter("purpose", str, enum=Purpose.values, required=True),
            OpenApiParameter("reviewer_location", str, required=False),
        ],
        responses={200: _Result},
        operation_id="eligibility_read",
    )
    def get(self, request: HttpRequest, recording_id: str) -> HttpResponse:
        purpose = _purpose(request.GET.get("purpose"))
        location = _location(request.GET.get("reviewer_location"))
        [(recording, eligible, reasons)] = eligibility_check(
            external_ids=[recording_id], purpose=purpose, reviewer_location=location
        )
        if reasons == [NOT_FOUND]:
            raise NotFound("Recording")
        return _json(
            {"recording": recording, "purpose": purpose, "eligible": eligible, "reasons": reasons}
        )


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            "unsupported_media_type",
            f'Unsupported media type "{request.content_type}"; send application/json.',
        )
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        raise PayloadTooLarge("payload_too_large", "The request body is too large.") from None
    except (ValueError, RecursionError):
        raise ApplicationError("malformed_request", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApplicationError("validation_error", "The body must be a JSON object.")
    return body


_BATCH_FIELDS = frozenset({"purpose", "recordings", "reviewer_location"})


class EligibilityBatchApi(_HotPathApi):
    required_scopes = {"POST": SCOPE}

    @extend_schema(
        # JSON only: dispatch answers any other body 415 (see _json_body)
        request={
            "application/json": inline_serializer(
                "EligibilityBatchInput",
                {
                    "purpose": serializers.ChoiceField(choices=Purpose.values),
                    "recordings": serializers.ListField(
                        child=serializers.CharField(max_length=128),
                        min_length=1,
                        max_length=10_000,
                    ),
                    "reviewer_location": serializers.CharField(required=False),
                },
            )
        },
        responses={
            200: inline_serializer(
                "EligibilityBatchOutput",
                {
                    "purpose": serializers.CharField(),
                    "results": inline_serializer(
                        "EligibilityBatchResult",
                        {
                            "recording": serializers.CharField(),
                            "eligible": serializers.BooleanField(),
                            "reasons": serializers.ListField(child=serializers.CharField()),
                        },
                        many=True,
                    ),
                },
            )
        },
        operation_id="eligibility_batch",
    )
    def post(self, request: HttpRequest) -> HttpResponse:
        body = _json_body(request)
        parsing.unknown_fields(body, _BATCH_FIELDS)
        purpose = _purpose(body.get("purpose"))
        location = _location(body.get("reviewer_location"))
        ids = parsing.id_list(
            body.get("recordings"), field="recordings", limit=settings.ELIGIBILITY_BATCH_LIMIT
        )
        results = eligibility_check(external_ids=ids, purpose=purpose, reviewer_location=location)
        return HttpResponse(_batch_json(purpose, results), content_type="application/json")


def _batch_json(purpose: str, results: list[tuple[str, bool, list[str]]]) -> str:
    """The batch answer, exactly as `json.dumps` would write it, built from pieces: a
    dict per answer made a 10,000-id batch's peak memory half as large again, and the
    worker keeps its peak (bench/eligibility.py measures its resident memory)."""
    reasons_json: dict[tuple[str, ...], str] = {}

    def answer(recording: str, eligible: bool, reasons: list[str]) -> str:
        key = tuple(reasons)
        if key not in reasons_json:
            reasons_json[key] = json.dumps(reasons, separators=(",", ":"))
        verdict = "true" if eligible else "false"
        return (
            f'{{"recording":{json.dumps(recording)},"eligible":{verdict},'
            f'"reasons":{reasons_json[key]}}}'
        )

    return "".join(
        (
            f'{{"purpose":{json.dumps(purpose)},"results":[',
            ",".join(answer(*result) for result in results),
            "]}",
        )
    )
