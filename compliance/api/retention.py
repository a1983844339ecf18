from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.accounts.models import Account, Profile
from compliance.accounts.selectors import profile_for_caller
from compliance.core.errors import ApplicationError, field_error
from compliance.core.fields import AwareDateTimeField, StrictCharField
from compliance.core.idempotency import idempotent
from compliance.edge.callers import actor_of
from compliance.edge.parsing import StrictInput, unknown_fields
from compliance.edge.permissions import find_for_caller, scope_or_officer
from compliance.recordings.models import Category
from compliance.retention.models import AppliesTo, DeletionRequest
from compliance.retention.receipts import PURGE_RECEIPTS_LIMIT, deletion_receipt, purge_receipts
from compliance.retention.reports import retention_report
from compliance.retention.selectors import (
    deletion_request_for_caller,
    legal_hold_get,
    legal_holds_list,
    retention_policies_list,
    retention_policy_get,
    retention_policy_preview,
)
from compliance.retention.services import (
    MAX_RETENTION_DAYS,
    deletion_request_create,
    legal_hold_place,
    legal_hold_release,
    retention_policy_create,
    retention_policy_retire,
)
from compliance.webhooks.selectors import deletion_request_confirmations


class RetentionPolicyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    jurisdiction = serializers.CharField()
    category = serializers.CharField()
    applies_to = serializers.CharField()
    retention_days = serializers.IntegerField()
    version = serializers.IntegerField()
    effective_from = serializers.DateTimeField()
    retired_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class RetentionPolicyInput(StrictInput):
    jurisdiction = StrictCharField(max_length=8)
    category = StrictCharField(max_length=16)
    retention_days = serializers.IntegerField()
    applies_to = StrictCharField(max_length=8, required=False, default=AppliesTo.ALL)
    effective_from = AwareDateTimeField(required=False)

    def validate_retention_days(self, value: Any) -> int:
        if isinstance(self.initial_data.get("retention_days"), bool | float | str):
            raise serializers.ValidationError("A whole number of days.")
        if not 0 <= value <= MAX_RETENTION_DAYS:
            raise serializers.ValidationError(f"From 0 to {MAX_RETENTION_DAYS} days.")
        return value


class _PolicyApi(APIView):
    permission_classes = [scope_or_officer("policies:write")]


class RetentionPolicyListCreateApi(_PolicyApi):
    @extend_schema(
        responses={200: RetentionPolicyOutput(many=True)}, operation_id="retention_policies_list"
    )
    def get(self, request: Request) -> Response:
        include_retired = request.query_params.get("include_retired") == "true"
        policies = retention_policies_list(include_retired=include_retired)
        return Response(RetentionPolicyOutput(policies, many=True).data)

    @extend_schema(
        request=RetentionPolicyInput,
        responses={201: RetentionPolicyOutput},
        operation_id="retention_policies_create",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = RetentionPolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        policy = retention_policy_create(**data.validated_data, actor=actor_of(request.user))
        return Response(RetentionPolicyOutput(policy).data, status=status.HTTP_201_CREATED)


class RetentionPolicyRetireApi(_PolicyApi):
    @extend_schema(responses={200: RetentionPolicyOutput}, operation_id="retention_policies_retire")
    def delete(self, request: Request, pk: int) -> Response:
        policy = retention_policy_retire(
            policy=retention_policy_get(pk=pk), actor=actor_of(request.user)
        )
        return Response(RetentionPolicyOutput(policy).data)


class RetentionPolicyPreviewApi(_PolicyApi):
    @extend_schema(
        request=RetentionPolicyInput,
        responses={
            200: inline_serializer(
                "RetentionPolicyPreview", {"purged_when_effective": serializers.IntegerField()}
            )
        },
        operation_id="retention_policies_preview",
    )
    def post(self, request: Request) -> Response:
        data = RetentionPolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["category"] not in Category.values:
            raise ApplicationError(
                "unknown_category",
                "Unknown category.",
                fields=field_error(
                    "category", "unknown", f"Must be one of {', '.join(Category.values)}."
                ),
            )
        now = timezone.now()
        preview = retention_policy_preview(
            jurisdiction=values["jurisdiction"],
            category=values["category"],
            applies_to=values["applies_to"],
            retention_days=values["retention_days"],
            effective_from=values.get("effective_from") or now,
            now=now,
        )
        return Response(preview)


class LegalHoldOutput(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.CharField(source="account.external_id", allow_null=True, default=None)
    profile = serializers.CharField(source="profile.external_id", allow_null=True, default=None)
    recorded_from = serializers.DateTimeField(allow_null=True)
    recorded_to = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    case_reference = serializers.CharField()
    created_at = serializers.DateTimeField()
    released_at = serializers.DateTimeField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **_range_output()}


def _range_output() -> dict[str, serializers.Field]:
    """The contract's `from` and `to` (Python keywords, so not declarable as class
    attributes), beside the explicit `recorded_from` and `recorded_to`."""
    return {
        "from": serializers.DateTimeField(source="recorded_from", read_only=True, allow_null=True),
        "to": serializers.DateTimeField(source="recorded_to", read_only=True, allow_null=True),
    }


class _RangeBound(AwareDateTimeField):
    """A range's end: absent or null, no bound. A form's empty field is refused as any
    text that is not a time is: DRF would read it as null, a hold with no start where
    the client sent something."""

    def get_value(self, dictionary: Any) -> Any:
        return dictionary.get(self.field_name, empty)


def _range_input() -> dict[str, serializers.Field]:
    return {
        "from": _RangeBound(required=False, allow_null=True, help_text="recorded at or after"),
        "to": _RangeBound(required=False, allow_null=True, help_text="recorded at or before"),
    }


class LegalHoldInput(StrictInput):
    account = StrictCharField(max_length=128, required=False)
    profile = StrictCharField(max_length=128, required=False)
    reason = StrictCharField(max_length=2000)
    case_reference = StrictCharField(max_length=200)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **_range_input()}


