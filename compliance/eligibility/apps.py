from django.apps import AppConfig


class EligibilityConfig(AppConfig):
    name = "compliance.eligibility"
    label = "eligibility"
