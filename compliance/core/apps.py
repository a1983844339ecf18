from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "compliance.core"
    label = "core"

    def ready(self) -> None:
        from .sql import register_lookups

        register_lookups()
