from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class RetentionCollector(Collector):
    """Purge lag as the officers' goal reads it: how overdue the oldest waiting
    artefact is now, and how late the last day's purges ran; and the storage sweep's
    refusals of a mass change (an alert: storage or database is not the right one)."""

    def collect(self) -> Iterator[Metric]:
        from compliance.recordings.models import Artefact

        from .purge import due_artefacts
        from .reports import purge_lag

        now = timezone.now()
        lag = purge_lag(now=now)
        yield GaugeMetricFamily(
            "earshot_overdue_artefacts",
            "Artefacts past their effective retention, not held, not yet purged",
            value=Artefact.objects.filter(due_artefacts(now)).count(),
        )
        yield GaugeMetricFamily(
            "earshot_oldest_overdue_seconds",
            "How long past its expiry the oldest waiting artefact is",
            value=lag["oldest_overdue_seconds"],
        )
        for name in ("p50", "p95", "max"):
            value = lag[f"{name}_seconds"]
            yield GaugeMetricFamily(
                f"earshot_purge_lag_{name}_seconds",
                f"Purge lag ({name}) of artefacts purged in the last 24 hours",
                value=value if value is not None else 0.0,
            )
        # Work that waits for a worker. An enqueue the broker refused leaves it here until
        # the beat's sweep runs it, so a broker outage shows as these growing.
        from django.db.models import Min

        from .models import DeletionRequest, DeletionStatus, RetentionPolicy

        oldest = DeletionRequest.objects.filter(status=DeletionStatus.RECEIVED).aggregate(
            oldest=Min("created_at")
        )["oldest"]
        yield GaugeMetricFamily(
            "earshot_deletion_request_oldest_received_seconds",
            "How long the oldest deletion request not yet started has waited (0: none)",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )
        yield GaugeMetricFamily(
            "earshot_retention_policies_unapplied",
            "Policy versions in force whose scope has not been rescheduled yet",
            value=RetentionPolicy.objects.filter(
                applied_at__isnull=True, effective_from__lte=now
            ).count(),
        )
        yield from _storage_sweep_refusals()


def _storage_sweep_refusals() -> Iterator[Metric]:
    """From the ledger's `storage.sweep_refused` entries (storage_sweep.py, MASS CHANGE):
    how many, and the last one's time and counts."""
    from compliance.ledger.models import LedgerEntry

    refusals = LedgerEntry.objects.filter(kind="storage.sweep_refused")
    last = refusals.order_by("-seq").values_list("created_at", "payload").first()
    when, payload = last if last else (None, {})
    yield CounterMetricFamily(
        "earshot_storage_sweep_refusals",
        "Storage sweeps that refused a mass change (deleted no orphan or tombstoned no"
        " artefact because too many were found)",
        value=refusals.count(),
    )
    yield GaugeMetricFamily(
        "earshot_storage_sweep_refused_timestamp_seconds",
        "When a storage sweep last refused a mass change (0: never)",
        value=when.timestamp() if when else 0.0,
    )
    yield GaugeMetricFamily(
        "earshot_storage_sweep_refused_orphan_files",
        "Orphan files the last refused storage sweep found, of the files it listed",
        value=payload.get("orphan_files_found", 0),
    )
    yield GaugeMetricFamily(
        "earshot_storage_sweep_refused_rows_without_file",
        "Active artefacts without a file the last refused storage sweep found",
        value=payload.get("rows_found_without_file", 0),
    )
