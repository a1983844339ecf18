"""The dashboard's charts and the CSV reports, from one set of figures, so that what an
officer exports is what they saw."""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from compliance.consent.models import Purpose
from compliance.consent.reports import consent_rates_over_time
from compliance.sampling.reports import reviews_by_location

from . import charts, selectors
from .forms import PURPOSE_SHORT


def dashboard_charts(*, report: dict[str, Any], now: datetime) -> dict[str, Any]:
    lag = selectors.purge_lag_by_day(now=now)
    purges = selectors.purges_by_day(report=report, now=now)
    rates = consent_rates_over_time(now=now, days=selectors.DASHBOARD_DAYS)
    reviews = reviews_by_location(now=now, days=selectors.DASHBOARD_DAYS)
    days = [d.day for d in lag]
    short_days = [d[5:] for d in days]  # MM-DD on the axis; the table keeps the full date

    overdue = report["overdue_by_category"]
    categories = ["audio", "transcript", "annotation"]
    result: dict[str, Any] = {
        "overdue": charts.bar_chart(
            slug="overdue",
            title="Overdue artefacts by category",
            description="Artefacts past their effective retention and not purged yet, "
            "not counting those under a legal hold. The goal is zero.",
            x_axis="Category",
            y_axis="Overdue artefacts",
            x_labels=categories,
            values=[overdue.get(c, 0) for c in categories],
            fmt=charts.count,
            color=charts.PALETTE[1],
        ),
        "purge_lag": _with_full_dates(
            charts.line_chart(
                slug="purge-lag",
                title="Purge lag",
                description="How long after their retention ended artefacts were purged, "
                "worst and average per day (retention purges only).",
                x_axis="Day",
                y_axis="Lag",
                x_labels=short_days,
                series=[
                    ("Worst", [d.max_seconds for d in lag]),
                    ("Average", [d.avg_seconds for d in lag]),
                ],
                fmt=charts.duration,
                y_floor=60.0,
                scale=charts.time_ceiling,
            ),
            days,
        ),
        "purges": _with_full_dates(
            charts.bar_chart(
                slug="purges-per-day",
                title="Purges per day",
                description="Artefacts purged each day, for every reason (retention, user "
                "choice, deletion requests).",
                x_axis="Day",
                y_axis="Artefacts purged",
                x_labels=short_days,
                values=[n for _, n in purges],
                fmt=charts.count,
            ),
            days,
        ),
        "consent": [],
        "reviews": charts.bar_chart(
            slug="reviews-by-location",
            title="Clips heard, by reviewer location",
            description="Review items whose audio a reviewer fetched in the last 30 days, "
            "by the reviewer's country.",
            x_axis="Reviewer location",
            y_axis="Clips heard",
            x_labels=[r.location for r in reviews],
            values=[r.heard for r in reviews],
            fmt=charts.count,
            color=charts.PALETTE[2],
            extra_columns=[
                ("Selected", [charts.count(r.selected) for r in reviews]),
                ("Annotated", [charts.count(r.annotated) for r in reviews]),
                ("Revoked", [charts.count(r.revoked) for r in reviews]),
                ("From another jurisdiction", [charts.count(r.cross_border) for r in reviews]),
            ],
        ),
    }
    shown = rates.jurisdictions()[: selectors.CONSENT_CHART_JURISDICTIONS]
    for purpose in Purpose.values:
        keys = [(j, purpose) for j in shown if (j, purpose) in rates.series]
        chart = charts.line_chart(
            slug=f"consent-{purpose.replace('_', '-')}",
            title=f"Consent to {PURPOSE_SHORT[purpose]}",
            description=f"Share of voice profiles that allow {PURPOSE_SHORT[purpose]}, per "
            "jurisdiction, at the end of each day"
            + (
                " (children's profiles excluded: they can never allow it)."
                if purpose == Purpose.HUMAN_REVIEW
                else "."
            ),
            x_axis="Day",
            y_axis="Profiles consenting",
            x_labels=short_days,
            series=[(j, [rates.rate((j, p), i) for i in range(len(days))]) for j, p in keys],
            fmt=charts.percent,
            y_max=100.0,
            legend=True,
        )
        result["consent"].append(_with_full_dates(chart, days))
    return result


def _with_full_dates(chart: charts.Chart, days: Sequence[str]) -> charts.Chart:
    """The table under a chart gives each row's full date, the axis only month-day."""
    rows = tuple((days[i], *row[1:]) for i, row in enumerate(chart.table_rows))
    return charts.Chart(**{**chart.__dict__, "table_rows": rows})


