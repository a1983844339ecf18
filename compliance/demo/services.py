"""Demo data: a few people, their profiles and real (synthetic) voice clips, so that a
new user of `dev.py run` sees a working system. Idempotent: a rerun refreshes the
demo logins and keys and adds nothing twice."""

import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.accounts.services import account_create
from compliance.actions.consent import consent_set
from compliance.actions.ingest import recording_create
from compliance.actions.profiles import profile_create
from compliance.clients.models import ServiceClient
from compliance.clients.scopes import SCOPES
from compliance.clients.services import service_client_create
from compliance.consent.models import ConsentDefault, Purpose
from compliance.consent.services import consent_default_create
from compliance.recordings.models import Recording
from compliance.recordings.services import RecordingInput
from compliance.security.roles import OFFICERS_GROUP
from compliance.transfers.models import TransferRule
from compliance.transfers.services import transfer_rule_create

from .history import JURISDICTIONS, history_seed

DEMO_HISTORY_PROFILES = sum(count for count, *_ in JURISDICTIONS.values())

VOICE_DIR = Path(__file__).resolve().parent / "voice"
DEMO_CLIENT = "demo-platform"
ACTOR = "seed_demo"

# (login, account, jurisdiction, [(profile, is_child, {purpose: granted}, [clips])])
_PEOPLE = [
    (
        "alice",
        "acct-alice",
        "US",
        [
            (
                "prof-alice",
                False,
                {Purpose.HUMAN_REVIEW: True, Purpose.MODEL_TRAINING: True},
                [
                    "turn-on-lights.wav",
                    "weather-tomorrow.wav",
                    "timer-ten.wav",
                    "doctor-appointment.wav",
                ],
            ),
            ("prof-alice-kid", True, {Purpose.MODEL_TRAINING: False}, ["kids-story.wav"]),
        ],
    ),
    (
        "bob",
        "acct-bob",
        "GB",
        [
            (
                "prof-bob",
                False,
                {Purpose.HUMAN_REVIEW: False},
                [
                    "play-jazz.wav",
                    "alarm-seven.wav",
                    "call-mom.wav",
                    "shopping-milk.wav",
                    "false-wake.wav",
                ],
            ),
        ],
    ),
    (
        "bernd",
        "acct-bernd",
        "DE",
        [
            (
                "prof-bernd",
                False,
                {Purpose.HUMAN_REVIEW: True},
                ["wetter-morgen.wav", "licht-aus.wav"],
            )
        ],
    ),
]


DEMO_PROFILES = [
    f"{profile} ({login}, {jurisdiction})"
    for login, _, jurisdiction, profiles in _PEOPLE
    for profile, *_ in profiles
]


@dataclass
class DemoCredentials:
    users: dict[str, str] = field(default_factory=dict)
    api_key: str = ""
    officer_backup_codes: list[str] = field(default_factory=list)
    officer_provisioning_uri: str = ""


def _manifest() -> dict[str, dict]:
    return {entry["file"]: entry for entry in json.loads((VOICE_DIR / "manifest.json").read_text())}


def _user(username: str, *, officer: bool = False) -> str:
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    password = secrets.token_urlsafe(9)
    user.set_password(password)
    if officer:
        user.is_staff = True
        user.is_superuser = True
    user.save()
    if officer:
        group, _ = Group.objects.get_or_create(name=OFFICERS_GROUP)
        user.groups.add(group)
    return password


def demo_seed() -> DemoCredentials:
    """The demo logins, households and key (new passwords and key on every run), then the
    history (written once: compliance/demo/history.py)."""
    credentials = _households()
    history_seed(now=timezone.now(), voice_dir=VOICE_DIR, manifest=_manifest())
    return credentials


@transaction.atomic
def _households() -> DemoCredentials:
    credentials = DemoCredentials()
    credentials.users["officer"] = _user("officer", officer=True)
    # Officers sign in with a second factor: new TOTP device and backup codes each seed.
    from compliance.security.services import second_factor_issue

    setup = second_factor_issue(
        username="officer", create=False, officer=True, replace_devices=True, actor=ACTOR
    )
    credentials.officer_backup_codes = setup.backup_codes
    credentials.officer_provisioning_uri = setup.provisioning_uri
    manifest = _manifest()
    now = timezone.now()
    for login, account_id, jurisdiction, profiles in _PEOPLE:
        credentials.users[login] = _user(login)
        account = Account.objects.filter(external_id=account_id).first() or account_create(
            external_id=account_id, jurisdiction=jurisdiction, actor=ACTOR
        )
        if account.user_id is None:
            account.user = get_user_model().objects.get(username=login)
            account.save(update_fields=["user"])
        for profile_id, is_child, consents, clips in profiles:
            profile = Profile.objects.filter(external_id=profile_id).first() or profile_create(
                external_id=profile_id,
                account_external_id=account_id,
                is_child=is_child,
                actor=ACTOR,
            )
            for purpose, granted in consents.items():
                consent_set(
                    profile=profile,
                    purpose=purpose,
                    granted=granted,
                    channel="app",
                    notice_version="2026-01",
                    actor=ACTOR,
                )
            for age_days, clip in enumerate(clips, start=1):
                recording_id = f"rec-{profile_id.removeprefix('prof-')}-{Path(clip).stem}"
                if Recording.objects.filter(external_id=recording_id).exists():
                    continue
                with (VOICE_DIR / clip).open("rb") as audio:
                    recording_create(
                        data=RecordingInput(
                            external_id=recording_id,
                            profile_external_id=profile_id,
                            recorded_at=now - timedelta(days=age_days * 5),
                            transcript=manifest[clip]["transcript"],
                            flags=tuple(manifest[clip]["flags"]),
                            audio=File(audio, name=clip),
                        ),
                        actor=ACTOR,
                    )
    if not ConsentDefault.objects.filter(
        jurisdiction="US", purpose=Purpose.MODEL_TRAINING
    ).exists():
        consent_default_create(
            jurisdiction="US", purpose=Purpose.MODEL_TRAINING, granted=True, actor=ACTOR
        )
    if not TransferRule.objects.filter(jurisdiction="DE", reviewer_location="IE").exists():
        transfer_rule_create(jurisdiction="DE", reviewer_location="IE", actor=ACTOR)
    ServiceClient.objects.filter(name=DEMO_CLIENT).delete()
    _, credentials.api_key = service_client_create(
        name=DEMO_CLIENT, scopes=list(SCOPES), actor=ACTOR
    )
    return credentials
