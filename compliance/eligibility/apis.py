"""Eligibility over HTTP: the hot path, asked thousands of times a second.

These views skip serializers for their answers (plain dicts), read the facts in one
query, and authenticate with the in-process key cache; PERFORMANCE.md shows where the
time otherwise goes.
"""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.clients.authentication import ApiKeyAuthentication
from compliance.clients.permissions import ScopeRequired
from compliance.consent.models import Purpose
from compliance.core.countries import is_country
from compliance.core.errors import ApplicationError, NotFound

from .selectors import eligibility_check


def _purpose(value: Any) -> str:
    if value not in Purpose.values:
        raise ApplicationError(
            "unknown_purpose",
            f"purpose must be one of {', '.join(Purpose.values)}.",
            fields={"purpose": ["unknown" if value else "required"]},
        )
    return value


def _location(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_country(value):
        raise ApplicationError(
            "unknown_location",
            "reviewer_location must be an ISO 3166-1 alpha-2 country code.",
            fields={"reviewer_location": ["unknown"]},
        )
    return value


_Result = inline_serializer(
    "EligibilityResult",
    {
        "recording": serializers.CharField(),
        "purpose": serializers.CharField(),
        "eligible": serializers.BooleanField(),
        "reasons": serializers.ListField(child=serializers.CharField()),
    },
)


class EligibilityApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ScopeRequired]
    required_scopes = {"GET": "eligibility:read"}

    @extend_schema(
        parameters=[
            OpenApiParameter("purpose", str, enum=Purpose.values, required=True),
            OpenApiParameter("reviewer_location", str, required=False),
        ],
        responses={200: _Result},
        operation_id="eligibility_read",
    )
    def get(self, request: Request, recording_id: str) -> Response:
        purpose = _purpose(request.query_params.get("purpose"))
        location = _location(request.query_params.get("reviewer_location"))
        [(recording, eligible, reasons)] = eligibility_check(
            external_ids=[recording_id], purpose=purpose, reviewer_location=location
        )
        if reasons == ["not_found"]:
            raise NotFound("Recording")
        return Response(
            {"recording": recording, "purpose": purpose, "eligible": eligible, "reasons": reasons}
        )


class EligibilityBatchApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "eligibility:read"}

    @extend_schema(
        request=inline_serializer(
            "EligibilityBatchInput",
            {
                "purpose": serializers.ChoiceField(choices=Purpose.values),
                "recordings": serializers.ListField(
                    child=serializers.CharField(), max_length=10_000
                ),
                "reviewer_location": serializers.CharField(required=False),
            },
        ),
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
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ApplicationError("validation_error", "The body must be a JSON object.")
        purpose = _purpose(body.get("purpose"))
        location = _location(body.get("reviewer_location"))
        ids = body.get("recordings")
        limit = settings.ELIGIBILITY_BATCH_LIMIT
        if not isinstance(ids, list) or not ids:
            raise ApplicationError(
                "validation_error",
                "recordings must be a non-empty list of recording ids.",
                fields={"recordings": ["required" if ids is None else "invalid"]},
            )
        if len(ids) > limit:
            raise ApplicationError(
                "batch_too_large",
                f"At most {limit} recordings per batch; got {len(ids)}.",
                fields={"recordings": [f"at most {limit}"]},
            )
        if not all(isinstance(i, str) and 0 < len(i) <= 128 for i in ids):
            raise ApplicationError(
                "validation_error",
                "Every recording id must be a string of 1 to 128 characters.",
                fields={"recordings": ["invalid id"]},
            )
        results = eligibility_check(external_ids=ids, purpose=purpose, reviewer_location=location)
        return Response(
            {
                "purpose": purpose,
                "results": [
                    {"recording": r, "eligible": e, "reasons": reasons} for r, e, reasons in results
                ],
            }
        )


class BenchmarkFloorApi(APIView):
    """The floor that bench/eligibility.py compares against: DRF, the same
    authentication and permission as EligibilityApi, a constant answer, no query.
    Mounted only when BENCHMARK_ENDPOINTS is set."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ScopeRequired]
    required_scopes = {"GET": "eligibility:read"}
    schema = None

    def get(self, request: Request) -> Response:
        return Response(
            {"recording": "floor", "purpose": "human_review", "eligible": True, "reasons": []}
        )
