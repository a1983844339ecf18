"""What a draw may take, and how it picks: only recordings that `decide()` finds eligible,
all of them when asked for enough, and each with the same chance."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings

from compliance.accounts.models import Account, Profile
from compliance.consent.models import ConsentDefault, ConsentState
from compliance.eligibility.rules import decide, facts_for
from compliance.recordings.models import Artefact, Recording
from compliance.sampling import selectors
from compliance.sampling.models import ReviewItem
from compliance.sampling.selectors import (
    SampleScope,
    candidate_ids,
    candidates_recheck,
    sample_pick,
)
from compliance.sampling.services import SampleRequest, sample_draw
from compliance.transfers.models import TransferRule
from tests.eligibility.test_rules import NOW as RULES_NOW
from tests.eligibility.test_rules import _store as rule_store
from tests.eligibility.test_rules import worlds as rule_worlds
from tests.factories import RecordingFactory

from .conftest import HUMAN, TRAINING

pytestmark = pytest.mark.django_db

JURISDICTIONS = ["DE", "US", "GB", "FR"]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _world(seed: int) -> list[Recording]:
    """A random world: defaults, transfer rules, profiles with every consent state,
    children, flags, purged recordings, audio present, absent, purged or past its
    retention, transcripts likewise, and recordings handed out before."""
    rng = random.Random(seed)
    for jurisdiction in JURISDICTIONS:
        for purpose in (HUMAN, TRAINING):
            if rng.random() < 0.4:
                ConsentDefault.objects.create(
                    jurisdiction=jurisdiction, purpose=purpose, granted=rng.random() < 0.6
                )
        for location in ("DE", "US"):
            if jurisdiction != location and rng.random() < 0.4:
                TransferRule.objects.create(jurisdiction=jurisdiction, reviewer_location=location)
    profiles = []
    for i in range(10):
        account = Account.objects.create(
            external_id=f"w{seed}-a{i}", jurisdiction=rng.choice(JURISDICTIONS)
        )
        profile = Profile.objects.create(
            external_id=f"w{seed}-p{i}", account=account, is_child=rng.random() < 0.15
        )
        for purpose in (HUMAN, TRAINING):
            ConsentState.objects.create(
                profile=profile, purpose=purpose, granted=rng.choice([None, True, True, False])
            )
        profiles.append(profile)
    recordings = []
    for i in range(50):
        purged = rng.random() < 0.08
        recording = Recording.objects.create(
            external_id=f"w{seed}-r{i}",
            profile=rng.choice(profiles),
            recorded_at=NOW - timedelta(days=rng.randint(1, 60)),
            state="purged" if purged else "active",
            sensitive=rng.random() < 0.1,
            false_wake=rng.random() < 0.1,
        )
        for category in ("audio", "transcript"):
            kind = rng.choice(["ok", "ok", "ok", "none", "purged", "expired", "later"])
            if kind == "none":
                continue
            Artefact.objects.create(
                recording=recording,
                category=category,
                storage_key=f"audio/{i}.wav" if category == "audio" else "",
                state="purged" if kind == "purged" else "active",
                expires_at={
                    "expired": NOW - timedelta(hours=1),
                    "later": NOW + timedelta(days=1),
                }.get(kind),
            )
        recordings.append(recording)
    for recording in rng.sample(recordings, 6):
        state = rng.choice(["pending", "done", "revoked", "expired", "delivered-then-expired"])
        ReviewItem.objects.create(
            id=f"old-{recording.pk}",
            recording=recording,
            purpose=HUMAN,
            reviewer_location="DE",
            state=state.split("-")[-1] if "-" in state else state,
            created_at=NOW - timedelta(days=1),
            expires_at=NOW - timedelta(hours=1),
            delivered_at=NOW - timedelta(days=1) if "delivered" in state else None,
        )
    return recordings


def _by_decide(recording: Recording, purpose: str, location: str, now: datetime = NOW) -> bool:
    """The oracle: `decide()` for every purpose a reviewer's hearing needs, plus the
    hand-out's own conditions (audio to hear, not handed out before)."""
    for needed in dict.fromkeys([HUMAN, purpose]):
        loc = location if needed == HUMAN else None
        facts = facts_for([recording.external_id], purpose=needed, reviewer_location=loc, now=now)
        if decide(facts[recording.external_id], purpose=needed, reviewer_location=loc):
            return False
    audio = recording.artefacts.filter(category="audio", state="active").first()
    if audio is None or (audio.expires_at is not None and audio.expires_at <= now):
        return False
    items = ReviewItem.objects.filter(recording=recording)
    return not any(
        i.state in ("pending", "delivered", "done") or i.delivered_at is not None for i in items
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("purpose", "location"), [(HUMAN, "DE"), (HUMAN, "US"), (TRAINING, "DE")])
def test_a_draw_takes_exactly_what_decide_finds_eligible(seed, purpose, location):
    recordings = _world(seed)
    expected = {r.pk for r in recordings if _by_decide(r, purpose, location)}

    with transaction.atomic():
        draw = sample_draw(
            request=SampleRequest(purpose=purpose, size=1000, reviewer_location=location),
            actor="t",
            now=NOW,
        )
        drawn = set(
            ReviewItem.objects.filter(pk__in=[i.id for i in draw.items]).values_list(
                "recording_id", flat=True
            )
        )
        transaction.set_rollback(True)

    assert drawn == expected
    assert len(draw.items) == len(expected)


