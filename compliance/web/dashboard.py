"""The dashboard's charts and the CSV reports, from one set of figures, so that what an
officer exports is what they saw."""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from compliance.consent.models import Purpose
from compliance.consent.reports import consent_rates_over_time
from compliance.sampling.reports import reviews_by_location

from . import charts, selectors
from .forms import PURPOSE_SHORT

# The purge-lag sentence counts the days whose worst lag stayed under this.
LAG_GOAL_SECONDS = 120


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
            title=_("Overdue artefacts by category"),
            description=_(
                "Artefacts past their effective retention and not purged yet, "
                "not counting those under a legal hold. The goal is zero."
            ),
            x_axis=_("Category"),
            y_axis=_("Overdue artefacts"),
            x_labels=categories,
            values=[overdue.get(c, 0) for c in categories],
            fmt=charts.count,
            color=charts.PALETTE[1],
        ),
        "purge_lag": _with_full_dates(
            charts.line_chart(
                slug="purge-lag",
                title=_("Purge lag"),
                description=_(
                    "How long after their retention ended artefacts were purged, "
                    "worst and average per day (retention purges only)."
                ),
                x_axis=_("Day"),
                y_axis=_("Lag"),
                x_labels=short_days,
                series=[
                    (_("Worst"), [d.max_seconds for d in lag]),
                    (_("Average"), [d.avg_seconds for d in lag]),
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
                title=_("Purges per day"),
                description=_(
                    "Artefacts purged each day, for every reason (retention, user "
                    "choice, deletion requests)."
                ),
                x_axis=_("Day"),
                y_axis=_("Artefacts purged"),
                x_labels=short_days,
                values=[n for _, n in purges],
                fmt=charts.count,
            ),
            days,
        ),
        "consent": [],
        "reviews": charts.bar_chart(
            slug="reviews-by-location",
            title=_("Clips heard, by reviewer location"),
            description=_(
                "Review items whose audio a reviewer fetched in the last 30 days, "
                "by the reviewer's country."
            ),
            x_axis=_("Reviewer location"),
            y_axis=_("Clips heard"),
            x_labels=[r.location for r in reviews],
            values=[r.heard for r in reviews],
            fmt=charts.count,
            color=charts.PALETTE[2],
            extra_columns=[
                (_("Selected"), [charts.count(r.selected) for r in reviews]),
                (_("Annotated"), [charts.count(r.annotated) for r in reviews]),
                (_("Revoked"), [charts.count(r.revoked) for r in reviews]),
                (_("From another jurisdiction"), [charts.count(r.cross_border) for r in reviews]),
            ],
        ),
    }
    shown = rates.jurisdictions()[: selectors.CONSENT_CHART_JURISDICTIONS]
    for purpose in Purpose.values:
        keys = [(j, purpose) for j in shown if (j, purpose) in rates.series]
        chart = charts.line_chart(
            slug=f"consent-{purpose.replace('_', '-')}",
            title=_("Consent to %(purpose)s") % {"purpose": PURPOSE_SHORT[purpose]},
            description=(
                _(
                    "Share of voice profiles that allow %(purpose)s, per jurisdiction, at the "
                    "end of each day (children's profiles excluded: they can never allow it)."
                )
                if purpose == Purpose.HUMAN_REVIEW
                else _(
                    "Share of voice profiles that allow %(purpose)s, per jurisdiction, at the "
                    "end of each day."
                )
            )
            % {"purpose": PURPOSE_SHORT[purpose]},
            x_axis=_("Day"),
            y_axis=_("Profiles consenting"),
            x_labels=short_days,
            series=[(j, [rates.rate((j, p), i) for i in range(len(days))]) for j, p in keys],
            fmt=charts.percent,
            y_max=100.0,
            legend=True,
        )
        chart = _summarised(chart, consent_summary(chart.series))
        result["consent"].append(_with_full_dates(chart, days))
    result["overdue"] = _summarised(
        result["overdue"], overdue_summary({c: overdue.get(c, 0) for c in categories})
    )
    result["purge_lag"] = _summarised(
        result["purge_lag"], purge_lag_summary([d.max_seconds for d in lag], days)
    )
    result["purges"] = _summarised(result["purges"], purges_summary([n for _, n in purges], days))
    result["reviews"] = _summarised(
        result["reviews"],
        reviews_summary(
            [(r.location, r.heard) for r in reviews], sum(r.cross_border for r in reviews)
        ),
    )
    return result


def _summarised(chart: charts.Chart, summary: str) -> charts.Chart:
    return charts.Chart(**{**chart.__dict__, "summary": summary})


def _day(iso_day: str) -> str:
    return date_format(datetime.fromisoformat(iso_day).date(), "DATE_FORMAT")


def _n(value: float) -> str:
    return number_format(value, 0, force_grouping=True)


# --- the sentence above each chart: what it shows now --------------------------------


