"""Prometheus /metrics: gauges read from the database at scrape time, so every web
worker answers the same truth without a multiprocess registry."""

from collections.abc import Iterator

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _DatabaseCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from compliance.ledger.models import LedgerEntry
        from compliance.recordings.models import Recording

        recordings = GaugeMetricFamily(
            "earshot_recordings", "Recordings by state", labels=["state"]
        )
        for row in Recording.objects.values("state").annotate(n=Count("id")):
            recordings.add_metric([row["state"]], row["n"])
        yield recordings
        last = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
        yield GaugeMetricFamily("earshot_ledger_entries", "Entries in the ledger", value=last or 0)


_registry = CollectorRegistry()
_registry.register(_DatabaseCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
