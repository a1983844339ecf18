from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.core.errors import ApplicationError
from compliance.core.fields import StrictCharField
from compliance.core.idempotency import idempotent
from compliance.edge.callers import actor_of
from compliance.edge.parsing import StrictInput
from compliance.edge.permissions import ScopeRequired, scope_or_officer

from .authentication import SubscriberPrincipal, WebhookSignatureAuthentication
from .events import event_types_parse
from .selectors import deliveries_list, subscription_get, subscriptions_list
from .services import (
    SubscriptionChanges,
    confirmations_record,
    subscription_create,
    subscription_delete,
    subscription_ping,
    subscription_replay,
    subscription_rotate_secret,
    subscription_update,
)


class SubscriptionOutput(serializers.Serializer):
    id = serializers.CharField(source="external_id")
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    holds_copies = serializers.BooleanField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class SubscriptionWithSecretOutput(SubscriptionOutput):
    secret = serializers.CharField()


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SubscriptionInput(StrictInput):
    url = StrictCharField(max_length=2000)
    events = serializers.ListField(child=StrictCharField(max_length=64), max_length=20)
    description = StrictCharField(max_length=500, required=False, default="", allow_blank=True)
    holds_copies = StrictBooleanField(required=False, default=False)


class SubscriptionPatchInput(SubscriptionInput):
    url = StrictCharField(max_length=2000, required=False)
    events = serializers.ListField(
        child=StrictCharField(max_length=64), max_length=20, required=False
    )
    description = StrictCharField(max_length=500, required=False, allow_blank=True)
    holds_copies = StrictBooleanField(required=False)


class DeliveryOutput(serializers.Serializer):
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


def _with_secret(subscription: Any, secret: str) -> dict[str, Any]:
    return {**SubscriptionOutput(subscription).data, "secret": secret}


class _WebhookApi(APIView):
    permission_classes = [scope_or_officer("webhooks:write")]


class WebhookListCreateApi(_WebhookApi):
    @extend_schema(responses={200: SubscriptionOutput(many=True)}, operation_id="webhooks_list")
    def get(self, request: Request) -> Response:
        return Response(SubscriptionOutput(subscriptions_list(), many=True).data)

    @extend_schema(
        request=SubscriptionInput,
        responses={201: SubscriptionWithSecretOutput},
        operation_id="webhooks_create",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = SubscriptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        subscription, secret = subscription_create(
            url=values["url"],
            events=event_types_parse(values["events"]),
            description=values["description"],
            holds_copies=values["holds_copies"],
            actor=actor_of(request.user),
        )
        return Response(_with_secret(subscription, secret), status=status.HTTP_201_CREATED)


class WebhookDetailApi(_WebhookApi):
    @extend_schema(responses={200: SubscriptionOutput}, operation_id="webhooks_get")
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response(SubscriptionOutput(subscription_get(external_id=webhook_id)).data)

    @extend_schema(
        request=SubscriptionPatchInput,
        responses={200: SubscriptionOutput},
        operation_id="webhooks_update",
    )
    def patch(self, request: Request, webhook_id: str) -> Response:
        subscription = subscription_get(external_id=webhook_id)
        data = SubscriptionPatchInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            raise ApplicationError(
                "nothing_to_change", "Give url, events, description or holds_copies."
            )
        changes = SubscriptionChanges(**data.validated_data)
        if "events" in changes:
            changes["events"] = event_types_parse(changes["events"])
        subscription = subscription_update(
            subscription=subscription, changes=changes, actor=actor_of(request.user)
        )
        return Response(SubscriptionOutput(subscription).data)

    @extend_schema(responses={204: None}, operation_id="webhooks_delete")
    def delete(self, request: Request, webhook_id: str) -> Response:
        subscription_delete(
            subscription=subscription_get(external_id=webhook_id), actor=actor_of(request.user)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretApi(_WebhookApi):
    @extend_schema(
        request=None,
        responses={200: SubscriptionWithSecretOutput},
        operation_id="webhooks_rotate_secret",
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        subscription, secret = subscription_rotate_secret(
            subscription=subscription_get(external_id=webhook_id), actor=actor_of(request.user)
        )
        return Response(_with_secret(subscription, secret))


class WebhookTestApi(_WebhookApi):
    @extend_schema(
        request=None,
        responses={202: inline_serializer("WebhookPing", {"event_id": serializers.CharField()})},
        operation_id="webhooks_test",
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        delivery = subscription_ping(
            subscription=subscription_get(external_id=webhook_id), actor=actor_of(request.user)
        )
        return Response({"event_id": delivery.event_id}, status=status.HTTP_202_ACCEPTED)


class WebhookReplayApi(_WebhookApi):
    @extend_schema(
        request=None,
        responses={
            200: inline_serializer("WebhookReplay", {"replayed": serializers.IntegerField()})
        },
        operation_id="webhooks_replay",
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        replayed = subscription_replay(
            subscription=subscription_get(external_id=webhook_id), actor=actor_of(request.user)
        )
        return Response({"replayed": replayed})


class WebhookDeliveriesApi(_WebhookApi):
    @extend_schema(responses={200: DeliveryOutput(many=True)}, operation_id="webhooks_deliveries")
    def get(self, request: Request, webhook_id: str) -> Response:
        subscription = subscription_get(external_id=webhook_id)
        return Response(DeliveryOutput(deliveries_list(subscription=subscription), many=True).data)


class ConfirmationInput(StrictInput):
    event_ids = serializers.ListField(
        child=StrictCharField(max_length=64), min_length=1, max_length=1000
    )


class WebhookConfirmationsApi(APIView):
    """The subscriber says it deleted what these events told it of. It signs the request
    with its own secret, in the Standard Webhooks scheme (`webhook-id`,
    `webhook-timestamp`, `webhook-signature` over the raw body), or calls with a key of
    scope `webhooks:confirm`."""

    authentication_classes = [
        WebhookSignatureAuthentication,
        *APIView.authentication_classes,
    ]
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "webhooks:confirm"}

    @extend_schema(
        request=ConfirmationInput,
        responses={
            200: inline_serializer("WebhookConfirmed", {"confirmed": serializers.IntegerField()})
        },
        operation_id="webhooks_confirm",
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        subscription = subscription_get(external_id=webhook_id)
        user = request.user
        signed = isinstance(user, SubscriberPrincipal)
        data = ConfirmationInput(data=request.data)
        data.is_valid(raise_exception=True)
        confirmed = confirmations_record(
            subscription=subscription,
            event_ids=data.validated_data["event_ids"],
            via="signature" if signed else "api_key",
            actor=actor_of(user),
        )
        return Response({"confirmed": confirmed})
