from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "compliance.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from compliance.core.metrics import register

        from .metrics import WebhooksCollector

        register(WebhooksCollector())
