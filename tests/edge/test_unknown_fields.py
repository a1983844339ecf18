"""Every API body refuses a field it does not know: a typo ("form" for "from",
"chanel" for "channel") must not be read as "not given"."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compliance.consent.models import ConsentState
from compliance.recordings.models import Recording
from compliance.retention.models import DeletionRequest, LegalHold
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db

UNKNOWN = [
    {"code": "unknown_field", "message": "This field is not one we know; check its spelling."}
]


def _refused(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][field] == UNKNOWN


@pytest.fixture
def profile():
    return ProfileFactory(external_id="p-1")


def test_a_deletion_request_with_a_misspelt_from_is_refused_and_deletes_nothing(platform, profile):
    response = platform.post(
        "/api/v1/profiles/p-1/deletion-requests",
        {"form": "2026-12-01T00:00:00Z"},
        format="json",
    )

    _refused(response, "form")
    assert not DeletionRequest.objects.exists()


def test_a_consent_with_a_misspelt_channel_is_refused(platform, profile):
    response = platform.put(
        "/api/v1/profiles/p-1/consents/human_review",
        {"granted": True, "chanel": "app", "notice_version": "2026-01"},
        format="json",
    )

    _refused(response, "chanel")
    assert ConsentState.objects.get(profile=profile, purpose="human_review").granted is not True


def test_a_legal_hold_with_a_misspelt_from_is_refused(platform, profile):
    response = platform.post(
        "/api/v1/legal-holds",
        {"profile": "p-1", "form": "2026-01-01T00:00:00Z", "reason": "inquiry"},
        format="json",
    )

    _refused(response, "form")
    assert not LegalHold.objects.exists()


def test_a_multipart_recording_knows_its_audio_file_and_refuses_a_stray_field(
    platform, profile, voice_clip
):
    def body(**extra):
        wav = SimpleUploadedFile("a.wav", voice_clip.read_bytes(), content_type="audio/wav")
        return {
            "external_id": "r-1",
            "profile": "p-1",
            "recorded_at": "2026-03-01T10:00:00Z",
            "audio": wav,
            **extra,
        }

    refused = platform.post("/api/v1/recordings", body(falgs="sensitive"), format="multipart")
    _refused(refused, "falgs")
    assert not Recording.objects.exists()

    accepted = platform.post("/api/v1/recordings", body(), format="multipart")
    assert accepted.status_code == 201, accepted.content


def test_a_json_recording_with_a_stray_field_is_refused(platform, profile):
    response = platform.post(
        "/api/v1/recordings",
        {"external_id": "r-1", "profile": "p-1", "recorded_at": "2026-03-01T10:00:00Z", "x": 1},
        format="json",
    )

    _refused(response, "x")


def test_the_batch_bodies_refuse_a_stray_top_level_field(platform, profile):
    _refused(
        platform.post(
            "/api/v1/recordings/batch", {"recordings": [], "dry_run": True}, format="json"
        ),
        "dry_run",
    )
    _refused(
        platform.post(
            "/api/v1/eligibility/batch",
            {"purpose": "human_review", "recordings": ["r"], "reviewer_locaton": "DE"},
            format="json",
        ),
        "reviewer_locaton",
    )


def test_an_account_with_a_stray_field_is_refused(platform):
    response = platform.post(
        "/api/v1/accounts",
        {"external_id": "a-1", "jurisdiction": "DE", "admin": True},
        format="json",
    )

    _refused(response, "admin")
