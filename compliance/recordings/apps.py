from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "compliance.recordings"
    label = "recordings"

    def ready(self) -> None:
        from compliance.core.metrics import register

        from .metrics import RecordingsCollector

        register(RecordingsCollector())
