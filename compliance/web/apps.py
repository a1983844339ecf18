from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "compliance.web"
    label = "web"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the sign-in receiver)
