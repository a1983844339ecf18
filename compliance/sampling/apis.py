"""Sampling over HTTP: the pipeline draws samples; reviewers fetch and annotate their items.

The draw answers up to 1,000 items, so its output is built as plain dicts, not through
a serializer (docs/reliability.md, "Performance lessons": the time goes to Python, not
to PostgreSQL).
"""

import re
from datetime import UTC, datetime
from typing import Any

from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.accounts.selectors import profile_for_caller
from compliance.clients.authentication import ApiKeyAuthentication
from compliance.consent.models import Purpose
from compliance.consent.reports import consent_rates_over_time
from compliance.core.errors import (
    ApplicationError,
    PermissionDenied,
    Unauthenticated,
    field_error,
)
from compliance.core.fields import AwareDateTimeField, StrictCharField
from compliance.core.idempotency import idempotent
from compliance.edge import parsing
from compliance.edge.callers import actor_of
from compliance.edge.permissions import ScopeRequired, find_for_caller, scope_or_officer

from .history import REVIEWS_DEFAULT_LIMIT, REVIEWS_MAX_LIMIT, profile_reviews
from .links import (
    LinkExpired,
    LinkInvalid,
    audio_link_verify,
    audio_links_sign,
    audio_path,
    link_expiry,
)
from .reports import DEFAULT_DAYS, reviews_by_location
from .services import (
    ANNOTATION_NEEDED,
    COUNTRY_NEEDED,
    SAMPLE_SIZE_LIMIT,
    Caller,
    SampleRequest,
    review_item_annotate,
    review_item_audio_open,
    sample_draw,
)

_SAMPLE_FIELDS = {
    "purpose",
    "size",
    "reviewer_location",
    "reviewer",
    "jurisdiction",
    "recorded_from",
    "recorded_to",
}


class SampleDrawInput(parsing.StrictInput):
    """For the schema; the view checks types strictly itself (a guessed value is a
    wrong value: "12" is not a size)."""

    purpose = serializers.ChoiceField(choices=Purpose.values)
    size = serializers.IntegerField(min_value=1, max_value=SAMPLE_SIZE_LIMIT)
    reviewer_location = StrictCharField(
        required=False,
        help_text="ISO 3166-1 alpha-2. Required, unless `reviewer` is given: then it"
        " defaults to that reviewer's location.",
    )
    reviewer = StrictCharField(
        required=False,
        help_text="A reviewer's username: the items are assigned to them and count to their "
        "daily quota. Without one, an item is reachable only through its link.",
    )
    jurisdiction = StrictCharField(required=False, help_text="only recordings of this country")
    recorded_from = AwareDateTimeField(required=False, help_text="recorded at or after")
    recorded_to = AwareDateTimeField(required=False, help_text="recorded before")


class SampleItemOutput(serializers.Serializer):
    id = serializers.CharField()
    audio_url = serializers.URLField()
    transcript = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField()
    link_expires_at = serializers.DateTimeField()


class SampleDrawOutput(serializers.Serializer):
    purpose = serializers.CharField()
    reviewer_location = serializers.CharField()
    items = SampleItemOutput(many=True)


