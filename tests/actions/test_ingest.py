"""Ingest as an action: recordings writes, retention's expiry is handed down to it and
called inside the write's transaction."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from compliance.actions.ingest import recording_create, recordings_register
from compliance.recordings.models import Artefact
from compliance.recordings.services import (
    RecordingInput,
    annotation_create,
    annotation_schedule,
    recordings_store,
)
from compliance.retention.models import RetentionPolicy
from compliance.retention.selectors import POLICY_LOCK_KEY
from compliance.retention.services import (
    artefacts_expiry_at,
    retention_policy_create,
    retention_policy_retire,
)
from tests.conftest import postgres_only
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
        annotation_create(recording=recording, text="a note", schedule=None)

    assert not Artefact.objects.filter(category="annotation").exists()


@postgres_only()
def test_an_annotation_is_scheduled_under_the_policies_lock():
    """As an ingest does, an annotation reads the policies holding their lock until its
    transaction ends (what a policy's reschedule waits for: retention's
    `artefacts_scheduled_so_far`)."""
    ProfileFactory(external_id="p-1")
    recording = recording_create(data=_input(1), actor="client:t")
    policy = retention_policy_create(
        jurisdiction="*", category="annotation", retention_days=7, actor="t"
    )

    with transaction.atomic():
        schedule = annotation_schedule(recording=recording, expiry=artefacts_expiry_at)
        note = annotation_create(recording=recording, text="a note", schedule=schedule)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT mode FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid() AND objid = %s",
                [POLICY_LOCK_KEY & 0xFFFFFFFF],
            )
            assert [mode for (mode,) in cursor.fetchall()] == ["ShareLock"]

    assert note.expiry_basis == f"policy:{policy.pk}"


# --- the policies kept per process, checked in the ingest's transaction -------------------


def _transcript_basis(n: int) -> str:
    recording_create(data=_input(n), actor="client:t")
    return Artefact.objects.get(recording__external_id=f"r-{n}", category="transcript").expiry_basis


def test_a_new_policy_version_applies_to_the_next_ingest():
    ProfileFactory(external_id="p-1")
    first = retention_policy_create(
        jurisdiction="*", category="transcript", retention_days=90, actor="t"
    )
    assert _transcript_basis(1) == f"policy:{first.pk}"  # the process keeps version 1 now

    second = retention_policy_create(
        jurisdiction="*", category="transcript", retention_days=30, actor="t"
    )

    assert _transcript_basis(2) == f"policy:{second.pk}"


def test_a_retired_policy_no_longer_applies_to_the_next_ingest():
    ProfileFactory(external_id="p-1")
    policy = retention_policy_create(
        jurisdiction="*", category="transcript", retention_days=90, actor="t"
    )
    assert _transcript_basis(1) == f"policy:{policy.pk}"

    retention_policy_retire(policy=policy, actor="t")

    assert _transcript_basis(2) == ""


def test_a_policy_changed_by_another_process_applies_to_the_next_ingest():
    """Nothing in this process hears of the change: the stamp read with the profiles
    finds it."""
    ProfileFactory(external_id="p-1")
    policy = retention_policy_create(
        jurisdiction="*", category="transcript", retention_days=90, actor="t"
    )
    assert _transcript_basis(1) == f"policy:{policy.pk}"

    with connection.cursor() as cursor:  # as another process would, past the services
        cursor.execute(
            "UPDATE retention_retentionpolicy SET retention_days = 7, retired_at = NULL"
            " WHERE id = %s",
            [policy.pk],
        )
        cursor.execute(
            "INSERT INTO retention_retentionpolicy (jurisdiction, category, applies_to,"
            " retention_days, version, effective_from, created_at, created_by)"
            " VALUES ('*', 'transcript', 'all', 3, 2, %s, %s, 'x') RETURNING id",
            [timezone.now() - timedelta(minutes=1), timezone.now()],
        )
        (newer,) = cursor.fetchone()

    assert _transcript_basis(2) == f"policy:{newer}"
    assert RetentionPolicy.objects.count() == 2


def test_the_policies_stamp_is_read_by_the_statement_that_locks_the_profiles():
    from django.test.utils import CaptureQueriesContext

    ProfileFactory(external_id="p-1")
    recording_create(data=_input(1), actor="client:t")

    with CaptureQueriesContext(connection) as queries:
        recording_create(data=_input(2), actor="client:t")

    # on PostgreSQL through the function that takes the policies' lock first
    # (retention/migrations/0002_policy_stamp_function.py)
    stamp = (
        "retention_policy_stamp("
        if connection.vendor == "postgresql"
        else "retention_retentionpolicy"
    )
    reads = [q["sql"] for q in queries.captured_queries if stamp in q["sql"]]
    assert len(reads) == 1
    assert "accounts_profile" in reads[0]
    if connection.vendor == "postgresql":
        assert "FOR SHARE OF p" in reads[0]
        direct = [q for q in queries.captured_queries if "retention_retentionpolicy" in q["sql"]]
        assert not direct  # only ever through the function, after its lock
