"""Ninety days of synthetic history for the demo, so that every chart and page shows
something true on the first run.

It is played forward day by day through the services, as the platform and the beat would
have produced it: profiles appear and decide, recordings arrive in a few sessions a day,
reviewers in five countries draw samples and listen, the purge runs minutes after each
expiry. Services that need the time of a change take it (`at`, `now`); the ledger entries
are appended now and name that time. Nothing fakes the clock, and nothing is written
around the services, so `verify_ledger` checks all of it.

Deterministic (one seeded random generator) and written once: `history_seeded()` says
whether it is there, and `demo_seed` skips it then.
"""

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction

from compliance.accounts.models import Account, Profile, RetentionChoice
from compliance.accounts.services import account_create
from compliance.actions.consent import consent_set
from compliance.actions.ingest import recordings_register
from compliance.actions.profiles import profile_create, profile_retention_set
from compliance.consent.models import ConsentState, Purpose
from compliance.recordings.services import RecordingInput
from compliance.retention.deletion_requests import deletion_request_run
from compliance.retention.models import AppliesTo, RetentionPolicy
from compliance.retention.purge import purge_expired
from compliance.retention.services import (
    deletion_request_create,
    legal_hold_place,
    retention_policy_create,
)
from compliance.sampling.models import Reviewer
from compliance.sampling.services import (
    Caller,
    SampleRequest,
    review_item_annotate,
    review_item_audio_open,
    reviewer_create,
    sample_draw,
)
from compliance.transfers.models import TransferRule
from compliance.transfers.services import transfer_rule_create

HISTORY_DAYS = 90
# Recordings start this much earlier, so that retention purges run from the first day.
LEAD_DAYS = 30
ACTOR = "seed_demo"
PLATFORM = "client:demo-platform"  # what people decide in the app reaches Earshot this way
MARKER_ACCOUNT = "acct-demo-001"

# Profiles per jurisdiction, and the chance that one allows human review / model
# training when it first decides (None: it leaves model training to the default).
JURISDICTIONS: dict[str, tuple[int, float, float | None]] = {
    "US": (70, 0.35, None),
    "DE": (45, 0.25, 0.45),
    "GB": (45, 0.30, 0.50),
    "IN": (40, 0.50, 0.60),
    "RO": (30, 0.20, 0.40),
}
# Days kept, per jurisdiction and category (EU covers DE and RO); children's audio less.
POLICIES: dict[str, dict[str, int]] = {
    "US": {"audio": 30, "transcript": 90, "annotation": 90},
    "EU": {"audio": 30, "transcript": 60, "annotation": 90},
    "GB": {"audio": 60, "transcript": 60, "annotation": 90},
    "IN": {"audio": 45, "transcript": 90, "annotation": 90},
}
CHILDREN_AUDIO_DAYS = 14
TRANSFER_RULES = [("DE", "IE"), ("RO", "IE"), ("RO", "DE"), ("GB", "IE"), ("US", "IN")]
REVIEWERS = [("reviewer-ie", "IE"), ("reviewer-de", "DE"), ("reviewer-in", "IN")]
REVIEWERS += [("reviewer-us", "US"), ("reviewer-gb", "GB")]
# The platform registers a day's recordings in one evening session; the purge follows
# each expiry within minutes. Reviews: the last REVIEW_DAYS days, one reviewer a day.
SESSION_HOURS = (18,)
RECORDINGS_PER_DAY = 10
REVIEW_DAYS = 30
ENGLISH = [
    "turn-on-lights.wav",
    "weather-tomorrow.wav",
    "timer-ten.wav",
    "play-jazz.wav",
    "alarm-seven.wav",
    "call-mom.wav",
    "shopping-milk.wav",
]
GERMAN = ["wetter-morgen.wav", "licht-aus.wav"]
CHILD_CLIP = "kids-story.wav"
CHANNELS = ["app", "app", "web", "voice"]


@dataclass
class _Clip:
    data: bytes
    sha256: str
    transcript: str


def history_seeded() -> bool:
    return Account.objects.filter(external_id=MARKER_ACCOUNT).exists()


def _day_start(now: datetime, days_ago: int) -> datetime:
    return (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)


def _clips(voice_dir: Path, manifest: dict[str, dict]) -> dict[str, _Clip]:
    clips = {}
    for name in [*ENGLISH, *GERMAN, CHILD_CLIP]:
        data = (voice_dir / name).read_bytes()
        clips[name] = _Clip(data, hashlib.sha256(data).hexdigest(), manifest[name]["transcript"])
    return clips


