from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.accounts.models import Profile
from compliance.accounts.selectors import profile_for_caller
from compliance.actions.consent import consent_set
from compliance.consent.evidence import profile_evidence
from compliance.consent.models import Channel, Purpose
from compliance.consent.receipts import consent_receipt_latest
from compliance.consent.selectors import (
    consent_current,
    consent_current_for,
    consent_default_get,
    consent_defaults_list,
    consent_history,
)
from compliance.consent.services import consent_default_create, consent_default_delete
from compliance.core.errors import ApplicationError, NotFound, field_error
from compliance.core.fields import StrictBooleanField, StrictCharField
from compliance.core.idempotency import idempotent
from compliance.edge.callers import actor_of
from compliance.edge.parsing import StrictInput
from compliance.edge.permissions import find_for_caller, request_caller, scope_or_officer


class CurrentConsentOutput(serializers.Serializer):
    purpose = serializers.CharField()
    granted = serializers.BooleanField()
    # A declared field, moved out of the class attributes by the serializer metaclass; the
    # stubs see it as Field.source.
    source = serializers.ChoiceField(choices=["explicit", "default", "none"])  # type: ignore[assignment]
    channel = serializers.CharField(allow_null=True)
    notice_version = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class ConsentStateOutput(CurrentConsentOutput):
    profile = serializers.CharField()


class ConsentListOutput(serializers.Serializer):
    profile = serializers.CharField()
    consents = CurrentConsentOutput(many=True)


class ConsentEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    purpose = serializers.CharField()
    granted = serializers.BooleanField()
    channel = serializers.CharField()
    notice_version = serializers.CharField()
    actor = serializers.CharField()
    created_at = serializers.DateTimeField()


class ConsentHistoryOutput(serializers.Serializer):
    profile = serializers.CharField()
    purpose = serializers.CharField()
    events = ConsentEventOutput(many=True)


def _purpose(purpose: str) -> str:
    if purpose not in Purpose.values:
        raise NotFound("Purpose")
    return purpose


class _ProfileConsentApi(APIView):
    permission_classes = [
        scope_or_officer({"GET": "consents:read", "PUT": "consents:write"}, owner=True)
    ]

    def profile(self, request: Request, profile_id: str) -> Profile:
        return find_for_caller(request, self, profile_for_caller, external_id=profile_id)


class ConsentListApi(_ProfileConsentApi):
    @extend_schema(responses={200: ConsentListOutput}, operation_id="consents_list")
    def get(self, request: Request, profile_id: str) -> Response:
        profile = self.profile(request, profile_id)
        consents = consent_current(profile=profile)
        return Response(
            ConsentListOutput({"profile": profile.external_id, "consents": consents}).data
        )


class ConsentDetailApi(_ProfileConsentApi):
    class ConsentDetailInput(StrictInput):
        granted = StrictBooleanField()
        channel = serializers.ChoiceField(choices=Channel.values, required=False)
        notice_version = StrictCharField(max_length=64)

    def _output(self, profile: Profile, purpose: str) -> dict:
        current = consent_current_for(profile=profile, purpose=purpose)
        return ConsentStateOutput({"profile": profile.external_id, **current.__dict__}).data

    @extend_schema(responses={200: ConsentStateOutput}, operation_id="consents_read")
    def get(self, request: Request, profile_id: str, purpose: str) -> Response:
        profile = self.profile(request, profile_id)
        return Response(self._output(profile, _purpose(purpose)))

    @extend_schema(
        request=ConsentDetailInput,
        responses={
            200: ConsentStateOutput,
            422: OpenApiResponse(
                description="`child_profile`: a child's profile is never granted human review"
            ),
        },
        operation_id="consents_set",
    )
    def put(self, request: Request, profile_id: str, purpose: str) -> Response:
        profile = self.profile(request, profile_id)
        _purpose(purpose)
        data = self.ConsentDetailInput(data=request.data)
        data.is_valid(raise_exception=True)
        caller = request_caller(request)
        default_channel = (
            Channel.API if caller.is_key else Channel.OFFICER if caller.is_officer else Channel.WEB
        )
        consent_set(
            profile=profile,
            purpose=purpose,
            granted=data.validated_data["granted"],
            channel=data.validated_data.get("channel", default_channel),
            notice_version=data.validated_data["notice_version"],
            actor=caller.actor,
        )
        return Response(self._output(profile, purpose))