def _iso(value: datetime) -> str:
    """As DRF renders a time: ISO 8601, UTC as Z."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class SampleDrawApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "samples:draw"}

    @extend_schema(
        request=SampleDrawInput,
        responses={201: SampleDrawOutput},
        operation_id="samples_draw",
        description="A uniformly random sample of eligible recordings, each handed out "
        "once, as review items. No profile, account or recording identifier is answered.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = parsing.json_object(request.data)
        parsing.unknown_fields(body, _SAMPLE_FIELDS)
        draw = sample_draw(
            request=SampleRequest(
                purpose=parsing.choice(
                    body.get("purpose"),
                    Purpose,
                    field="purpose",
                    code="unknown_purpose",
                    message=f"Unknown purpose; one of: {', '.join(Purpose.values)}.",
                ),
                size=parsing.whole_number(
                    body.get("size"), field="size", minimum=1, message="A whole number from 1."
                ),
                reviewer_location=parsing.optional_country(
                    body.get("reviewer_location"),
                    field="reviewer_location",
                    code="unknown_location",
                    message=COUNTRY_NEEDED,
                ),
                reviewer=parsing.optional_text(
                    body.get("reviewer"),
                    field="reviewer",
                    code="unknown_reviewer",
                    message="No active reviewer of that name.",
                ),
                jurisdiction=parsing.optional_country(
                    body.get("jurisdiction"),
                    field="jurisdiction",
                    code="unknown_jurisdiction",
                    message=COUNTRY_NEEDED,
                ),
                recorded_from=parsing.optional_time(body, "recorded_from"),
                recorded_to=parsing.optional_time(body, "recorded_to"),
            ),
            actor=actor_of(request.user),
        )
        link_expires_at = link_expiry()
        base = request.build_absolute_uri("/")[:-1]
        times: dict[datetime, tuple[str, str]] = {}  # a draw's items share their expiry
        sigs = audio_links_sign(item.id for item in draw.items)
        items = []
        for item in draw.items:
            expiry = times.get(item.expires_at)
            if expiry is None:
                expiry = times[item.expires_at] = (
                    _iso(item.expires_at),
                    _iso(min(link_expires_at, item.expires_at)),
                )
            items.append(
                {
                    "id": item.id,
                    "audio_url": f"{base}{audio_path(item.id)}?sig={sigs[item.id]}",
                    "transcript": item.transcript,
                    "expires_at": expiry[0],
                    "link_expires_at": expiry[1],
                }
            )
        return Response(
            {"purpose": draw.purpose, "reviewer_location": draw.reviewer_location, "items": items},
            status=status.HTTP_201_CREATED,
        )


class _ReviewItemApi(APIView):
    """Reached by the assigned reviewer (session) or by whoever holds the item's signed
    link (`?sig=`). Anyone else learns nothing, not even whether the item exists."""

    authentication_classes = [SessionAuthentication]
    permission_classes: list[Any] = []
    # A 401 names the ways in (RFC 9110 wants a challenge with every 401): neither is a
    # registered scheme, but each is what a reviewer's client can do.
    CHALLENGE = 'Session realm="earshot", SignedLink realm="earshot"'

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = self.CHALLENGE
        return response

    def caller(self, request: Request, item_id: str) -> Caller:
        user = request.user
        signed_in = user is not None and user.is_authenticated
        sig = request.query_params.get("sig")
        link_problem: ApplicationError | None = None
        if sig is not None:
            try:
                audio_link_verify(item_id, sig)
                return Caller(
                    user=user, via_link=True, actor=actor_of(user) if signed_in else "link"
                )
            except LinkExpired:
                link_problem = PermissionDenied(
                    "link_expired", "This link has expired; ask for a new one."
                )
            except LinkInvalid:
                link_problem = PermissionDenied("invalid_link", "This link is not valid.")
        if signed_in:
            return Caller(user=user, via_link=False, actor=actor_of(user))
        if link_problem is not None:
            raise link_problem
        raise Unauthenticated("not_authenticated", "Sign in, or use the item's signed link.")


class ReviewItemAudioApi(_ReviewItemApi):
    @extend_schema(
        parameters=[OpenApiParameter("sig", str, required=False, description="from audio_url")],
        responses={
            (200, "audio/*"): OpenApiResponse(
                response=OpenApiTypes.BINARY,
                description="the clip, in its own media type (audio/x-wav, audio/mpeg, ...)",
            ),
            401: OpenApiResponse(description="`not_authenticated`: no session and no link"),
            403: OpenApiResponse(
                description="`invalid_link` or `link_expired`, and no reviewer's session"
            ),
            404: OpenApiResponse(description="no such item for this caller"),
            410: OpenApiResponse(description="revoked, expired or done"),
        },
        operation_id="review_item_audio",
    )
    def get(self, request: Request, item_id: str) -> FileResponse:
        clip = review_item_audio_open(item_id=item_id, caller=self.caller(request, item_id))
        response = FileResponse(clip.file, filename=clip.name)
        response["Cache-Control"] = "no-store, private"
        return response


class ReviewItemAnnotationApi(_ReviewItemApi):
    class AnnotationInput(parsing.StrictInput):
        text = StrictCharField(max_length=100_000)

    class AnnotationOutput(serializers.Serializer):
        item = serializers.CharField()
        state = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        parameters=[OpenApiParameter("sig", str, required=False, description="from audio_url")],
        request=AnnotationInput,
        responses={201: AnnotationOutput},
        operation_id="review_item_annotate",
    )
    def post(self, request: Request, item_id: str) -> Response:
        caller = self.caller(request, item_id)
        body = request.data
        if isinstance(body, dict):
            parsing.unknown_fields(body, self.AnnotationInput().fields)
        text = parsing.text(
            body.get("text") if isinstance(body, dict) else None,
            field="text",
            message=ANNOTATION_NEEDED,
        )
        artefact = review_item_annotate(item_id=item_id, text=text, caller=caller)
        return Response(
            {"item": item_id, "state": "done", "created_at": artefact.created_at},
            status=status.HTTP_201_CREATED,
        )


# --- the consent report ------------------------------------------------------------------
# Served here, not by the consent app, because it joins consent rates with the reviews
# that sampling owns, and sampling sits above consent (it may import consent, never the
# reverse).

REPORT_DAYS_MIN = 1
REPORT_DAYS_MAX = 366
_DAYS = re.compile(r"[0-9]{1,6}")


def _report_days(raw: str | None) -> int:
    """The report's period in days: an integer from 1 to 366, 30 when not given."""
    if raw is None:
        return DEFAULT_DAYS
    if not _DAYS.fullmatch(raw):
        raise ApplicationError(
            "invalid_days",
            "days must be a whole number of days.",
            fields=field_error("days", "not_an_integer", "Must be a whole number of days."),
        )
    days = int(raw)
    if not REPORT_DAYS_MIN <= days <= REPORT_DAYS_MAX:
        raise ApplicationError(
            "invalid_days",
            f"days must be from {REPORT_DAYS_MIN} to {REPORT_DAYS_MAX}.",
            fields=field_error(
                "days", "out_of_range", f"Must be from {REPORT_DAYS_MIN} to {REPORT_DAYS_MAX}."
            ),
        )
    return days


