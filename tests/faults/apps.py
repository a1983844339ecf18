import os

from django.apps import AppConfig


class FaultsConfig(AppConfig):
    name = "tests.faults"
    label = "test_faults"

    def ready(self) -> None:
        step = os.environ.get("TEST_PURGE_FAULT", "")
        if step:
            from .hooks import kill_process_at

            kill_process_at(step)
