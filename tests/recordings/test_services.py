import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.actions.ingest import recording_create
from compliance.core.errors import ApplicationError, Conflict
from compliance.ledger.canonical import entry_leaf, leaf_hash
from compliance.ledger.models import LedgerEntry
from compliance.ledger.selectors import ledger_verify
from compliance.ledger.services import ledger_append
from compliance.recordings import services
from compliance.recordings.models import Artefact, Recording
from compliance.recordings.services import RecordingInput
from tests.factories import ProfileFactory, RecordingFactory

pytestmark = pytest.mark.django_db


def _stored_files(media_root: str) -> list[Path]:
    return [p for p in Path(media_root).rglob("*") if p.is_file()]


def _input(**changes) -> RecordingInput:
    values = {
        "external_id": "r-1",
        "profile_external_id": "p-1",
        "recorded_at": timezone.now() - timedelta(hours=1),
    }
    return RecordingInput(**{**values, **changes})


def _audio(name="clip.wav", content=b"RIFF....WAVEfmt ") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="audio/wav")


@pytest.fixture
def profile():
    return ProfileFactory(external_id="p-1")


def test_a_recording_is_stored_with_its_audio_and_transcript(profile, settings):
    recording = recording_create(
        data=_input(transcript="turn on the lights", flags=("sensitive",), audio=_audio()),
        actor="client:p",
    )

    assert recording.profile == profile
    assert (recording.sensitive, recording.false_wake, recording.state) == (True, False, "active")
    artefacts = {a.category: a for a in recording.artefacts.all()}
    assert set(artefacts) == {"audio", "transcript"}
    assert artefacts["transcript"].text == "turn on the lights"
    assert artefacts["transcript"].size_bytes == len(b"turn on the lights")
    stored = Path(settings.MEDIA_ROOT) / artefacts["audio"].storage_key
    assert stored.read_bytes() == b"RIFF....WAVEfmt "
    assert artefacts["audio"].size_bytes == stored.stat().st_size


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("clip.WAV", ".wav"),
        ("clip.ogg", ".ogg"),
        ("p-1-alice.exe", ".bin"),
        ("../../etc/passwd", ".bin"),
        ("no-suffix", ".bin"),
    ],
)
def test_the_storage_key_keeps_only_a_known_audio_suffix(profile, name, suffix):
    recording = recording_create(data=_input(audio=_audio(name=name)), actor="a")

    key = recording.artefacts.get(category="audio").storage_key
    assert key.startswith("audio/")
    assert key.endswith(suffix)
    assert "p-1" not in key
    assert "alice" not in key
    assert ".." not in key


def test_a_recording_with_a_known_id_is_a_conflict_and_stores_no_file(profile, settings):
    RecordingFactory(external_id="r-1", profile=profile)

    with pytest.raises(Conflict):
        recording_create(data=_input(audio=_audio()), actor="a")

    assert _stored_files(settings.MEDIA_ROOT) == []
    assert Recording.objects.count() == 1


def test_a_duplicate_that_races_past_the_check_removes_its_file(profile, settings, monkeypatch):
    def lost_the_race(*args, **kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(services, "_insert_rows", lost_the_race)

    with pytest.raises(Conflict):
        recording_create(data=_input(audio=_audio(), transcript="hi"), actor="a")

    assert _stored_files(settings.MEDIA_ROOT) == []
    assert not Recording.objects.exists()


def test_a_recording_written_by_another_ingest_meanwhile_is_a_conflict_and_leaves_no_file(
    profile, settings, monkeypatch
):
    save = default_storage.save

    def and_meanwhile(name, content, *args, **kwargs):
        key = save(name, content, *args, **kwargs)
        RecordingFactory(external_id="r-1", profile=profile)  # after the check for it
        return key

    monkeypatch.setattr(default_storage, "save", and_meanwhile)

    with pytest.raises(Conflict):
        recording_create(data=_input(audio=_audio(), transcript="hi"), actor="a")

    assert _stored_files(settings.MEDIA_ROOT) == []
    assert Recording.objects.count() == 1
    assert not Artefact.objects.exists()


def test_any_failure_while_writing_the_rows_removes_the_file(profile, settings, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "_insert_rows", broken)

    with pytest.raises(RuntimeError):
        recording_create(data=_input(audio=_audio()), actor="a")

    assert _stored_files(settings.MEDIA_ROOT) == []
    assert not Recording.objects.exists()


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"external_id": ""}, "validation_error", "external_id"),
        ({"external_id": "r" * 129}, "validation_error", "external_id"),
        ({"recorded_at": datetime(2026, 1, 1, 12)}, "validation_error", "recorded_at"),  # noqa: DTZ001
        (
            {"recorded_at": datetime.now(UTC) + timedelta(days=2)},
            "validation_error",
            "recorded_at",
        ),
        ({"flags": ("loud",)}, "validation_error", "flags"),
        ({"transcript": "x" * 100_001}, "validation_error", "transcript"),
        ({"audio": _audio(content=b"")}, "validation_error", "audio"),
        ({"profile_external_id": "nobody"}, "unknown_profile", "profile"),
    ],
)
def test_bad_input_is_refused_before_anything_is_stored(profile, settings, changes, code, field):
    with pytest.raises(ApplicationError) as refused:
        recording_create(data=_input(**changes), actor="a")

    assert refused.value.code == code
    assert field in refused.value.fields
    assert not Recording.objects.exists()
    assert _stored_files(settings.MEDIA_ROOT) == []