class ConsentRatePointOutput(serializers.Serializer):
    date = serializers.DateField()
    profiles = serializers.IntegerField(help_text="Profiles counted at the end of the day.")
    granted = serializers.IntegerField(help_text="Of those, how many allowed the purpose.")
    rate = serializers.FloatField(
        allow_null=True, help_text="granted / profiles, from 0 to 1; null without profiles."
    )


class ConsentRateSeriesOutput(serializers.Serializer):
    jurisdiction = serializers.CharField()
    purpose = serializers.CharField()
    points = ConsentRatePointOutput(many=True)


class ReviewsAtLocationOutput(serializers.Serializer):
    reviewer_location = serializers.CharField()
    selected = serializers.IntegerField(help_text="Review items drawn for the location.")
    heard = serializers.IntegerField(help_text="Of those, whose audio a reviewer fetched.")
    annotated = serializers.IntegerField()
    revoked = serializers.IntegerField()
    cross_border = serializers.IntegerField(
        help_text="Heard by a reviewer outside the recording's jurisdiction."
    )


class ConsentReportOutput(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    days = serializers.IntegerField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    consent_rates = ConsentRateSeriesOutput(many=True)
    reviews_by_location = ReviewsAtLocationOutput(many=True)


class ConsentReportApi(APIView):
    permission_classes = [scope_or_officer({"GET": "reports:read"})]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days",
                {"type": "integer", "minimum": REPORT_DAYS_MIN, "maximum": REPORT_DAYS_MAX},
                OpenApiParameter.QUERY,
                required=False,
                description=f"The period: the last `days` calendar days, today included "
                f"({REPORT_DAYS_MIN} to {REPORT_DAYS_MAX}, default {DEFAULT_DAYS}). Anything "
                "else is a 400 `invalid_days`.",
            )
        ],
        responses={200: ConsentReportOutput},
        operation_id="reports_consent",
        description="Per jurisdiction and purpose, the share of voice profiles that allow "
        "the purpose at the end of each day (children's profiles never count for "
        "human_review); and the review items drawn in the period, by reviewer location.",
    )
    def get(self, request: Request) -> Response:
        days = _report_days(request.query_params.get("days"))
        now = timezone.now()
        rates = consent_rates_over_time(now=now, days=days)
        consent_rates = [
            {
                "jurisdiction": jurisdiction,
                "purpose": purpose,
                "points": [
                    {
                        "date": day,
                        "profiles": profiles,
                        "granted": granted,
                        "rate": granted / profiles if profiles else None,
                    }
                    for day, (profiles, granted) in zip(rates.days, points, strict=True)
                ],
            }
            for (jurisdiction, purpose), points in sorted(rates.series.items())
        ]
        reviews = [
            {
                "reviewer_location": r.location,
                "selected": r.selected,
                "heard": r.heard,
                "annotated": r.annotated,
                "revoked": r.revoked,
                "cross_border": r.cross_border,
            }
            for r in reviews_by_location(now=now, days=days)
        ]
        return Response(
            {
                "generated_at": now,
                "days": days,
                "first_day": rates.days[0],
                "last_day": rates.days[-1],
                "consent_rates": consent_rates,
                "reviews_by_location": reviews,
            }
        )


