from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "compliance.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from compliance.core.metrics import register

        from . import schema  # noqa: F401 - registers the OpenAPI security scheme
        from .metrics import WebhooksCollector

        register(WebhooksCollector())