def overdue_summary(by_category: dict[str, int]) -> str:
    total = sum(by_category.values())
    if total == 0:
        return _("Nothing is overdue: every category meets the goal of zero.")
    worst = max(by_category, key=lambda c: by_category[c])
    return ngettext(
        "%(n)s artefact is overdue, most of them %(category)s (%(worst)s).",
        "%(n)s artefacts are overdue, most of them %(category)s (%(worst)s).",
        total,
    ) % {"n": _n(total), "category": worst, "worst": _n(by_category[worst])}


def purge_lag_summary(worst_per_day: Sequence[float | None], days: Sequence[str]) -> str:
    """ "Purge lag stayed under 2 minutes on 29 of 30 days; the worst was 3 min on …"."""
    measured = [(v, d) for v, d in zip(worst_per_day, days, strict=True) if v is not None]
    if not measured:
        return _("No artefact was purged by retention in the last %(days)d days.") % {
            "days": len(days)
        }
    under = sum(1 for v, _d in measured if v < LAG_GOAL_SECONDS)
    worst, worst_day = max(measured)
    return ngettext(
        "Purge lag stayed under %(goal)s on %(under)d of %(days)d day with purges; "
        "the worst was %(worst)s on %(day)s.",
        "Purge lag stayed under %(goal)s on %(under)d of %(days)d days with purges; "
        "the worst was %(worst)s on %(day)s.",
        len(measured),
    ) % {
        "goal": _("2 minutes"),
        "under": under,
        "days": len(measured),
        "worst": charts.duration(worst),
        "day": _day(worst_day),
    }


def purges_summary(per_day: Sequence[int], days: Sequence[str]) -> str:
    total = sum(per_day)
    if total == 0:
        return _("Nothing was purged in the last %(days)d days.") % {"days": len(days)}
    most = max(range(len(per_day)), key=lambda i: (per_day[i], i))
    return ngettext(
        "%(n)s artefact purged in %(days)d days, the most on %(day)s (%(most)s).",
        "%(n)s artefacts purged in %(days)d days, the most on %(day)s (%(most)s).",
        total,
    ) % {"n": _n(total), "days": len(days), "day": _day(days[most]), "most": _n(per_day[most])}


def reviews_summary(heard_by_location: Sequence[tuple[str, int]], cross_border: int) -> str:
    total = sum(n for _loc, n in heard_by_location)
    if total == 0:
        return _("No clip was heard by a reviewer in the last 30 days.")
    places = sum(1 for _loc, n in heard_by_location if n)
    clips = ngettext(
        "%(n)s clip heard in the last 30 days", "%(n)s clips heard in the last 30 days", total
    ) % {"n": _n(total)}
    where = ngettext(
        "in %(places)d reviewer location", "in %(places)d reviewer locations", places
    ) % {"places": places}
    if cross_border == 0:
        return _("%(clips)s, %(where)s; all from the reviewers' own jurisdiction.") % {
            "clips": clips,
            "where": where,
        }
    return _("%(clips)s, %(where)s; %(cross)s from another jurisdiction.") % {
        "clips": clips,
        "where": where,
        "cross": _n(cross_border),
    }


def consent_summary(series: Sequence[charts.Series]) -> str:
    """The latest day's highest and lowest share among the jurisdictions drawn."""
    latest = [(s.name, s.points[-1].label.rsplit(": ", 1)[-1]) for s in series if s.points]
    if not latest:
        return _("No voice profiles in these jurisdictions yet.")
    if len(latest) == 1:
        name, share = latest[0]
        return _("On the latest day %(share)s of the profiles in %(where)s allow it.") % {
            "share": share,
            "where": name,
        }
    ranked = sorted(latest, key=lambda item: float(item[1].rstrip("%")))
    (low, low_share), (high, high_share) = ranked[0], ranked[-1]
    if low_share == high_share:
        return _(
            "On the latest day %(share)s of the profiles allow it in every jurisdiction shown."
        ) % {"share": high_share}
    return _(
        "On the latest day the share is highest in %(high)s (%(high_share)s) and lowest in "
        "%(low)s (%(low_share)s)."
    ) % {"high": high, "high_share": high_share, "low": low, "low_share": low_share}


def _with_full_dates(chart: charts.Chart, days: Sequence[str]) -> charts.Chart:
    """The table under a chart gives each row's full date, the axis only month-day."""
    rows = tuple((days[i], *row[1:]) for i, row in enumerate(chart.table_rows))
    return charts.Chart(**{**chart.__dict__, "table_rows": rows})


# --- CSV -------------------------------------------------------------------------------------

REPORTS: dict[str, Any] = {
    "retention-summary": gettext_lazy("The retention report's figures"),
    "overdue-by-category": gettext_lazy("Overdue artefacts by category"),
    "purge-lag": gettext_lazy("Purge lag per day"),
    "purges-per-day": gettext_lazy("Artefacts purged per day"),
    "consent-rates": gettext_lazy("Consent rates per day, jurisdiction and purpose"),
    "reviews-by-location": gettext_lazy("Review items by reviewer location (30 days)"),
    "deletion-requests": gettext_lazy("Open deletion requests"),
    "legal-holds": gettext_lazy("Active legal holds"),
    "policy-gaps": gettext_lazy("Jurisdictions and categories without a policy"),
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
