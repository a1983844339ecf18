"""What the database keeps right about a recording on every path: its copies of its
profile's `is_child` and its account's `jurisdiction`, which the eligibility rule reads
instead of the profile and the account (migration recordings/0009), and the one audio
and one transcript it may hold (recordings/0010)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from compliance.consent.models import Purpose
from compliance.eligibility.selectors import eligibility_check
from compliance.recordings.models import Artefact, Recording
from tests.factories import (
    AccountFactory,
    ConsentDefaultFactory,
    ProfileFactory,
    RecordingFactory,
)

pytestmark = pytest.mark.django_db


def _copies(recording: Recording) -> tuple[bool, str]:
    return tuple(
        Recording.objects.filter(pk=recording.pk).values_list("is_child", "jurisdiction").get()
    )


def test_a_recording_holds_its_profiles_facts_whatever_the_application_sent():
    child = ProfileFactory(is_child=True, account=AccountFactory(jurisdiction="DE"))

    recording = RecordingFactory(profile=child, is_child=False, jurisdiction="US")

    assert _copies(recording) == (True, "DE")


def test_a_recording_written_in_sql_holds_them_too():
    profile = ProfileFactory(is_child=True, account=AccountFactory(jurisdiction="FR"))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO recordings_recording (external_id, profile_id, recorded_at,"
            " sensitive, false_wake, state, created_at, purge_reason, purge_policy)"
            " VALUES ('rec-sql', %s, %s, false, false, 'active', %s, '', '')",
            [profile.pk, timezone.now() - timedelta(days=1), timezone.now()],
        )

    assert _copies(Recording.objects.get(external_id="rec-sql")) == (True, "FR")


def test_a_profile_moved_or_changed_carries_its_facts_to_its_recordings():
    profile = ProfileFactory(is_child=False, account=AccountFactory(jurisdiction="DE"))
    recordings = RecordingFactory.create_batch(3, profile=profile)
    other = RecordingFactory(profile=ProfileFactory(account=AccountFactory(jurisdiction="DE")))

    profile.is_child = True
    profile.save()
    assert {_copies(r) for r in recordings} == {(True, "DE")}

    profile.account.jurisdiction = "US"
    profile.account.save()
    assert {_copies(r) for r in recordings} == {(True, "US")}

    profile.account = AccountFactory(jurisdiction="FR")
    profile.save()
    assert {_copies(r) for r in recordings} == {(True, "FR")}
    assert _copies(other) == (False, "DE")


def test_a_recording_moved_to_another_profile_takes_its_facts():
    recording = RecordingFactory(profile=ProfileFactory(account=AccountFactory(jurisdiction="DE")))

    recording.profile = ProfileFactory(is_child=True, account=AccountFactory(jurisdiction="US"))
    recording.save()

    assert _copies(recording) == (True, "US")


def test_a_recording_whose_profile_is_deleted_keeps_no_facts_and_no_jurisdictions_default():
    ConsentDefaultFactory(jurisdiction="DE", purpose=Purpose.HUMAN_REVIEW, granted=True)
    profile = ProfileFactory(account=AccountFactory(jurisdiction="DE"))
    recording = RecordingFactory(profile=profile)

    profile.delete()

    assert _copies(recording) == (False, "")
    [(_, eligible, reasons)] = eligibility_check(
        external_ids=[recording.external_id], purpose=Purpose.HUMAN_REVIEW
    )
    assert not eligible
    assert "no_consent" in reasons


def test_a_recording_holds_one_audio_one_transcript_and_any_number_of_annotations():
    recording = RecordingFactory()
    for category in ("audio", "transcript", "annotation", "annotation"):
        Artefact.objects.create(recording=recording, category=category)

    for category in ("audio", "transcript"):
        with pytest.raises(IntegrityError), transaction.atomic():
            Artefact.objects.create(recording=recording, category=category)
    assert recording.artefacts.count() == 4
