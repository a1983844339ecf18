from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.ledger import restore
from compliance.ledger.models import LedgerEntry
from compliance.ledger.selectors import ledger_verify
from compliance.recordings.models import Artefact, Recording
from tests.factories import ProfileFactory, RecordingFactory, UserFactory

pytestmark = pytest.mark.django_db

RECORDED_AT = "2026-01-31T12:00:00Z"


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _stored_files(media_root: str) -> list[Path]:
    return [p for p in Path(media_root).rglob("*") if p.is_file()]


def _body(**changes) -> dict:
    return {"external_id": "r-1", "profile": "p-1", "recorded_at": RECORDED_AT, **changes}


@pytest.fixture
def profile():
    return ProfileFactory(external_id="p-1", account__external_id="acct-9")


@pytest.fixture
def wav(voice_clip):
    return SimpleUploadedFile(voice_clip.name, voice_clip.read_bytes(), content_type="audio/wav")


# --- JSON ingest -------------------------------------------------------------------


def test_a_recording_is_ingested_as_json_with_transcript_and_flags(platform, profile):
    response = platform.post(
        "/api/v1/recordings",
        _body(transcript="turn on the lights", flags=["sensitive", "false_wake"]),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == body["external_id"] == "r-1"
    assert body["profile"] == "p-1"
    assert body["recorded_at"] == RECORDED_AT
    assert body["state"] == "active"
    assert sorted(body["flags"]) == ["false_wake", "sensitive"]
    assert body["transcript"] == "turn on the lights"
    assert [a["category"] for a in body["artefacts"]] == ["transcript"]
    assert (body["purged_at"], body["purge_reason"]) == (None, None)
    recording = Recording.objects.get(external_id="r-1")
    # built from what was written, it reads as the recording read back does
    assert body == platform.get("/api/v1/recordings/r-1").json()
    assert (recording.sensitive, recording.false_wake) == (True, True)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"sensitive": True, "false_wake": False}, ["sensitive"]),
        ({"sensitive": False, "false_wake": True}, ["false_wake"]),
        ({}, []),
        ([], []),
        (["false_wake"], ["false_wake"]),
    ],
)
def test_flags_may_be_a_list_or_an_object_of_booleans(platform, profile, flags, expected):
    response = platform.post("/api/v1/recordings", _body(flags=flags), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["flags"] == expected


def test_a_recording_without_transcript_or_flags_is_ingested(platform, profile):
    response = platform.post("/api/v1/recordings", _body(), format="json")

    assert response.status_code == 201
    assert (response.json()["transcript"], response.json()["flags"]) == (None, [])
    assert response.json()["artefacts"] == []


def test_a_single_post_is_in_the_ledger_with_its_uploaded_audio(platform, profile, wav):
    response = platform.post("/api/v1/recordings", {**_body(), "audio": wav}, format="multipart")

    assert response.status_code == 201, response.content
    [entry] = LedgerEntry.objects.filter(kind="recordings.registered")
    assert (entry.payload["count"], entry.payload["audio"]) == (1, 1)
    assert (entry.payload["first"], entry.payload["last"]) == ("r-1", "r-1")
    assert ledger_verify().ok


def test_a_json_post_runs_the_ingests_statements_and_no_other(
    platform, profile, monkeypatch, settings
):
    """Authentication (a verified key remembered), the throttle (the cache), the
    idempotency check (no key sent), sessions and the answer add no statement to the
    ingest's own (tests/recordings/test_services.py)."""
    settings.API_KEY_CACHE_SECONDS = 60.0  # as served (tests look every key up)
    monkeypatch.setattr(restore, "STATE_TTL", 3600.0)  # the export check, cached
    assert platform.post("/api/v1/recordings", _body(external_id="warm"), format="json")

    with CaptureQueriesContext(connection) as queries:
        response = platform.post(
            "/api/v1/recordings", _body(transcript="hi", flags=["sensitive"]), format="json"
        )

    assert response.status_code == 201, response.content
    # (the test's own transaction makes the ingest's a savepoint)
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    statements = [s for s in statements if s not in ("SAVEPOINT", "RELEASE")]
    if connection.vendor == "postgresql":
        assert statements == ["SELECT", "WITH"]
    else:
        assert statements == ["SELECT", "INSERT", "INSERT", "SELECT", "INSERT"]


# --- multipart ingest ----------------------------------------------------------------


def test_a_wav_is_ingested_as_multipart_and_stored_without_the_owners_ids(
    platform, profile, wav, voice_clip, settings
):
    response = platform.post(
        "/api/v1/recordings",
        _body(audio=wav, transcript="turn on the lights", flags="sensitive"),
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert response.json()["flags"] == ["sensitive"]
    audio = Artefact.objects.get(recording__external_id="r-1", category="audio")
    assert audio.size_bytes == voice_clip.stat().st_size
    assert "p-1" not in audio.storage_key
    assert "acct-9" not in audio.storage_key
    assert audio.storage_key.startswith("audio/")
    [stored] = _stored_files(settings.MEDIA_ROOT)
    assert stored == Path(settings.MEDIA_ROOT) / audio.storage_key
    assert stored.read_bytes() == voice_clip.read_bytes()

    fetched = platform.get("/api/v1/recordings/r-1")

    assert fetched.status_code == 200
    assert fetched.json() == response.json()
    body = fetched.json()
    assert body["transcript"] == "turn on the lights"
    assert sorted(a["category"] for a in body["artefacts"]) == ["audio", "transcript"]
    sizes = {a["category"]: a["size_bytes"] for a in body["artefacts"]}
    assert sizes["audio"] == voice_clip.stat().st_size
    assert "storage_key" not in str(body)
    assert audio.storage_key not in str(body)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["sensitive", "false_wake"], ["sensitive", "false_wake"]),
        ("sensitive,false_wake", ["sensitive", "false_wake"]),
        ('["false_wake"]', ["false_wake"]),
        ('{"sensitive": true, "false_wake": false}', ["sensitive"]),
    ],
)
def test_multipart_flags_are_repeated_fields_csv_or_json(platform, profile, wav, flags, expected):
    response = platform.post(
        "/api/v1/recordings", _body(audio=wav, flags=flags), format="multipart"
    )

    assert response.status_code == 201, response.content
    assert response.json()["flags"] == expected