@transaction.atomic
def _setup(start: datetime) -> None:
    """Policies in force from before the first recording, transfer rules, reviewers."""
    if not RetentionPolicy.objects.exists():
        for jurisdiction, days in POLICIES.items():
            for category, retention_days in days.items():
                retention_policy_create(
                    jurisdiction=jurisdiction,
                    category=category,
                    retention_days=retention_days,
                    effective_from=start,
                    actor=ACTOR,
                )
        retention_policy_create(
            jurisdiction="*",
            category="audio",
            retention_days=CHILDREN_AUDIO_DAYS,
            applies_to=AppliesTo.CHILDREN,
            effective_from=start,
            actor=ACTOR,
        )
    for jurisdiction, location in TRANSFER_RULES:
        if not TransferRule.objects.filter(
            jurisdiction=jurisdiction, reviewer_location=location
        ).exists():
            transfer_rule_create(jurisdiction=jurisdiction, reviewer_location=location, actor=ACTOR)
    for username, location in REVIEWERS:
        user, _ = get_user_model().objects.get_or_create(username=username)
        if not Reviewer.objects.filter(user=user).exists():
            user.set_unusable_password()
            user.save()
            reviewer_create(user=user, location=location, actor=ACTOR)


@dataclass
class _Person:
    jurisdiction: str
    account: str
    profiles: list[tuple[str, bool]]  # (external id, is_child)
    joined: datetime