def _restricted(recording: Recording, scope: SampleScope) -> bool:
    return (
        (scope.jurisdiction is None or recording.profile.account.jurisdiction == scope.jurisdiction)
        and (scope.recorded_from is None or recording.recorded_at >= scope.recorded_from)
        and (scope.recorded_to is None or recording.recorded_at < scope.recorded_to)
    )


SCOPES = [
    SampleScope(purpose=HUMAN, reviewer_location="DE"),
    SampleScope(purpose=HUMAN, reviewer_location="US"),
    SampleScope(purpose=TRAINING, reviewer_location="DE"),
    SampleScope(purpose=TRAINING, reviewer_location="FR"),
    SampleScope(purpose=HUMAN, reviewer_location="DE", jurisdiction="GB"),
    SampleScope(
        purpose=HUMAN,
        reviewer_location="US",
        recorded_from=NOW - timedelta(days=30),
        recorded_to=NOW - timedelta(days=10),
    ),
]


@pytest.mark.parametrize("seed", range(6))
def test_the_candidate_sql_selects_exactly_what_decide_finds_eligible(seed):
    recordings = _world(seed)

    for scope in SCOPES:
        expected = {
            r.pk
            for r in recordings
            if _by_decide(r, scope.purpose, scope.reviewer_location) and _restricted(r, scope)
        }
        assert set(candidate_ids(scope, now=NOW)) == expected, scope
        among = [r.pk for r in recordings[::2]]
        assert set(candidate_ids(scope, now=NOW, among=among)) == expected & set(among), scope


def test_ids_given_in_chunks_are_answered_as_in_one_statement(monkeypatch):
    """SQLite has no arrays and takes the ids a chunk at a time; PostgreSQL in one array.
    Either way every candidate among them is found once, with the transcript it may
    show (one that is active and within its retention), and nothing else."""
    recordings = _world(3)
    for transcript in Artefact.objects.filter(category="transcript"):
        transcript.text = f"words of {transcript.recording_id}"
        transcript.save(update_fields=["text"])
    scope = SampleScope(purpose=TRAINING, reviewer_location="DE")
    expected = candidate_ids(scope, now=NOW)
    shown = {
        t.recording_id: t.text
        for t in Artefact.objects.filter(category="transcript", state="active")
        if t.expires_at is None or t.expires_at > NOW
    }
    among = [r.pk for r in recordings] + [max(r.pk for r in recordings) + 1]
    monkeypatch.setattr(selectors, "_SQLITE_CHUNK", 7)

    found = candidate_ids(scope, now=NOW, among=among)
    rechecked = candidates_recheck(scope, now=NOW, among=among)

    assert expected
    assert sorted(found) == sorted(expected)
    assert rechecked == {pk: shown.get(pk) for pk in expected}
    assert candidate_ids(scope, now=NOW, among=[]) == []
    assert candidates_recheck(scope, now=NOW, among=[]) == {}


