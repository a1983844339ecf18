from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "compliance.security"
    label = "security"