@pytest.mark.parametrize("upload", ["json", "multipart"])
def test_a_duplicate_external_id_is_409_and_leaves_no_file_behind(
    platform, profile, wav, voice_clip, settings, upload
):
    first = SimpleUploadedFile("a.wav", voice_clip.read_bytes())
    assert (
        platform.post("/api/v1/recordings", _body(audio=first), format="multipart").status_code
        == 201
    )
    files_before = _stored_files(settings.MEDIA_ROOT)

    if upload == "json":
        response = platform.post("/api/v1/recordings", _body(), format="json")
    else:
        response = platform.post("/api/v1/recordings", _body(audio=wav), format="multipart")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert _stored_files(settings.MEDIA_ROOT) == files_before
    assert Artefact.objects.count() == 1


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"recorded_at": "2026-01-31T12:00:00"}, "validation_error", "recorded_at"),
        ({"recorded_at": "2026-01-31"}, "validation_error", "recorded_at"),
        ({"recorded_at": "yesterday"}, "validation_error", "recorded_at"),
        ({"recorded_at": "2026-13-01T00:00:00Z"}, "validation_error", "recorded_at"),
        ({"recorded_at": "2026-01-31T12:00:00+25:00"}, "validation_error", "recorded_at"),
        ({"recorded_at": "0001-01-01T00:00:00+01:00"}, "validation_error", "recorded_at"),
        ({"recorded_at": "9999-12-31T23:00:00-05:00"}, "validation_error", "recorded_at"),
        ({"recorded_at": 1769860800}, "validation_error", "recorded_at"),
        ({"recorded_at": None}, "validation_error", "recorded_at"),
        ({"recorded_at": "2999-01-01T00:00:00Z"}, "validation_error", "recorded_at"),
        ({"flags": ["loud"]}, "validation_error", "flags"),
        ({"flags": {"loud": True}}, "validation_error", "flags"),
        ({"flags": {"sensitive": "yes"}}, "validation_error", "flags"),
        ({"flags": [1]}, "validation_error", "flags"),
        ({"flags": 7}, "validation_error", "flags"),
        ({"profile": "nobody"}, "unknown_profile", "profile"),
        ({"profile": 7}, "validation_error", "profile"),
        ({"external_id": ""}, "validation_error", "external_id"),
        ({"external_id": "r" * 129}, "validation_error", "external_id"),
        ({"external_id": ["r-1"]}, "validation_error", "external_id"),
        ({"transcript": 42}, "validation_error", "transcript"),
        ({"transcript": "nul\x00byte"}, "validation_error", "transcript"),
        ({"transcript": "x" * 100_001}, "validation_error", "transcript"),
        ({"audio": "UklGRiQAAABXQVZF"}, "validation_error", "audio"),
        ({"audio": None}, "validation_error", "audio"),
    ],
)
def test_bad_json_input_is_400_with_a_code_and_writes_nothing(
    platform, profile, settings, changes, code, field
):
    response = platform.post("/api/v1/recordings", _body(**changes), format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not Recording.objects.exists()
    assert _stored_files(settings.MEDIA_ROOT) == []


def test_a_time_far_in_the_future_is_refused(platform, profile):
    future = (timezone.now() + timedelta(days=30)).isoformat()

    response = platform.post("/api/v1/recordings", _body(recorded_at=future), format="json")

    assert response.status_code == 400
    assert "recorded_at" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"audio": SimpleUploadedFile("empty.wav", b"")}, "audio"),
        ({"audio": "not a file"}, "audio"),
        ({"flags": "[not json"}, "flags"),
        ({"flags": "[" * 50_000}, "flags"),
        ({"flags": "loud"}, "flags"),
        ({"recorded_at": "2026-01-31T12:00:00"}, "recorded_at"),
    ],
)
def test_bad_multipart_input_is_400_and_stores_nothing(platform, profile, settings, changes, field):
    response = platform.post("/api/v1/recordings", _body(**changes), format="multipart")

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Recording.objects.exists()
    assert _stored_files(settings.MEDIA_ROOT) == []


