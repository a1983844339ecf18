from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "compliance.core"
    label = "core"
