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


def test_a_bar_chart_of_zeros_draws_zero_not_no_data():
    chart = charts.bar_chart(
        slug="t",
        title="T",
        description="d",
        x_axis="x",
        y_axis="y",
        x_labels=["a", "b"],
        values=[0, 0],
        fmt=charts.count,
    )

    assert not chart.empty
    assert [b.height for b in chart.bars] == [0, 0]
    assert [b.value for b in chart.bars] == ["0", "0"]


def test_a_bar_chart_without_any_category_says_no_data():
    chart = charts.bar_chart(
        slug="t", title="T", description="d", x_axis="x", y_axis="y", x_labels=[], values=[]
    )

    assert chart.empty


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


def _two_lines(a, b):
    return charts.line_chart(
        slug="t",
        title="T",
        description="d",
        x_axis="Day",
        y_axis="Share",
        x_labels=["01", "02", "03"],
        series=[("US", a), ("DE", b)],
        fmt=charts.percent,
        y_max=100.0,
        legend=True,
    )


def test_lines_differ_in_dash_and_point_shape_not_only_in_colour():
    chart = _two_lines([50, 60, 70], [20, 30, 40])

    first, second = chart.series
    assert first.dash != second.dash
    assert first.marker != second.marker
    assert all(p.mark.startswith("M") for s in chart.series for p in s.points)
    assert len({s.color for s in chart.series}) == 2


def test_a_line_lying_on_another_still_shows_under_it():
    chart = _two_lines([100, 100, 100], [100, 100, 100])

    under, over = chart.series
    assert [p.y for p in under.points] == [p.y for p in over.points]
    # the one drawn first is wider, its points larger: it shows at the other's edges
    assert under.width > over.width
    assert under.points[0].size > over.points[0].size


def test_axis_text_is_at_least_12_pixels_at_the_narrowest_the_chart_is_drawn():
    assert charts.FONT_UNITS * charts.NARROWEST_PX / charts.WIDTH >= 12


@pytest.mark.parametrize(
    ("worst", "expected"),
    [
        ([30.0] * 29 + [400.0], "Purge lag stayed under 2 minutes on 29 of 30 days with purges"),
        ([None] * 30, "No artefact was purged by retention in the last 30 days."),
        ([10.0], "Purge lag stayed under 2 minutes on 1 of 1 day with purges"),
    ],
)
def test_the_purge_lag_sentence_says_on_how_many_days_the_goal_was_met(worst, expected):
    from compliance.web.dashboard import purge_lag_summary

    days = [f"2026-11-{d:02d}" for d in range(1, len(worst) + 1)]

    assert purge_lag_summary(worst, days).startswith(expected)


def test_the_sentences_say_zero_as_zero():
    from compliance.web.dashboard import overdue_summary, purges_summary, reviews_summary

    assert overdue_summary({"audio": 0, "transcript": 0}) == (
        "Nothing is overdue: every category meets the goal of zero."
    )
    assert overdue_summary({"audio": 3, "transcript": 1}) == (
        "4 artefacts are overdue, most of them audio (3)."
    )
    assert purges_summary([0, 0], ["2026-11-01", "2026-11-02"]) == (
        "Nothing was purged in the last 2 days."
    )
    assert reviews_summary([("DE", 0)], 0) == "No clip was heard by a reviewer in the last 30 days."
    assert reviews_summary([("DE", 4), ("US", 2)], 1) == (
        "6 clips heard in the last 30 days, in 2 reviewer locations; 1 from another jurisdiction."
    )


def test_the_consent_sentence_names_the_highest_and_lowest_share_on_the_latest_day():
    from compliance.web.dashboard import consent_summary

    chart = _two_lines([50, 60, 70], [20, 30, 40])

    assert consent_summary(chart.series) == (
        "On the latest day the share is highest in US (70%) and lowest in DE (40%)."
    )


@pytest.mark.django_db
def test_the_dashboard_draws_zero_overdue_as_zero_with_a_sentence_above_each_chart(
    officer_client,
):
    page = officer_client.get("/officer/").content.decode()

    assert (
        "No data in this period yet"
        not in page.split('id="chart-overdue"')[1].split("</figure>")[0]
    )
    assert "Nothing is overdue: every category meets the goal of zero." in page
    assert page.count('<p class="summary"') == 6
    assert 'stroke-dasharray="8 4"' in page or "consent" in page