class _HoldApi(APIView):
    permission_classes = [scope_or_officer("holds:write")]


class LegalHoldListCreateApi(_HoldApi):
    @extend_schema(responses={200: LegalHoldOutput(many=True)}, operation_id="legal_holds_list")
    def get(self, request: Request) -> Response:
        include_released = request.query_params.get("include_released") == "true"
        return Response(
            LegalHoldOutput(legal_holds_list(include_released=include_released), many=True).data
        )

    @extend_schema(
        request=LegalHoldInput, responses={201: LegalHoldOutput}, operation_id="legal_holds_create"
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = LegalHoldInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        account = profile = None
        if values.get("account") is not None:
            account = Account.objects.filter(external_id=values["account"]).first()
            if account is None:
                raise ApplicationError(
                    "unknown_account",
                    "No such account.",
                    fields=field_error("account", "unknown", "There is no account with this id."),
                )
        if values.get("profile") is not None:
            profile = Profile.objects.filter(external_id=values["profile"]).first()
            if profile is None:
                raise ApplicationError(
                    "unknown_profile",
                    "No such profile.",
                    fields=field_error("profile", "unknown", "There is no profile with this id."),
                )
        hold = legal_hold_place(
            account=account,
            profile=profile,
            recorded_from=values.get("from"),
            recorded_to=values.get("to"),
            reason=values["reason"],
            case_reference=values["case_reference"],
            actor=actor_of(request.user),
        )
        return Response(LegalHoldOutput(hold).data, status=status.HTTP_201_CREATED)


class LegalHoldReleaseApi(_HoldApi):
    @extend_schema(responses={200: LegalHoldOutput}, operation_id="legal_holds_release")
    def delete(self, request: Request, pk: int) -> Response:
        hold = legal_hold_release(hold=legal_hold_get(pk=pk), actor=actor_of(request.user))
        return Response(LegalHoldOutput(hold).data)


class DeletionRequestOutput(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    profile = serializers.CharField(source="profile.external_id")
    status = serializers.CharField()
    recorded_from = serializers.DateTimeField(allow_null=True)
    recorded_to = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    recordings_deleted = serializers.IntegerField()
    recordings_held = serializers.IntegerField()
    blocked_by_hold = serializers.SerializerMethodField()
    receipt = serializers.CharField()
    # Earshot's own part is `status`; the systems holding copies confirm theirs (webhooks)
    confirmations = serializers.SerializerMethodField()

    def get_blocked_by_hold(self, request: DeletionRequest) -> bool:
        return request.recordings_held > 0

    @extend_schema_field(
        inline_serializer(
            "DeletionConfirmations",
            {
                "required": serializers.IntegerField(),
                "confirmed": serializers.ListField(child=serializers.DictField()),
                "pending": serializers.ListField(child=serializers.CharField()),
            },
        )
    )
    def get_confirmations(self, request: DeletionRequest) -> dict[str, Any]:
        return deletion_request_confirmations(receipt=request.receipt)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **_range_output()}


class DeletionRequestCreateApi(APIView):
    permission_classes = [scope_or_officer({"POST": "deletions:write"}, owner=True)]

    @extend_schema(
        request=inline_serializer("DeletionRequestInput", _range_input()),
        responses={202: DeletionRequestOutput},
        operation_id="deletion_requests_create",
    )
    @idempotent
    def post(self, request: Request, profile_id: str) -> Response:
        profile = find_for_caller(request, self, profile_for_caller, external_id=profile_id)
        body = request.data
        if not isinstance(body, dict):  # a JSON object, or a form (a QueryDict)
            raise ApplicationError("validation_error", "The body must be a JSON object.")
        unknown_fields(body, ("from", "to"))
        dates = AwareDateTimeField()
        values: dict[str, Any] = {}
        errors: dict[str, list[Any]] = {}  # ErrorDetail strings
        for name in ("from", "to"):
            raw = body.get(name)
            try:
                values[name] = None if raw is None else dates.to_internal_value(raw)
            except serializers.ValidationError as error:
                errors[name] = list(error.detail)
        if errors:
            raise serializers.ValidationError(errors)
        deletion = deletion_request_create(
            profile=profile,
            recorded_from=values["from"],
            recorded_to=values["to"],
            actor=actor_of(request.user),
        )
        return Response(DeletionRequestOutput(deletion).data, status=status.HTTP_202_ACCEPTED)


class DeletionRequestDetailApi(APIView):
    permission_classes = [scope_or_officer({"GET": "deletions:write"}, owner=True)]

    @extend_schema(responses={200: DeletionRequestOutput}, operation_id="deletion_requests_read")
    def get(self, request: Request, request_id: str) -> Response:
        deletion = find_for_caller(request, self, deletion_request_for_caller, public_id=request_id)
        return Response(DeletionRequestOutput(deletion).data)


class DeletionReceiptOutput(serializers.Serializer):
    receipt = serializers.CharField(help_text="compact JWS, EdDSA, the ledger's published key")
    seq = serializers.IntegerField(help_text="the ledger entry recording the completion")
    leaf_hash = serializers.CharField(help_text="base64 of that entry's leaf hash")
    tree_size = serializers.IntegerField(
        allow_null=True, help_text="the signed checkpoint that covers the entry"
    )
    confirmations = inline_serializer(
        "DeletionReceiptConfirmations",
        {
            "required": serializers.IntegerField(),
            "confirmed": serializers.ListField(child=serializers.DictField()),
        },
        help_text="partner systems holding copies: how many were asked, who confirmed "
        "and when (also in the signed receipt)",
    )


class DeletionReceiptApi(APIView):
    """`deletions:write`, an officer, or the owner: as the request itself."""

    permission_classes = [scope_or_officer({"GET": "deletions:write"}, owner=True)]

    @extend_schema(
        responses={
            200: DeletionReceiptOutput,
            409: OpenApiResponse(description="`deletion_not_done`: the request is not done yet"),
        },
        operation_id="deletion_requests_receipt",
        description="409 `deletion_not_done` until the request is done.",
    )
    def get(self, request: Request, request_id: str) -> Response:
        deletion = find_for_caller(request, self, deletion_request_for_caller, public_id=request_id)
        receipt = deletion_receipt(
            request=deletion,
            confirmations=deletion_request_confirmations(receipt=deletion.receipt),
        )
        return Response(DeletionReceiptOutput(receipt).data)


class PurgeReceiptOutput(serializers.Serializer):
    seq = serializers.IntegerField(help_text="the purge batch's ledger entry")
    purged_at = serializers.CharField(help_text="the entry's time")
    recordings = serializers.ListField(
        child=serializers.CharField(), help_text="the profile's recordings it deleted"
    )
    receipt = serializers.CharField(help_text="compact JWS, EdDSA, the ledger's published key")


class ProfilePurgeReceiptsApi(APIView):
    """`ledger:read`, an officer, or the owner: as the profile's evidence bundle."""

    permission_classes = [scope_or_officer({"GET": "ledger:read"}, owner=True)]

    @extend_schema(
        responses={
            200: inline_serializer(
                "ProfilePurgeReceipts", {"receipts": PurgeReceiptOutput(many=True)}
            )
        },
        operation_id="profile_purge_receipts",
    )
    def get(self, request: Request, profile_id: str) -> Response:
        profile = find_for_caller(request, self, profile_for_caller, external_id=profile_id)
        receipts = purge_receipts(
            profile_external_id=profile.external_id, limit=PURGE_RECEIPTS_LIMIT
        )
        return Response({"receipts": PurgeReceiptOutput(receipts, many=True).data})


class RetentionReportApi(APIView):
    permission_classes = [scope_or_officer({"GET": "reports:read"})]

    @extend_schema(
        responses={
            200: inline_serializer(
                "RetentionReport", {"overdue_artefacts": serializers.IntegerField()}
            )
        },
        operation_id="reports_retention",
    )
    def get(self, request: Request) -> Response:
        return Response(retention_report())
