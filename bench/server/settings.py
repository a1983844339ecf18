"""The project's settings (as bench/_common.py's app_env gives them), routed through
bench/server/urls.py."""

from config.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.server.urls"