class _History:
    def __init__(self, *, now: datetime, voice_dir: Path, manifest: dict[str, dict]) -> None:
        self.now = now
        self.rng = random.Random(2026)  # noqa: S311 - demo data, not a secret
        self.clips = _clips(voice_dir, manifest)
        self.people: list[_Person] = []
        self.joins: dict[int, list[tuple[_Person, float, float | None]]] = defaultdict(list)
        self.flips: dict[int, list[tuple[_Person, str]]] = defaultdict(list)
        self.recording_no = 0
        self.reviewers = {r.user.username: r for r in Reviewer.objects.select_related("user").all()}

    # -- the plan: who joins when, and which decisions they change later

    def plan(self) -> None:
        total = HISTORY_DAYS + LEAD_DAYS
        number = 0
        for jurisdiction, (count, review_rate, training_rate) in JURISDICTIONS.items():
            for _ in range(count):
                number += 1
                # more people joined early, so the lines start from a real base
                days_ago = total - int(self.rng.triangular(0, total, 0))
                joined = _day_start(self.now, days_ago) + timedelta(
                    hours=self.rng.randint(7, 21), minutes=self.rng.randint(0, 59)
                )
                account = f"acct-demo-{number:03d}"
                profiles = [(f"prof-demo-{number:03d}", False)]
                if self.rng.random() < 0.12:
                    profiles.append((f"prof-demo-{number:03d}-kid", True))
                person = _Person(jurisdiction, account, profiles, joined)
                self.people.append(person)
                self.joins[days_ago].append((person, review_rate, training_rate))
                if self.rng.random() < 0.3 and days_ago > 1:
                    later = self.rng.randint(1, days_ago - 1)
                    self.flips[later].append((person, Purpose.HUMAN_REVIEW))
                if self.rng.random() < 0.1 and days_ago > 1:
                    later = self.rng.randint(1, days_ago - 1)
                    self.flips[later].append((person, Purpose.MODEL_TRAINING))

    # -- one day

    def join(self, person: _Person, review_rate: float, training_rate: float | None) -> None:
        account_create(external_id=person.account, jurisdiction=person.jurisdiction, actor=ACTOR)
        for external_id, is_child in person.profiles:
            profile = profile_create(
                external_id=external_id,
                account_external_id=person.account,
                is_child=is_child,
                actor=ACTOR,
                at=person.joined,
            )
            decided = person.joined + timedelta(minutes=2)
            if not is_child:
                self.decide(profile, Purpose.HUMAN_REVIEW, review_rate, decided)
            if training_rate is not None or self.rng.random() < 0.15:
                self.decide(profile, Purpose.MODEL_TRAINING, training_rate or 0.0, decided)
            if not is_child and self.rng.random() < 0.2:
                choice = self.rng.choice(
                    [RetentionChoice.THREE_MONTHS, RetentionChoice.EIGHTEEN_MONTHS]
                )
                profile_retention_set(profile=profile, choice=choice, actor=ACTOR)

    def decide(self, profile: Profile, purpose: str, rate: float, at: datetime) -> None:
        consent_set(
            profile=profile,
            purpose=purpose,
            granted=self.rng.random() < rate,
            channel=self.rng.choice(CHANNELS),
            notice_version="2026-01",
            actor=PLATFORM,
            at=at,
        )

    def flip(self, person: _Person, purpose: str, day: datetime) -> None:
        profile = Profile.objects.select_related("account").get(external_id=person.profiles[0][0])
        current = ConsentState.objects.filter(profile=profile, purpose=purpose)
        granted = current.values_list("granted", flat=True).first()
        consent_set(
            profile=profile,
            purpose=purpose,
            granted=not granted,
            channel=self.rng.choice(CHANNELS),
            notice_version="2026-01",
            actor=PLATFORM,
            at=day + timedelta(hours=self.rng.randint(7, 22), minutes=self.rng.randint(0, 59)),
        )

    def record(self, day: datetime) -> None:
        members = [p for p in self.people if p.joined < day]
        if not members:
            return
        items = []
        for hour in SESSION_HOURS:
            for _ in range(RECORDINGS_PER_DAY // len(SESSION_HOURS)):
                person = self.rng.choice(members)
                profile_id, is_child = self.rng.choice(person.profiles)
                language = GERMAN if person.jurisdiction == "DE" else ENGLISH
                name = CHILD_CLIP if is_child else self.rng.choice(language)
                clip = self.clips[name]
                self.recording_no += 1
                external_id = f"rec-demo-{self.recording_no:05d}"
                key = default_storage.save(
                    f"{settings.INGEST_AUDIO_PREFIX}demo/{external_id}.wav",
                    ContentFile(clip.data),
                )
                roll = self.rng.random()
                flags = ("false_wake",) if roll < 0.05 else ("sensitive",) if roll < 0.08 else ()
                items.append(
                    RecordingInput(
                        external_id=external_id,
                        profile_external_id=profile_id,
                        recorded_at=day + timedelta(hours=hour, seconds=self.rng.randint(0, 120)),
                        transcript=clip.transcript,
                        flags=flags,
                        audio_key=key,
                        audio_size=len(clip.data),
                        audio_sha256=clip.sha256,
                    )
                )
        results = recordings_register(items=items, actor=PLATFORM)
        failed = [r for r in results if r.status == "error"]
        if failed:
            raise RuntimeError(f"demo recordings refused: {failed[0]}")

    def review(self, day: datetime) -> None:
        for username, _ in self.rng.sample(REVIEWERS, 1):
            reviewer = self.reviewers[username]
            at = day + timedelta(hours=self.rng.choice([20, 21, 22]))
            draw = sample_draw(
                request=SampleRequest(
                    purpose=Purpose.HUMAN_REVIEW,
                    size=self.rng.randint(2, 4),
                    reviewer=username,
                    recorded_to=at,
                ),
                actor=ACTOR,
                now=at,
                rng=self.rng,
            )
            caller = Caller(user=reviewer.user, via_link=False, actor=f"user:{reviewer.user.pk}")
            for item in draw.items:
                if self.rng.random() < 0.2:
                    continue  # never heard: it expires
                heard = at + timedelta(minutes=1)
                review_item_audio_open(item_id=item.id, caller=caller, now=heard).file.close()
                if self.rng.random() < 0.75:
                    review_item_annotate(
                        item_id=item.id,
                        text="Transcript checked; intent labelled.",
                        caller=caller,
                        now=heard + timedelta(minutes=2),
                    )

    def purge(self, day: datetime, days_ago: int) -> None:
        """The beat's purge, a few minutes after each session's recordings expire."""
        for hour in SESSION_HOURS:
            lag = timedelta(seconds=120 + self.rng.randint(20, 150))
            if days_ago in (61, 23):
                lag = timedelta(minutes=38)  # a worker restart: the purge ran late
            at = day + timedelta(hours=hour) + lag
            if at < self.now:
                purge_expired(now=at)

    def run(self) -> None:
        self.plan()
        for days_ago in range(HISTORY_DAYS + LEAD_DAYS, -1, -1):
            day = _day_start(self.now, days_ago)
            with transaction.atomic():  # one commit a day keeps the seed fast
                for person, review_rate, training_rate in self.joins.get(days_ago, []):
                    self.join(person, review_rate, training_rate)
                for person, purpose in self.flips.get(days_ago, []):
                    self.flip(person, purpose, day)
                if days_ago > 0:  # today's sessions may lie ahead
                    self.record(day)
                if 0 < days_ago <= REVIEW_DAYS:
                    self.review(day)
                if days_ago <= HISTORY_DAYS:
                    self.purge(day, days_ago)


@transaction.atomic
def _deletions_and_a_hold() -> list[str]:
    """Requests from today, one kept back by a legal hold; their public ids."""
    us_people = Account.objects.filter(
        jurisdiction="US", external_id__startswith="acct-demo-"
    ).order_by("external_id")
    held = Profile.objects.filter(account=us_people[3]).first()
    assert held is not None
    legal_hold_place(
        account=held.account,
        reason="Preserve the household's recordings for a consumer-protection inquiry.",
        case_reference="FTC-2026-0117",
        actor="officer",
    )
    requests = [
        deletion_request_create(profile=held, recorded_from=None, recorded_to=None, actor=PLATFORM)
    ]
    for account in (us_people[7], Account.objects.get(external_id="acct-demo-100")):
        profile = Profile.objects.filter(account=account).first()
        assert profile is not None
        requests.append(
            deletion_request_create(
                profile=profile,
                recorded_from=None,
                recorded_to=None,
                actor=PLATFORM,
            )
        )
    return [request.public_id for request in requests]


def history_seed(*, now: datetime, voice_dir: Path, manifest: dict[str, dict]) -> None:
    """Write the demo's history ending at `now`, unless it is there already."""
    if history_seeded():
        return
    with _commits_without_fsync():
        _setup(_day_start(now, HISTORY_DAYS + LEAD_DAYS + 1))
        _History(now=now, voice_dir=voice_dir, manifest=manifest).run()
        for public_id in _deletions_and_a_hold():  # carried out as the worker would
            deletion_request_run(public_id=public_id)


@contextmanager
def _commits_without_fsync() -> Iterator[None]:
    """PostgreSQL answers a commit before its WAL reaches the disk (a crash could lose
    the last moments of the demo, never corrupt it): a few times faster here."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
