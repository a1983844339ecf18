from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "compliance.recovery"
    label = "recovery"
