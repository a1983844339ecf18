from django.apps import AppConfig


class SamplingConfig(AppConfig):
    name = "compliance.sampling"
    label = "sampling"