@pytest.mark.django_db
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=rule_worlds())
def test_the_candidate_sql_agrees_with_decide_on_the_eligibility_apps_own_worlds(world):
    """The composed statement (the rule's fragments and the hand-out's conditions) on
    the eligibility app's generator, which grows with the rule: a condition added to
    the rule that the composition loses or contradicts fails this test."""
    with transaction.atomic():
        external_ids = rule_store(*world)
        recordings = list(Recording.objects.filter(external_id__in=external_ids))
        for purpose in (HUMAN, TRAINING):
            for location in ("DE", "US", "FR"):
                scope = SampleScope(purpose=purpose, reviewer_location=location)
                expected = {
                    r.pk for r in recordings if _by_decide(r, purpose, location, now=RULES_NOW)
                }
                assert set(candidate_ids(scope, now=RULES_NOW)) == expected, scope
        transaction.set_rollback(True)


def _pool(total: int, eligible_every: int) -> list[int]:
    """`total` recordings, every `eligible_every`-th sampleable (the rest refused)."""
    wanted = []
    for i in range(total):
        ok = i % eligible_every == 0
        recording = RecordingFactory(
            sensitive=not ok, profile__account__jurisdiction="DE", recorded_at=NOW
        )
        ConsentState.objects.filter(profile=recording.profile, purpose=HUMAN).update(granted=True)
        Artefact.objects.create(
            recording=recording, category="audio", storage_key=f"a-{recording.pk}.wav"
        )
        if ok:
            wanted.append(recording.pk)
    return wanted


@pytest.mark.parametrize(
    ("how", "options"),
    [
        ("probes", {"first_guess_rate": 1.0}),
        ("ORDER BY random()", {"max_probes": 1}),
    ],
)
def test_the_pick_is_uniform_and_only_takes_candidates(how, options):
    wanted = _pool(total=300, eligible_every=10)
    scope = SampleScope(purpose=HUMAN, reviewer_location="DE")
    rng = random.Random(7)
    counts: Counter[int] = Counter()
    draws = 800 if how == "probes" else 300

    for _ in range(draws):
        picked = sample_pick(scope=scope, now=timezone.now(), count=3, rng=rng, **options)
        assert len(picked) == len(set(picked)) == 3
        counts.update(picked)

    assert set(counts) <= set(wanted)
    assert set(counts) == set(wanted)  # 30 candidates, every one drawn
    mean = draws * 3 / len(wanted)
    spread = 5 * (mean * (1 - 3 / len(wanted))) ** 0.5  # five standard deviations
    assert all(abs(n - mean) < spread for n in counts.values()), counts
    chi2 = sum((n - mean) ** 2 / mean for n in counts.values())
    assert chi2 < 70  # 29 degrees of freedom: p < 0.0001 beyond this


def test_the_pick_returns_everything_when_fewer_exist_than_asked():
    wanted = _pool(total=300, eligible_every=50)
    scope = SampleScope(purpose=HUMAN, reviewer_location="DE")

    picked = sample_pick(
        scope=scope, now=timezone.now(), count=20, rng=random.Random(1), first_guess_rate=1.0
    )

    assert sorted(picked) == sorted(wanted)


def test_the_pick_of_an_empty_table_is_empty():
    scope = SampleScope(purpose=HUMAN, reviewer_location="DE")

    assert sample_pick(scope=scope, now=timezone.now(), count=5, rng=random.Random(1)) == []
