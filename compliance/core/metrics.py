"""Prometheus /metrics: each app registers collectors that read the database at
scrape time (in its AppConfig.ready), so every web worker answers the same truth
without a multiprocess registry, and core depends on no other app.

The figures describe the whole service (backlogs, ledger state, consent rates), so
METRICS_TOKEN, when set, makes the scraper present it as a bearer token; unset, the
endpoint stays open for a scraper on a private network.
"""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

registry = CollectorRegistry()

_BEARER = "Bearer "


def register(collector: Collector) -> None:
    registry.register(collector)


def _token_presented(request: HttpRequest, token: str) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith(_BEARER):
        return False
    presented = header[len(_BEARER) :].strip()
    # constant time: the comparison must not tell how much of a guess was right
    return hmac.compare_digest(presented.encode("utf-8", "backslashreplace"), token.encode("utf-8"))


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token and not _token_presented(request, token):
        response = HttpResponse(
            "A bearer token is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
