"""seed_demo leaves a demo whose every chart and page shows something true: ninety days
of consent, purges and policies, reviews in several countries, deletion requests (one
kept back by a legal hold), all in a ledger that verifies; and a second run adds no
history."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.consent.reports import consent_rates_over_time
from compliance.demo.history import HISTORY_DAYS, SESSION_HOURS
from compliance.demo.services import demo_seed
from compliance.ledger.models import LedgerCheckpoint, LedgerEntry
from compliance.recordings.models import Recording
from compliance.retention.models import DeletionRequest, DeletionStatus
from compliance.retention.reports import retention_report
from compliance.sampling.models import ReviewItem
from compliance.sampling.reports import reviews_by_location
from compliance.web import selectors
from compliance.web.dashboard import dashboard_charts

# One seed serves every check (it takes a while): the test writes what the history
# commits, as `dev.py run` would.
pytestmark = pytest.mark.django_db(transaction=True)

JURISDICTIONS = {"US", "DE", "GB", "IN", "RO"}


def test_the_demo_has_ninety_days_of_true_history_and_seeds_once(capsys):
    credentials = demo_seed()
    now = timezone.now()

    # the three demo logins and the officer stay
    assert set(credentials.users) == {"officer", "alice", "bob", "bernd"}
    assert credentials.api_key.startswith("esk_")

    # a few hundred profiles across five jurisdictions
    assert Profile.objects.count() >= 200
    jurisdictions = set(Account.objects.values_list("jurisdiction", flat=True))
    assert jurisdictions >= JURISDICTIONS

    # consent: every jurisdiction and purpose has profiles on each of the 90 days
    rates = consent_rates_over_time(now=now, days=HISTORY_DAYS)
    for jurisdiction in JURISDICTIONS:
        for purpose in ("human_review", "model_training"):
            points = rates.series[(jurisdiction, purpose)]
            assert len(points) == HISTORY_DAYS
            assert all(profiles > 0 for profiles, _ in points), (jurisdiction, purpose)
    changing = [key for key, points in rates.series.items() if len({g / p for p, g in points}) > 1]
    assert len(changing) >= 5  # the lines move: people changed their minds

    # purges every day, minutes after each expiry
    lag = selectors.purge_lag_by_day(now=now, days=HISTORY_DAYS)
    assert len(lag) == HISTORY_DAYS
    *before_today, today = lag
    assert all(day.max_seconds is not None for day in before_today)
    # today's session and its purge run in the evening (SESSION_HOURS): before that
    # there is truly no purge yet today, and the history must not invent one
    session = now.replace(hour=SESSION_HOURS[0], minute=0, second=0, microsecond=0)
    if now < session:
        assert today.max_seconds is None
    elif now >= session + timedelta(minutes=5):
        assert today.max_seconds is not None
    assert sorted(day.max_seconds for day in before_today)[HISTORY_DAYS // 2] < 10 * 60

    # policies for every jurisdiction and category: no gaps, nothing overdue
    report = retention_report(now=now)
    assert report["policy_gaps"] == []
    assert sum(report["overdue_by_category"].values()) == 0

    # reviews by reviewers in several countries, some heard, some annotated
    locations = reviews_by_location(now=now, days=30)
    assert len({r.location for r in locations if r.heard}) >= 3
    assert ReviewItem.objects.filter(state="done").exists()

    # every chart of the dashboard has something to draw
    charts = dashboard_charts(report=report, now=now)
    # (overdue stays at zero, as it should: drawing a zero is the charts' concern)
    drawn = [charts["purge_lag"], charts["purges"], charts["reviews"]]
    assert not any(chart.empty for chart in [*drawn, *charts["consent"]])
    assert len(charts["consent"]) == 2

    # deletion requests from today: done, and one kept back by a legal hold
    requests = list(DeletionRequest.objects.all())
    assert len(requests) == 3
    assert all(r.status == DeletionStatus.DONE for r in requests)
    assert sum(1 for r in requests if r.recordings_held > 0) == 1
    assert sum(1 for r in requests if r.recordings_deleted > 0) >= 2

    # all of it through the services: the ledger holds it and verifies
    assert LedgerEntry.objects.filter(kind="consent.granted").count() > 100
    assert LedgerEntry.objects.filter(kind="purge.batch").count() >= HISTORY_DAYS
    call_command("verify_ledger")
    assert "ledger OK" in capsys.readouterr().out

    # a second run refreshes the logins and the key, and adds no history
    counts = (Profile.objects.count(), Recording.objects.count(), ReviewItem.objects.count())
    again = demo_seed()
    assert (
        Profile.objects.count(),
        Recording.objects.count(),
        ReviewItem.objects.count(),
    ) == counts
    assert again.users["alice"] != credentials.users["alice"]
    assert get_user_model().objects.filter(username="alice").count() == 1

    # the command signs a checkpoint of it all at its end: an auditor's first
    # GET /api/v1/ledger/checkpoint right after a fresh start finds one
    call_command("seed_demo")
    newest = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    checkpoint = LedgerCheckpoint.objects.order_by("-tree_size").first()
    assert checkpoint is not None
    assert checkpoint.tree_size == newest
    assert f"Ledger checkpoint signed: tree size {newest}." in capsys.readouterr().out
