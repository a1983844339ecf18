from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class LedgerCollector(Collector):
    """The ledger's length and what its last full verification found: alert on a broken
    chain, and on a last verification too long ago (the beat or its workers down)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .models import LedgerEntry, VerificationRun
        from .selectors import verification_run_unacknowledged

        last = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
        yield GaugeMetricFamily("earshot_ledger_entries", "Entries in the ledger", value=last or 0)
        finished = (
            VerificationRun.objects.filter(finished_at__isnull=False)
            .order_by("-finished_at", "-id")
            .values_list("finished_at", flat=True)
            .first()
        )
        yield GaugeMetricFamily(
            "earshot_ledger_verification_finished_timestamp_seconds",
            "When the last full verification of the ledger finished (0: never)",
            value=finished.timestamp() if finished else 0.0,
        )
        yield GaugeMetricFamily(
            "earshot_ledger_broken",
            "1 if a full verification found the ledger broken (an entry that does not hold,"
            " or entries missing or rewritten since an earlier one) and no officer has"
            " acknowledged it yet",
            value=0.0 if verification_run_unacknowledged() is None else 1.0,
        )
