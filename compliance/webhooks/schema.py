"""Tells drf-spectacular how a subscriber signs its confirmations, for /api/schema/."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class WebhookSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "compliance.webhooks.authentication.WebhookSignatureAuthentication"
    name = "WebhookSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "webhook-signature",
            "description": (
                "Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature`"
                " (`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`) with the"
                " subscription's secret."
            ),
        }
