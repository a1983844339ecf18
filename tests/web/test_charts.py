"""Chart geometry and the dashboard's figures, without a browser."""

import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.web import charts, selectors
from compliance.web.dashboard import dashboard_charts


@pytest.mark.parametrize(
    ("value", "whole", "expected"),
    [
        (0, True, (4, 1)),
        (3, True, (4, 1)),
        (9, True, (12, 3)),
        (13, False, (20, 5)),
        (0.3, False, (0.4, 0.1)),
        (1234, True, (2000, 500)),
    ],
)
def test_axes_end_on_round_numbers_and_counts_step_in_whole_numbers(value, whole, expected):
    top, step = charts.nice_ceiling(value, whole=whole)

    assert (top, step) == pytest.approx(expected)
    if whole:
        assert step == int(step)


@pytest.mark.parametrize(
    ("seconds", "ticks"),
    [
        (45, ["0 s", "15 s", "30 s", "45 s", "1 min"]),
        (200, ["0 s", "1 min", "2 min", "3 min", "4 min"]),
        (9000, ["0 s", "1 h", "2 h", "3 h", "4 h"]),
    ],
)
def test_time_axes_tick_on_whole_seconds_minutes_and_hours(seconds, ticks):
    top, step = charts.time_ceiling(seconds)

    assert [charts.duration(step * i) for i in range(5)] == ticks
    assert top >= seconds


def test_a_line_chart_places_points_inside_the_frame_and_keeps_its_data_as_a_table():
    chart = charts.line_chart(
        slug="t",
        title="T",
        description="d",
        x_axis="Day",
        y_axis="Rate",
        x_labels=["a", "b", "c"],
        series=[("US", [0.0, 50.0, None]), ("DE", [100.0, 25.0, 75.0])],
        fmt=charts.percent,
        y_max=100.0,
    )

    points = [p for s in chart.series for p in s.points]
    assert len(points) == 5  # the missing value is left out, not drawn as zero
    assert all(chart.left <= p.x <= chart.right for p in points)
    assert all(chart.top <= p.y <= chart.bottom for p in points)
    assert chart.series[1].points[0].y == pytest.approx(chart.top)
    assert chart.table_head == ("Day", "US", "DE")
    assert chart.table_rows[2] == ("c", "\u2013", "75%")
    assert chart.legend == (("US", charts.PALETTE[0]), ("DE", charts.PALETTE[1]))


def test_a_bar_chart_of_nothing_says_so():
    chart = charts.bar_chart(
        slug="t",
        title="T",
        description="d",
        x_axis="x",
        y_axis="y",
        x_labels=["a", "b"],
        values=[0, 0],
    )

    assert chart.empty
    assert [b.height for b in chart.bars] == [0, 0]


@pytest.mark.django_db
def test_the_pages_work_before_the_sampling_app_has_its_model(monkeypatch):
    """Until compliance.sampling has ReviewItem, recordings read as not reviewed and the
    dashboard shows no reviews, rather than failing."""
    monkeypatch.setitem(sys.modules, "compliance.sampling.models", None)

    assert selectors.review_status_for(recording_ids=[1, 2]) == {}
    assert selectors.reviews_by_location(now=timezone.now()) == []
    report = {"purges_per_day": [], "overdue_by_category": {}}
    assert dashboard_charts(report=report, now=timezone.now())["reviews"].empty


@pytest.mark.django_db
def test_purge_lag_per_day_is_worst_and_average_of_that_days_retention_purges():
    from compliance.recordings.models import Artefact
    from tests.factories import ArtefactFactory

    now = timezone.now()
    yesterday = now - timedelta(days=1)
    for lag, reason in ((30, "retention_policy"), (90, "user_choice"), (9999, "deletion_request")):
        artefact = ArtefactFactory(category="transcript")
        Artefact.objects.filter(pk=artefact.pk).update(
            state="purged",
            expires_at=yesterday,
            purged_at=yesterday + timedelta(seconds=lag),
            purge_reason=reason,
        )

    days = {d.day: d for d in selectors.purge_lag_by_day(now=now)}

    day = days[yesterday.date().isoformat()]
    assert (day.purged, day.max_seconds, day.avg_seconds) == (2, 90.0, 60.0)
    assert days[now.date().isoformat()].max_seconds is None
