"""Prometheus /metrics: each app registers collectors that read the database at
scrape time (in its AppConfig.ready), so every web worker answers the same truth
without a multiprocess registry, and core depends on no other app."""

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

registry = CollectorRegistry()


def register(collector: Collector) -> None:
    registry.register(collector)


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
