from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "compliance.transfers"
    label = "transfers"
