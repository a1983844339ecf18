from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class LedgerCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .models import LedgerEntry

        last = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
        yield GaugeMetricFamily("earshot_ledger_entries", "Entries in the ledger", value=last or 0)
