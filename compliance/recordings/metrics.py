from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class RecordingsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .models import Recording

        recordings = GaugeMetricFamily(
            "earshot_recordings", "Recordings by state", labels=["state"]
        )
        for row in Recording.objects.values("state").annotate(n=Count("id")).order_by():
            recordings.add_metric([row["state"]], row["n"])
        yield recordings