def test_audio_over_the_limit_is_413_and_stores_nothing(platform, profile, wav, settings):
    settings.MAX_AUDIO_BYTES = 1024

    response = platform.post("/api/v1/recordings", _body(audio=wav), format="multipart")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "audio" in response.json()["error"]["fields"]
    assert not Recording.objects.exists()
    assert _stored_files(settings.MEDIA_ROOT) == []


@pytest.mark.parametrize("body", ["[]", "5", "null", "true", '"audio"', '"r-1"'])
def test_a_body_that_is_not_an_object_is_400(platform, profile, body):
    response = platform.post("/api/v1/recordings", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert not Recording.objects.exists()


# --- reading ---------------------------------------------------------------------------


def test_an_unknown_recording_is_404(platform):
    response = platform.get("/api/v1/recordings/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_owner_reads_their_recording_through_the_session(profile):
    user = UserFactory()
    profile.account.user = user
    profile.account.save()
    RecordingFactory(external_id="r-1", profile=profile, sensitive=True)

    response = signed_in(user).get("/api/v1/recordings/r-1")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["flags"]) == ("r-1", ["sensitive"])


def test_another_end_user_gets_404(profile):
    profile.account.user = UserFactory()
    profile.account.save()
    RecordingFactory(external_id="r-1", profile=profile)
    ProfileFactory(account__user=(stranger := UserFactory()))

    response = signed_in(stranger).get("/api/v1/recordings/r-1")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_recording_whose_profile_is_gone_is_nobodys(profile):
    RecordingFactory(external_id="r-1", profile=None)

    response = signed_in(UserFactory()).get("/api/v1/recordings/r-1")

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("scopes", "method"),
    [(["recordings:write"], "get"), (["recordings:read"], "post"), (["consents:write"], "get")],
)
def test_recordings_need_their_scopes(api_client_with_scopes, profile, scopes, method):
    RecordingFactory(external_id="r-0", profile=profile)
    client = api_client_with_scopes(*scopes)
    path = "/api/v1/recordings/r-0" if method == "get" else "/api/v1/recordings"

    response = getattr(client, method)(path, _body(), format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert not Recording.objects.filter(external_id="r-1").exists()


def test_an_end_user_may_not_ingest(profile):
    user = UserFactory()
    profile.account.user = user
    profile.account.save()

    response = signed_in(user).post("/api/v1/recordings", _body(), format="json")

    assert response.status_code == 403
    assert not Recording.objects.exists()