class ConsentHistoryApi(_ProfileConsentApi):
    @extend_schema(responses={200: ConsentHistoryOutput}, operation_id="consents_history")
    def get(self, request: Request, profile_id: str, purpose: str) -> Response:
        profile = self.profile(request, profile_id)
        events = consent_history(profile=profile, purpose=_purpose(purpose))
        return Response(
            ConsentHistoryOutput(
                {"profile": profile.external_id, "purpose": purpose, "events": events}
            ).data
        )


class ConsentReceiptOutput(serializers.Serializer):
    receipt = serializers.CharField(help_text="compact JWS, EdDSA, the ledger's published key")
    seq = serializers.IntegerField(help_text="the ledger entry recording the event")
    leaf_hash = serializers.CharField(help_text="base64 of that entry's leaf hash")
    tree_size = serializers.IntegerField(
        allow_null=True, help_text="the signed checkpoint that covers the entry"
    )


class ConsentReceiptApi(_ProfileConsentApi):
    @extend_schema(responses={200: ConsentReceiptOutput}, operation_id="consents_receipt")
    def get(self, request: Request, profile_id: str, purpose: str) -> Response:
        profile = self.profile(request, profile_id)
        receipt = consent_receipt_latest(profile=profile, purpose=_purpose(purpose))
        return Response(ConsentReceiptOutput(receipt).data)


class ProfileEvidenceApi(APIView):
    """`ledger:read`, an officer, or the owner."""

    permission_classes = [scope_or_officer({"GET": "ledger:read"}, owner=True)]

    @extend_schema(
        parameters=[OpenApiParameter("since_size", int, required=False)],
        responses={200: OpenApiTypes.OBJECT},
        operation_id="profile_evidence",
        description="One JSON bundle that `python3 -m earshot_verify BUNDLE --key KEY` checks.",
    )
    def get(self, request: Request, profile_id: str) -> Response:
        profile = find_for_caller(request, self, profile_for_caller, external_id=profile_id)
        raw = request.query_params.get("since_size")
        since_size = None
        if raw is not None:
            if not (raw.isascii() and raw.isdigit()) or int(raw) > 2**63 - 1:
                raise ApplicationError(
                    "invalid_parameter",
                    "since_size must be a non-negative integer.",
                    fields=field_error("since_size", "invalid", "Must be a non-negative integer."),
                )
            since_size = int(raw)
        return Response(profile_evidence(profile=profile, since_size=since_size))


class ConsentDefaultOutput(serializers.Serializer):
    id = serializers.IntegerField()
    jurisdiction = serializers.CharField()
    purpose = serializers.CharField()
    granted = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ConsentDefaultListCreateApi(APIView):
    permission_classes = [scope_or_officer("policies:write")]

    class ConsentDefaultListCreateInput(StrictInput):
        jurisdiction = StrictCharField(max_length=2, min_length=2)
        purpose = StrictCharField(max_length=32)
        granted = StrictBooleanField()

    @extend_schema(
        responses={200: ConsentDefaultOutput(many=True)}, operation_id="consent_defaults_list"
    )
    def get(self, request: Request) -> Response:
        return Response(ConsentDefaultOutput(consent_defaults_list(), many=True).data)

    @extend_schema(
        request=ConsentDefaultListCreateInput,
        responses={201: ConsentDefaultOutput},
        operation_id="consent_defaults_create",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.ConsentDefaultListCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        default = consent_default_create(**data.validated_data, actor=actor_of(request.user))
        return Response(ConsentDefaultOutput(default).data, status=status.HTTP_201_CREATED)


class ConsentDefaultDeleteApi(APIView):
    permission_classes = [scope_or_officer("policies:write")]

    @extend_schema(responses={204: None}, operation_id="consent_defaults_delete")
    def delete(self, request: Request, pk: int) -> Response:
        consent_default_delete(default=consent_default_get(pk=pk), actor=actor_of(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)
