from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.accounts.models import Profile
from compliance.accounts.services import account_create
from compliance.actions.ingest import recording_create
from compliance.actions.profiles import profile_create
from compliance.recordings.models import Recording
from compliance.recordings.services import RecordingInput
from compliance.security.roles import OFFICERS_GROUP
from tests.factories import UserFactory

PASSWORD = "a long and private passphrase"
CHROMIUM = Path("/usr/bin/chromium")


def require_browser(*, playwright_found: bool, ci: bool, chromium: Path = CHROMIUM) -> None:
    """Return when the browser tests can run; otherwise skip them, saying what is
    missing and how to install it, or fail them when `ci` is true: a CI run without
    its browser must be red, not green with the browser tests quietly skipped."""
    missing = []
    if not chromium.exists():
        missing.append(f"Debian's Chromium at {chromium} (apt-get install -y chromium)")
    if not playwright_found:
        missing.append("the playwright package (pip install -r requirements-dev.txt)")
    if not missing:
        return
    reason = "needs " + " and ".join(missing)
    if ci:
        pytest.fail(f"{reason}; CI=true, so this fails instead of skipping", pytrace=False)
    pytest.skip(reason)


@dataclass
class Household:
    """A person with a login, their account, an adult and a child profile, and clips."""

    user: Any
    adult: Profile
    child: Profile
    recordings: list[Recording] = field(default_factory=list)


def person(username: str) -> Any:
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    return user


def ingest(
    profile: Profile, external_id: str, recorded_at: datetime, transcript: str, **kwargs: Any
) -> Recording:
    return recording_create(
        data=RecordingInput(
            external_id=external_id,
            profile_external_id=profile.external_id,
            recorded_at=recorded_at,
            transcript=transcript,
            audio=ContentFile(b"RIFF....WAVEfmt ", name="clip.wav"),
            **kwargs,
        ),
        actor="test",
    )


def make_household(username: str = "alice", jurisdiction: str = "US") -> Household:
    user = person(username)
    account = account_create(
        external_id=f"acct-{username}", jurisdiction=jurisdiction, actor="test"
    )
    account.user = user
    account.save(update_fields=["user"])
    adult = profile_create(
        external_id=f"prof-{username}",
        account_external_id=account.external_id,
        is_child=False,
        actor="test",
    )
    child = profile_create(
        external_id=f"prof-{username}-kid",
        account_external_id=account.external_id,
        is_child=True,
        actor="test",
    )
    now = timezone.now()
    phrases = ["turn on the lights", "what's the weather tomorrow", "set a timer for ten minutes"]
    household = Household(user=user, adult=adult, child=child)
    for days, phrase in zip((2, 5, 9), phrases, strict=True):
        household.recordings.append(
            ingest(adult, f"rec-{username}-{days}", now - timedelta(days=days), phrase)
        )
    household.recordings.append(
        ingest(child, f"rec-{username}-kid-1", now - timedelta(days=3), "tell me a story")
    )
    return household


@pytest.fixture
def household(db) -> Household:
    return make_household()


@pytest.fixture
def owner_client(household: Household) -> Client:
    client = Client()
    client.force_login(household.user)
    return client


def make_officer(username: str = "olivia") -> tuple[Any, TOTPDevice]:
    user = person(username)
    group, _ = Group.objects.get_or_create(name=OFFICERS_GROUP)
    user.groups.add(group)
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return user, device


def verify_session(client: Client, device: TOTPDevice) -> None:
    """What signing in with a TOTP code leaves in the session (django_otp.login)."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


@pytest.fixture
def officer(db) -> tuple[Any, TOTPDevice]:
    return make_officer()


@pytest.fixture
def officer_client(officer) -> Client:
    user, device = officer
    client = Client()
    client.force_login(user)
    verify_session(client, device)
    return client


def seed_history(now: datetime) -> dict[str, Any]:
    """A month of life for the dashboard: households in three countries that grant and
    withdraw over the weeks, purges on many days with some lag, clips heard by reviewers
    in two places, a little overdue, a held account and an open deletion request."""
    import time_machine

    from compliance.actions.consent import consent_set
    from compliance.recordings.models import Artefact
    from compliance.retention.services import deletion_request_create, legal_hold_place
    from compliance.sampling.models import ReviewItem

    people: list[Household] = []
    with time_machine.travel(now - timedelta(days=28), tick=False):
        for n, country in enumerate(["US"] * 4 + ["DE"] * 3 + ["GB"] * 2):
            people.append(make_household(f"h{n}-{country.lower()}", jurisdiction=country))
    for day in range(26, -1, -3):
        with time_machine.travel(now - timedelta(days=day), tick=False):
            for n, home in enumerate(people):
                if (n + day) % 4 == 0:
                    consent_set(
                        profile=home.adult,
                        purpose="human_review",
                        granted=day % 2 == 0 or n % 3 == 0,
                        channel="app",
                        notice_version="2026-01",
                        actor="test",
                    )
                if (n + day) % 3 == 0:
                    consent_set(
                        profile=home.adult,
                        purpose="model_training",
                        granted=n % 2 == 0,
                        channel="web",
                        notice_version="2026-01",
                        actor="test",
                    )
    artefacts = list(Artefact.objects.order_by("id"))
    for i, artefact in enumerate(artefacts[:30]):
        day = now - timedelta(days=1 + (i % 20), hours=i % 5)
        Artefact.objects.filter(pk=artefact.pk).update(
            state="purged",
            expires_at=day,
            purged_at=day + timedelta(seconds=20 + 7 * i),
            purge_reason="retention_policy",
            text="",
        )
    overdue = artefacts[30:32]
    Artefact.objects.filter(pk__in=[a.pk for a in overdue]).update(
        expires_at=now - timedelta(hours=2)
    )
    recordings = [r for home in people for r in home.recordings[:2]]
    for i, recording in enumerate(recordings[:14]):
        location = ["US", "IE", "DE"][i % 3]
        created = now - timedelta(days=i + 1)
        ReviewItem.objects.create(
            id=f"item-{i}",
            recording=recording,
            purpose="human_review",
            reviewer_location=location,
            state=["done", "delivered", "revoked", "pending"][i % 4],
            created_at=created,
            expires_at=created + timedelta(hours=8),
            delivered_at=created + timedelta(minutes=5) if i % 4 in (0, 1) else None,
            closed_at=created + timedelta(minutes=9) if i % 4 == 0 else None,
        )
    legal_hold_place(
        account=people[5].adult.account,
        reason="Subpoena in a consumer-protection case",
        case_reference="CASE-2026-114",
        actor="officer",
    )
    deletion_request_create(
        profile=people[2].adult, recorded_from=None, recorded_to=None, actor="user"
    )
    return {"people": people, "overdue": len(overdue)}
