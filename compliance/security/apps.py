from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "compliance.security"
    label = "security"

    def ready(self) -> None:
        from compliance.edge.callers import install_officer_rule

        from . import checks  # noqa: F401  (registers the deployment checks)
        from .admin import admin_install
        from .audit import audit_register
        from .middleware import audit_context_install
        from .roles import is_officer

        admin_install()
        audit_register()
        audit_context_install()
        install_officer_rule(is_officer)