class ProfileReviewOutput(serializers.Serializer):
    review_item = serializers.CharField()
    recording = serializers.CharField(help_text="the recording's external id")
    purpose = serializers.CharField()
    reviewer_location = serializers.CharField()
    state = serializers.CharField()
    delivered_at = serializers.DateTimeField(help_text="handed out, by the draw that took it")
    clip_fetched_at = serializers.DateTimeField(
        allow_null=True, help_text="the first clip access the ledger recorded"
    )
    clip_access_seq = serializers.IntegerField(allow_null=True, help_text="that ledger entry")


class ProfileReviewsOutput(serializers.Serializer):
    profile = serializers.CharField()
    reviews = ProfileReviewOutput(many=True)


def _limit(raw: str | None) -> int:
    if raw is None:
        return REVIEWS_DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= REVIEWS_MAX_LIMIT:
        raise ApplicationError(
            "invalid_parameter",
            f"limit must be an integer from 1 to {REVIEWS_MAX_LIMIT}.",
            fields=field_error(
                "limit", "invalid", f"Must be an integer from 1 to {REVIEWS_MAX_LIMIT}."
            ),
        )
    return int(raw)


class ProfileReviewsApi(APIView):
    """`ledger:read`, an officer, or the owner: authorised as the evidence bundle is."""

    permission_classes = [scope_or_officer({"GET": "ledger:read"}, owner=True)]

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, required=False)],
        responses={200: ProfileReviewsOutput},
        operation_id="profile_reviews",
        description="Who heard what, when, from where: the profile's review items, newest "
        f"first (limit {REVIEWS_DEFAULT_LIMIT} by default, at most {REVIEWS_MAX_LIMIT}).",
    )
    def get(self, request: Request, profile_id: str) -> Response:
        profile = find_for_caller(request, self, profile_for_caller, external_id=profile_id)
        limit = _limit(request.query_params.get("limit"))
        reviews = profile_reviews(profile=profile, limit=limit)
        return Response({"profile": profile.external_id, "reviews": reviews})
