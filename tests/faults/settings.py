"""The test settings plus the fault-injection app: what the crash tests' Celery workers
run with (tests/retention/test_worker.py)."""

from config.settings.test import *  # noqa: F403
from config.settings.test import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults"]
