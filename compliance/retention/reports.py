"""The retention report: what is overdue, how late the purge runs, where policy is missing."""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F
from django.db.models.functions import TruncDate
from django.utils import timezone

from compliance.accounts.models import Account
from compliance.recordings.models import Artefact, ArtefactState, Category

from .models import DeletionRequest, DeletionStatus, LegalHold
from .purge import due_artefacts
from .reasons import EXPIRY_REASONS
from .selectors import policy_table


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


def purge_lag(*, now: datetime, window: timedelta = timedelta(hours=24)) -> dict[str, Any]:
    """How long past expiry artefacts purged in `window` still existed, in seconds;
    and how overdue the oldest artefact still waiting is."""
    lag = ExpressionWrapper(F("purged_at") - F("expires_at"), output_field=DurationField())
    lags = sorted(
        d.total_seconds()
        for d in Artefact.objects.filter(
            state=ArtefactState.PURGED,
            purged_at__gte=now - window,
            expires_at__isnull=False,
            purge_reason__in=EXPIRY_REASONS,
        )
        .annotate(lag=lag)
        .values_list("lag", flat=True)[:100_000]
        if d is not None
    )
    oldest_due = (
        Artefact.objects.filter(due_artefacts(now))
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )
    return {
        "window_hours": window.total_seconds() / 3600,
        "purged": len(lags),
        "p50_seconds": _percentile(lags, 0.5),
        "p95_seconds": _percentile(lags, 0.95),
        "max_seconds": lags[-1] if lags else None,
        "oldest_overdue_seconds": (now - oldest_due).total_seconds() if oldest_due else 0.0,
    }


def policy_gaps(*, now: datetime) -> list[dict[str, str]]:
    """Every (jurisdiction with accounts, category, audience) that no policy covers."""
    table = policy_table(at=now)
    gaps = []
    for country in Account.objects.order_by().values_list("jurisdiction", flat=True).distinct():
        for category in Category.values:
            for is_child in (False, True):
                if table.resolve(country=country, category=category, is_child=is_child) is None:
                    gaps.append(
                        {
                            "jurisdiction": country,
                            "category": category,
                            "applies_to": "children" if is_child else "adults",
                        }
                    )
    return sorted(gaps, key=lambda g: (g["jurisdiction"], g["category"], g["applies_to"]))


def retention_report(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    due = Artefact.objects.filter(due_artefacts(now))
    purges_per_day = [
        {"date": row["day"].isoformat(), "artefacts": row["n"]}
        for row in Artefact.objects.filter(
            state=ArtefactState.PURGED, purged_at__gte=now - timedelta(days=30)
        )
        .annotate(day=TruncDate("purged_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    ]
    return {
        "generated_at": now,
        "overdue_artefacts": due.count(),
        "overdue_by_category": dict(due.values_list("category").annotate(n=Count("id")).order_by()),
        "held_artefacts": Artefact.objects.filter(
            state=ArtefactState.ACTIVE, purge_blocked=True
        ).count(),
        "purging_artefacts": Artefact.objects.filter(state=ArtefactState.PURGING).count(),
        "purge_lag": purge_lag(now=now),
        "purges_per_day": purges_per_day,
        "policy_gaps": policy_gaps(now=now),
        "open_deletion_requests": DeletionRequest.objects.exclude(
            status=DeletionStatus.DONE
        ).count(),
        "active_legal_holds": LegalHold.objects.filter(released_at__isnull=True).count(),
    }
