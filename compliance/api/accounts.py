from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.accounts.models import RetentionChoice
from compliance.accounts.selectors import profile_for_caller
from compliance.accounts.services import account_create
from compliance.actions.profiles import profile_create, profile_retention_set
from compliance.core.fields import ExternalIdField, StrictBooleanField, StrictCharField
from compliance.core.idempotency import idempotent
from compliance.edge.callers import actor_of
from compliance.edge.parsing import StrictInput
from compliance.edge.permissions import ScopeRequired, find_for_caller, scope_or_officer


class AccountOutput(serializers.Serializer):
    external_id = serializers.CharField()
    jurisdiction = serializers.CharField()
    created_at = serializers.DateTimeField()


class AccountCreateApi(APIView):
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "accounts:write"}

    class AccountCreateInput(StrictInput):
        external_id = ExternalIdField()
        jurisdiction = StrictCharField(max_length=2, min_length=2)

    @extend_schema(
        request=AccountCreateInput, responses={201: AccountOutput}, operation_id="accounts_create"
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.AccountCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = account_create(**data.validated_data, actor=actor_of(request.user))
        return Response(AccountOutput(account).data, status=status.HTTP_201_CREATED)


class ProfileOutput(serializers.Serializer):
    external_id = serializers.CharField()
    account = serializers.CharField(source="account.external_id")
    is_child = serializers.BooleanField()
    retention_choice = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class ProfileCreateApi(APIView):
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "accounts:write"}

    class ProfileCreateInput(StrictInput):
        external_id = ExternalIdField()
        account = StrictCharField(max_length=128)
        is_child = StrictBooleanField(required=False, default=False)

    @extend_schema(
        request=ProfileCreateInput, responses={201: ProfileOutput}, operation_id="profiles_create"
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.ProfileCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        profile = profile_create(
            external_id=data.validated_data["external_id"],
            account_external_id=data.validated_data["account"],
            is_child=data.validated_data["is_child"],
            actor=actor_of(request.user),
        )
        return Response(ProfileOutput(profile).data, status=status.HTTP_201_CREATED)


class RetentionOutput(serializers.Serializer):
    profile = serializers.CharField(source="external_id")
    choice = serializers.CharField(source="retention_choice", allow_null=True)


class ProfileRetentionApi(APIView):
    permission_classes = [
        scope_or_officer({"PUT": "consents:write", "GET": "consents:read"}, owner=True)
    ]

    class ProfileRetentionInput(StrictInput):
        choice = serializers.ChoiceField(choices=RetentionChoice.values)

    @extend_schema(responses={200: RetentionOutput}, operation_id="profiles_retention_read")
    def get(self, request: Request, profile_id: str) -> Response:
        profile = find_for_caller(request, self, profile_for_caller, external_id=profile_id)
        return Response(RetentionOutput(profile).data)

    @extend_schema(
        request=ProfileRetentionInput,
        responses={200: RetentionOutput},
        operation_id="profiles_retention_set",
    )
    def put(self, request: Request, profile_id: str) -> Response:
        profile = find_for_caller(request, self, profile_for_caller, external_id=profile_id)
        data = self.ProfileRetentionInput(data=request.data)
        data.is_valid(raise_exception=True)
        profile = profile_retention_set(
            profile=profile, choice=data.validated_data["choice"], actor=actor_of(request.user)
        )
        return Response(RetentionOutput(profile).data)
