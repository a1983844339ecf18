from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "compliance.security"
    label = "security"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deployment checks)
        from .admin import admin_install
        from .audit import audit_register

        admin_install()
        audit_register()
