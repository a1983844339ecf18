from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "compliance.clients"
    label = "clients"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the OpenAPI security scheme
