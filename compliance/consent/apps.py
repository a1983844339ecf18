from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "compliance.consent"
    label = "consent"
