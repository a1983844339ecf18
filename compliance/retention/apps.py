from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "compliance.retention"
    label = "retention"

    def ready(self) -> None:
        from compliance.core.metrics import register

        from .metrics import RetentionCollector

        register(RetentionCollector())