# --- CSV -------------------------------------------------------------------------------------

REPORTS = {
    "retention-summary": "The retention report's figures",
    "overdue-by-category": "Overdue artefacts by category",
    "purge-lag": "Purge lag per day",
    "purges-per-day": "Artefacts purged per day",
    "consent-rates": "Consent rates per day, jurisdiction and purpose",
    "reviews-by-location": "Review items by reviewer location (30 days)",
    "deletion-requests": "Open deletion requests",
    "legal-holds": "Active legal holds",
    "policy-gaps": "Jurisdictions and categories without a policy",
}


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(head)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def report_csv(name: str, *, now: datetime) -> str:
    from compliance.retention.reports import retention_report
    from compliance.retention.selectors import legal_holds_list

    if name == "retention-summary":
        report = retention_report(now=now)
        lag = report["purge_lag"]
        rows: list[tuple[Any, ...]] = [
            ("generated_at", report["generated_at"]),
            ("overdue_artefacts", report["overdue_artefacts"]),
            ("held_artefacts", report["held_artefacts"]),
            ("purging_artefacts", report["purging_artefacts"]),
            ("open_deletion_requests", report["open_deletion_requests"]),
            ("active_legal_holds", report["active_legal_holds"]),
            ("policy_gaps", len(report["policy_gaps"])),
            *((f"purge_lag_{k}", v) for k, v in lag.items()),
        ]
        return _csv(("figure", "value"), rows)
    if name == "overdue-by-category":
        report = retention_report(now=now)
        oldest = selectors.oldest_overdue_by_category(now=now)
        return _csv(
            ("category", "overdue_artefacts", "oldest_expiry"),
            ((c, n, oldest.get(c)) for c, n in sorted(report["overdue_by_category"].items())),
        )
    if name == "purge-lag":
        return _csv(
            ("date", "artefacts_purged", "max_lag_seconds", "avg_lag_seconds"),
            (
                (d.day, d.purged, _round(d.max_seconds), _round(d.avg_seconds))
                for d in selectors.purge_lag_by_day(now=now)
            ),
        )
    if name == "purges-per-day":
        report = retention_report(now=now)
        return _csv(("date", "artefacts_purged"), selectors.purges_by_day(report=report, now=now))
    if name == "consent-rates":
        rates = consent_rates_over_time(now=now, days=selectors.DASHBOARD_DAYS)
        rows = []
        for (jurisdiction, purpose), points in sorted(rates.series.items()):
            for day, (profiles, granted) in zip(rates.days, points, strict=True):
                rate = round(100.0 * granted / profiles, 2) if profiles else None
                rows.append((day, jurisdiction, purpose, profiles, granted, rate))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return _csv(
            ("date", "jurisdiction", "purpose", "profiles", "granted", "rate_percent"), rows
        )
    if name == "reviews-by-location":
        return _csv(
            ("reviewer_location", "selected", "heard", "annotated", "revoked", "cross_border"),
            (
                (r.location, r.selected, r.heard, r.annotated, r.revoked, r.cross_border)
                for r in reviews_by_location(now=now, days=selectors.DASHBOARD_DAYS)
            ),
        )
    if name == "deletion-requests":
        return _csv(
            ("id", "profile", "status", "received_at", "recorded_from", "recorded_to", "attempts"),
            (
                (
                    d.public_id,
                    d.profile.external_id,
                    d.status,
                    d.created_at,
                    d.recorded_from,
                    d.recorded_to,
                    d.attempts,
                )
                for d in selectors.deletion_requests_open()
            ),
        )
    if name == "legal-holds":
        return _csv(
            (
                "id",
                "case_reference",
                "account",
                "profile",
                "recorded_from",
                "recorded_to",
                "placed_at",
                "placed_by",
                "reason",
            ),
            (
                (
                    h.pk,
                    h.case_reference,
                    h.account.external_id if h.account else None,
                    h.profile.external_id if h.profile else None,
                    h.recorded_from,
                    h.recorded_to,
                    h.created_at,
                    h.created_by,
                    h.reason,
                )
                for h in legal_holds_list()
            ),
        )
    if name == "policy-gaps":
        report = retention_report(now=now)
        return _csv(
            ("jurisdiction", "category", "applies_to"),
            ((g["jurisdiction"], g["category"], g["applies_to"]) for g in report["policy_gaps"]),
        )
    raise KeyError(name)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
