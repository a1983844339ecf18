"""The pages' reads (compliance/web/selectors.py): their figures and what they cost."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.accounts.models import Account, Profile
from compliance.actions.consent import consent_set
from compliance.actions.profiles import profile_create
from compliance.consent.models import ConsentDefault, ConsentEvent, Purpose
from compliance.retention.services import retention_policy_create
from compliance.web.selectors import (
    ConsentRates,
    LedgerRow,
    PolicyLimit,
    consent_rates_over_time,
    days_ending,
    ledger_entries,
    ledger_kinds,
    privacy_overview,
)
from compliance.web.wording import LedgerDetail
from tests.ledger.conftest import append
from tests.web.conftest import make_household, person

HUMAN = Purpose.HUMAN_REVIEW
TRAINING = Purpose.MODEL_TRAINING
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# --- consent rates over time -------------------------------------------------------------


def replayed_consent_rates(*, now: datetime, days: int) -> ConsentRates:
    """The figures by replaying every event in Python, in time order, over the profiles
    as they were created: the page's first implementation, kept as the statement of
    what the figures mean."""
    ends = [d + timedelta(days=1) for d in days_ending(now, days)]
    ends[-1] = now
    defaults = {
        (j, p): g
        for j, p, g in ConsentDefault.objects.values_list("jurisdiction", "purpose", "granted")
    }
    profiles = list(
        Profile.objects.filter(created_at__lte=now)
        .order_by("created_at", "id")
        .values_list("id", "account__jurisdiction", "is_child", "created_at")
    )
    events = iter(
        ConsentEvent.objects.filter(created_at__lte=now)
        .order_by("created_at", "id")
        .values_list("profile_id", "purpose", "granted", "created_at")
    )
    jurisdiction_of: dict[int, str] = {}
    child: set[int] = set()
    state: dict[tuple[int, str], bool] = {}
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    series: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)

    def counts(profile_id: int, purpose: str) -> bool:
        return not (purpose == HUMAN and profile_id in child)

    profile_at = 0
    pending = next(events, None)
    for index, end in enumerate(ends):
        while profile_at < len(profiles) and profiles[profile_at][3] < end:
            pid, jurisdiction, is_child, _ = profiles[profile_at]
            jurisdiction_of[pid] = jurisdiction
            if is_child:
                child.add(pid)
            for purpose in (HUMAN, TRAINING):
                if counts(pid, purpose):
                    totals[(jurisdiction, purpose)][0] += 1
                    totals[(jurisdiction, purpose)][1] += int(
                        bool(defaults.get((jurisdiction, purpose)))
                    )
            profile_at += 1
        while pending is not None and pending[3] < end:
            pid, purpose, granted, _ = pending
            jurisdiction = jurisdiction_of.get(pid)
            if jurisdiction is not None and counts(pid, purpose):
                before = state.get((pid, purpose), bool(defaults.get((jurisdiction, purpose))))
                state[(pid, purpose)] = granted
                totals[(jurisdiction, purpose)][1] += int(granted) - int(before)
            pending = next(events, None)
        for key, (n, granted) in totals.items():
            points = series[key]
            points.extend([(0, 0)] * (index - len(points)))
            points.append((n, granted))
    labels = [d.date().isoformat() for d in days_ending(now, days)]
    for points in series.values():
        points.extend([(0, 0)] * (len(labels) - len(points)))
    return ConsentRates(days=labels, series=dict(series))


@dataclass(frozen=True)
class GeneratedProfile:
    jurisdiction: str
    is_child: bool
    created_minutes_ago: int
    # (purpose, granted, minutes before NOW), in the order written; an event "before"
    # its profile is written at the profile's creation
    events: list[tuple[str, bool, int]]


def _midnights(days: int) -> list[int]:
    """Minutes before NOW of the day boundaries the figures are cut at, and their
    neighbours, where an off-by-one would show."""
    first_midnight = NOW.hour * 60 + NOW.minute
    return [first_midnight + 24 * 60 * d + nudge for d in range(days) for nudge in (-1, 0, 1)]


def moments(days: int) -> st.SearchStrategy[int]:
    """Minutes before NOW: before the charted days, within them, on their edges (often:
    the first day's end splits the history read from the days charted), at NOW and
    after it (not counted)."""
    return st.one_of(
        st.integers(min_value=-120, max_value=60 * 24 * 45),
        st.sampled_from([*_midnights(days + 1), 0, -1]),
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[int, list[GeneratedProfile]]:
    days = draw(st.sampled_from([30, 3, 1]))
    profile = st.builds(
        GeneratedProfile,
        jurisdiction=st.sampled_from(["US", "DE", "GB"]),
        is_child=st.booleans(),
        created_minutes_ago=moments(days),
        events=st.lists(
            st.tuples(st.sampled_from([HUMAN, TRAINING]), st.booleans(), moments(days)),
            max_size=6,
        ),
    )
    return days, draw(st.lists(profile, max_size=12))


defaults = st.dictionaries(
    st.tuples(st.sampled_from(["US", "DE", "GB", "FR"]), st.sampled_from([HUMAN, TRAINING])),
    st.booleans(),
)


def _store(profiles: list[GeneratedProfile], consent_defaults: dict) -> None:
    written = []
    for i, spec in enumerate(profiles):
        account = Account.objects.create(external_id=f"a{i}", jurisdiction=spec.jurisdiction)
        profile = Profile.objects.create(
            external_id=f"p{i}", account=account, is_child=spec.is_child
        )
        created_at = NOW - timedelta(minutes=spec.created_minutes_ago)
        Profile.objects.filter(pk=profile.pk).update(created_at=created_at)
        for purpose, granted, minutes_ago in spec.events:
            at = max(created_at, NOW - timedelta(minutes=minutes_ago))
            written.append((profile, purpose, granted, at))
    # Interleaved across profiles and not in time order, so that ids do not follow time.
    written.sort(key=lambda e: (e[3].minute % 7, e[0].pk))
    ConsentEvent.objects.bulk_create(
        ConsentEvent(
            profile=profile,
            purpose=purpose,
            granted=granted,
            channel="app",
            notice_version="1",
            actor="test",
            created_at=at,
        )
        for profile, purpose, granted, at in written
    )
    for (jurisdiction, purpose), granted in consent_defaults.items():
        ConsentDefault.objects.create(jurisdiction=jurisdiction, purpose=purpose, granted=granted)


def _at(days_ago: float) -> int:
    return int(days_ago * 24 * 60)


@pytest.mark.django_db
@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), consent_defaults=defaults)
def test_consent_rates_are_the_replay_of_the_events(world, consent_defaults):
    days, profiles = world
    with transaction.atomic():
        _store(profiles, consent_defaults)

        expected = replayed_consent_rates(now=NOW, days=days)
        rates = consent_rates_over_time(now=NOW, days=days)

        assert rates.days == expected.days
        assert rates.series == expected.series
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_consent_rates_follow_a_withdrawal_from_the_day_it_happened():
    ConsentDefault.objects.create(jurisdiction="DE", purpose=TRAINING, granted=True)
    _store(
        [
            GeneratedProfile("DE", False, _at(10), [(TRAINING, False, _at(3))]),
            GeneratedProfile("DE", False, _at(10), []),
            GeneratedProfile("DE", True, _at(10), [(HUMAN, True, _at(10))]),  # never counts
        ],
        {},
    )

    rates = consent_rates_over_time(now=NOW, days=5)

    # created 10 days ago, withdrawn 3 days ago (2026-05-29)
    assert rates.days == ["2026-05-28", "2026-05-29", "2026-05-30", "2026-05-31", "2026-06-01"]
    assert rates.series[("DE", TRAINING)] == [(3, 3), (3, 2), (3, 2), (3, 2), (3, 2)]
    assert rates.series[("DE", HUMAN)] == [(2, 0)] * 5


@pytest.mark.django_db
def test_an_event_stamped_before_its_profile_counts_from_the_profiles_first_day():
    """A writer's clock a little behind: the answer still holds once the profile counts
    (the replay above would drop it when the two fall on different days)."""
    _store([GeneratedProfile("GB", False, _at(2), [])], {})
    ConsentEvent.objects.create(
        profile=Profile.objects.get(),
        purpose=TRAINING,
        granted=True,
        channel="app",
        notice_version="1",
        actor="test",
        created_at=NOW - timedelta(days=3),
    )

    rates = consent_rates_over_time(now=NOW, days=5)

    # created on 2026-05-30, the event stamped a day earlier
    assert rates.series[("GB", TRAINING)] == [(0, 0), (0, 0), (1, 1), (1, 1), (1, 1)]


# --- the privacy page ----------------------------------------------------------------------


@pytest.mark.parametrize("extra_profiles", [0, 5])
@pytest.mark.django_db
def test_the_overview_costs_the_same_few_queries_however_many_profiles(
    django_assert_num_queries, extra_profiles
):
    """The profiles with their counts, their consent states, the defaults, the policies."""
    home = make_household()
    for n in range(extra_profiles):
        profile_create(
            external_id=f"prof-alice-{n}",
            account_external_id=home.adult.account.external_id,
            is_child=n % 2 == 1,
            actor="test",
        )

    with django_assert_num_queries(4):
        overview = privacy_overview(user=home.user)

    assert len(overview) == 2 + extra_profiles


@pytest.mark.django_db
def test_the_overview_gives_each_profile_its_own_consent_recordings_and_limits():
    ConsentDefault.objects.create(jurisdiction="US", purpose=TRAINING, granted=True)
    retention_policy_create(jurisdiction="US", category="audio", retention_days=90, actor="t")
    retention_policy_create(
        jurisdiction="*", category="transcript", applies_to="children", retention_days=30, actor="t"
    )
    home = make_household()
    consent_set(
        profile=home.adult,
        purpose=HUMAN,
        granted=True,
        channel="web",
        notice_version="1",
        actor="test",
    )
    make_household("bob")  # someone else's, not shown

    overview = privacy_overview(user=home.user)

    assert [o.profile.external_id for o in overview] == ["prof-alice", "prof-alice-kid"]
    adult, child = overview
    assert [(c.purpose, c.granted, c.source) for c in adult.consents] == [
        (HUMAN, True, "explicit"),
        (TRAINING, True, "default"),
    ]
    assert [(c.purpose, c.granted, c.source) for c in child.consents] == [
        (HUMAN, False, "none"),
        (TRAINING, True, "default"),
    ]
    assert (adult.recordings, child.recordings) == (3, 1)
    assert adult.policy_limits == [PolicyLimit("audio", 90)]
    assert child.policy_limits == [PolicyLimit("audio", 90), PolicyLimit("transcript", 30)]


@pytest.mark.django_db
def test_the_overview_of_someone_without_profiles_is_empty(django_assert_num_queries):
    user = person("nobody")

    with django_assert_num_queries(1):
        assert privacy_overview(user=user) == []


# --- the ledger page -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_ledger_filter_offers_each_kind_once_in_order_in_one_query(
    django_assert_num_queries,
):
    with django_assert_num_queries(1):
        assert ledger_kinds() == []
    for kind in ("purge.batch", "consent.granted", "sample.drawn", "consent.granted"):
        append(2, kind=kind)

    with django_assert_num_queries(1):
        kinds = ledger_kinds()

    assert kinds == ["consent.granted", "purge.batch", "sample.drawn"]


@pytest.mark.django_db
def test_a_ledger_page_gives_each_entrys_payload_as_labelled_texts():
    from compliance.ledger.services import ledger_append

    with transaction.atomic():
        ledger_append(kind="k", payload={"items": 2, "get": [1, "a"], "values": {"b": None}})
        ledger_append(kind="k", payload={"reason": "<i>x</i>"})

    newest, oldest = ledger_entries(page=1).object_list

    assert isinstance(newest, LedgerRow)
    assert newest.details == [LedgerDetail(label="reason", text="<i>x</i>")]
    assert oldest.details == [
        LedgerDetail(label="get", text="1, a"),
        LedgerDetail(label="items", text="2"),
        LedgerDetail(label="values", text="b: \u2013"),
    ]
    assert (oldest.seq, oldest.kind) == (1, "k")
