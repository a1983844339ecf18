from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.core.fields import StrictCharField
from compliance.core.idempotency import idempotent
from compliance.edge.callers import actor_of
from compliance.edge.parsing import StrictInput
from compliance.edge.permissions import scope_or_officer

from .selectors import transfer_rule_get, transfer_rules_list
from .services import transfer_rule_create, transfer_rule_delete


class TransferRuleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    jurisdiction = serializers.CharField()
    reviewer_location = serializers.CharField()
    created_at = serializers.DateTimeField()


class TransferRuleListCreateApi(APIView):
    permission_classes = [scope_or_officer("policies:write")]

    class TransferRuleListCreateInput(StrictInput):
        jurisdiction = StrictCharField(max_length=2, min_length=2)
        reviewer_location = StrictCharField(max_length=2, min_length=2)

    @extend_schema(
        responses={200: TransferRuleOutput(many=True)}, operation_id="transfer_rules_list"
    )
    def get(self, request: Request) -> Response:
        return Response(TransferRuleOutput(transfer_rules_list(), many=True).data)

    @extend_schema(
        request=TransferRuleListCreateInput,
        responses={201: TransferRuleOutput},
        operation_id="transfer_rules_create",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.TransferRuleListCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        rule = transfer_rule_create(**data.validated_data, actor=actor_of(request.user))
        return Response(TransferRuleOutput(rule).data, status=status.HTTP_201_CREATED)


class TransferRuleDeleteApi(APIView):
    permission_classes = [scope_or_officer("policies:write")]

    @extend_schema(responses={204: None}, operation_id="transfer_rules_delete")
    def delete(self, request: Request, pk: int) -> Response:
        transfer_rule_delete(rule=transfer_rule_get(pk=pk), actor=actor_of(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)
