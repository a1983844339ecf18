"""A subscriber signs its confirmations with its own secret, in the Standard Webhooks
scheme it already verifies our deliveries with; the signature makes it a caller that
holds `webhooks:confirm` for its own subscription only."""

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from compliance.clients.authentication import ClientPrincipal
from compliance.core.errors import Unauthenticated

from .selectors import subscription_get
from .services import subscription_secrets


@dataclass(frozen=True)
class SubscriberPrincipal(ClientPrincipal):
    subscription: str = ""

    @property
    def actor(self) -> str:
        return f"webhook:{self.subscription}"


class WebhookSignatureAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "webhook-signature" not in headers:
            return None  # an API key or a session, then
        webhook_id = request.parser_context["kwargs"].get("webhook_id", "")
        subscription = subscription_get(external_id=webhook_id)
        raw = request._request.body  # the signature covers the bytes as sent
        for secret in subscription_secrets(subscription):
            try:
                Webhook(secret).verify(raw, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            principal = SubscriberPrincipal(
                id=0,
                name=subscription.external_id,
                scopes=frozenset({"webhooks:confirm"}),
                subscription=subscription.external_id,
            )
            return principal, None
        raise Unauthenticated(
            "webhook_signature_invalid",
            "The signature does not verify with this subscription's secret.",
        )

    def authenticate_header(self, request: Request) -> str:
        return "Webhook-Signature"