def test_audio_over_the_limit_is_413(profile, settings):
    settings.MAX_AUDIO_BYTES = 10

    with pytest.raises(ApplicationError) as refused:
        recording_create(data=_input(audio=_audio(content=b"x" * 11)), actor="a")

    assert (refused.value.code, refused.value.status_code) == ("payload_too_large", 413)
    assert _stored_files(settings.MEDIA_ROOT) == []


def test_a_recording_a_little_in_the_future_is_accepted_for_clock_skew(profile):
    recording = recording_create(
        data=_input(recorded_at=timezone.now() + timedelta(hours=1)), actor="a"
    )

    assert recording.pk


def test_a_recording_is_written_in_two_statements_whatever_the_policies(profile):
    from compliance.retention.services import retention_policy_create

    for category in ("audio", "transcript"):
        retention_policy_create(jurisdiction="*", category=category, retention_days=30, actor="t")
    recording_create(data=_input(external_id="warm", transcript="hi"), actor="a")

    with CaptureQueriesContext(connection) as queries:
        recording_create(data=_input(transcript="hi", flags=("sensitive",)), actor="a")

    # (the test's own transaction makes the ingest's a savepoint)
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    statements = [s for s in statements if s not in ("SAVEPOINT", "RELEASE")]
    # the profile (locked) with the policies' stamp; then on PostgreSQL one statement for
    # the recording, its artefacts and the ledger entry (the advisory lock, the chain's
    # head, the entry: after the rows), elsewhere the rows, the chain's head, the entry
    if connection.vendor == "postgresql":
        assert statements == ["SELECT", "WITH"]
    else:
        assert statements == ["SELECT", "INSERT", "INSERT", "SELECT", "INSERT"]


def test_a_single_recording_is_one_ledger_entry_naming_it(profile):
    recording_create(data=_input(transcript="hi"), actor="client:p")

    [entry] = LedgerEntry.objects.filter(kind="recordings.registered")
    assert (entry.subject, entry.actor) == ("recordings", "client:p")
    assert entry.payload == {
        "count": 1,
        "audio": 0,
        "external_ids_sha256": hashlib.sha256(b"r-1").hexdigest(),
        "first": "r-1",
        "last": "r-1",
    }
    assert ledger_verify().ok


def test_the_entry_the_rows_statement_appends_is_encoded_as_any_append(profile):
    with transaction.atomic():
        ledger_append(kind="before", payload={"n": 1})
    recording_create(data=_input(transcript="hi"), actor="client:p")

    entry = LedgerEntry.objects.get(kind="recordings.registered")
    leaf = entry_leaf(
        seq=entry.seq,
        created_at=entry.created_at,
        kind=entry.kind,
        subject=entry.subject,
        actor=entry.actor,
        payload=entry.payload,
        prev_hash=entry.prev_hash,
    )
    assert (entry.seq, entry.prev_hash) == (2, LedgerEntry.objects.get(seq=1).hash)
    assert bytes(entry.leaf) == leaf
    assert entry.hash == hashlib.sha256(leaf).hexdigest()
    assert bytes(entry.leaf_hash) == leaf_hash(leaf)


def test_a_refused_single_recording_writes_no_ledger_entry(profile):
    recording_create(data=_input(), actor="a")

    with pytest.raises(Conflict):
        recording_create(data=_input(), actor="a")
    with pytest.raises(ApplicationError):
        recording_create(data=_input(external_id="r-2", profile_external_id="nobody"), actor="a")

    assert LedgerEntry.objects.filter(kind="recordings.registered").count() == 1
