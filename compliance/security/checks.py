"""Deployment checks (`manage.py check --deploy`) for what the sign-in relies on."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Info, Tags, register


@register(Tags.security, deploy=True)
def shared_cache_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [
            Info(
                "The default cache is per process: sign-in and API throttles count in "
                "each process separately.",
                hint="Set CACHE_URL to a shared cache, e.g. redis://host:6379/1.",
                id="security.I001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def metrics_token_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if not settings.METRICS_TOKEN:
        return [
            Info(
                "/metrics answers anyone who reaches it.",
                hint="Set METRICS_TOKEN, or keep /metrics off the public network.",
                id="security.I002",
            )
        ]
    return []
