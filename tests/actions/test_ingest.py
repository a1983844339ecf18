"""Ingest as an action: recordings writes, retention's expiry is handed down to it and
called inside the write's transaction."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from compliance.actions.ingest import recording_create, recordings_register
from compliance.recordings.models import Artefact
from compliance.recordings.services import RecordingInput, annotation_create, recordings_store
from tests.factories import ProfileFactory, RecordingFactory

pytestmark = pytest.mark.django_db


def _input(n: int = 1, **fields) -> RecordingInput:
    return RecordingInput(
        external_id=f"r-{n}",
        profile_external_id="p-1",
        recorded_at=timezone.now() - timedelta(hours=1),
        transcript="turn on the lights",
        **fields,
    )


def test_an_uploaded_recordings_artefacts_are_stored_with_their_expiry():
    ProfileFactory(external_id="p-1", retention_choice="dont_save")

    recording = recording_create(data=_input(), actor="client:t")

    transcript = Artefact.objects.get(recording=recording, category="transcript")
    assert transcript.expiry_basis == "choice:dont_save"
    assert transcript.expires_at is not None


def test_registered_recordings_are_stored_with_their_expiry():
    ProfileFactory(external_id="p-1", retention_choice="dont_save")

    [result] = recordings_register(items=[_input()], actor="client:t")

    assert result.status == "created"
    transcript = Artefact.objects.get(recording__external_id="r-1", category="transcript")
    assert transcript.expiry_basis == "choice:dont_save"


def test_the_expiry_is_asked_inside_the_transaction_that_writes_the_artefacts():
    ProfileFactory(external_id="p-1")
    asked: list[bool] = []

    def expiry(now):
        asked.append(connection.in_atomic_block)

        def schedule(*, artefacts, profile, recorded_at):
            for artefact in artefacts:
                artefact.expires_at, artefact.expiry_basis = now, "test"

        return schedule

    [result] = recordings_store(items=[_input()], actor="client:t", expiry=expiry)

    assert result.status == "created"
    assert asked == [True]
    assert Artefact.objects.get(recording__external_id="r-1").expiry_basis == "test"


@pytest.mark.django_db(transaction=True)
def test_an_annotation_refuses_to_be_written_outside_a_transaction():
    recording = RecordingFactory()

    with pytest.raises(RuntimeError, match="inside the transaction"):
        annotation_create(recording=recording, text="a note", expiry=lambda now: None)

    assert not Artefact.objects.filter(category="annotation").exists()
