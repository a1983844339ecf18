from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "compliance.recordings"
    label = "recordings"
