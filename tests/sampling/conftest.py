from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from compliance.consent.models import ConsentState, Purpose
from compliance.recordings.models import Recording
from compliance.sampling.services import Caller
from tests.factories import ArtefactFactory, ProfileFactory, RecordingFactory, ReviewerFactory

HUMAN = Purpose.HUMAN_REVIEW
TRAINING = Purpose.MODEL_TRAINING
CLIP = b"RIFF\x24\x00\x00\x00WAVEfmt a few bytes standing in for a clip"
LINK = Caller(user=None, via_link=True, actor="link")


def reviewable(
    *,
    jurisdiction: str = "DE",
    granted: dict[str, bool | None] | None = None,
    transcript: str | None = "turn on the lights",
    profile: Any = None,
    **recording: Any,
) -> Recording:
    """A recording with an audio file in storage and a transcript, of a profile that
    has granted human review (and `granted` as given)."""
    if profile is None:
        profile = ProfileFactory(account__jurisdiction=jurisdiction)
        for purpose, value in (granted or {HUMAN: True}).items():
            ConsentState.objects.filter(profile=profile, purpose=purpose).update(granted=value)
    rec = RecordingFactory(profile=profile, **recording)
    key = default_storage.save(f"audio/test/{rec.external_id}.wav", ContentFile(CLIP))
    ArtefactFactory(recording=rec, category="audio", storage_key=key, size_bytes=len(CLIP))
    if transcript is not None:
        ArtefactFactory(recording=rec, category="transcript", text=transcript)
    return rec


@pytest.fixture
def sampler(api_client_with_scopes) -> APIClient:
    return api_client_with_scopes("samples:draw")


@pytest.fixture
def draw(sampler) -> Callable[..., Any]:
    def post(**body: Any) -> Any:
        body.setdefault("purpose", HUMAN)
        body.setdefault("size", 10)
        return sampler.post("/api/v1/samples", body, format="json")

    return post


@pytest.fixture
def reviewer(db) -> Any:
    return ReviewerFactory(location="DE")


@pytest.fixture
def reviewer_client(reviewer) -> APIClient:
    client = APIClient()
    client.force_login(reviewer.user)
    return client


def fetch(client: APIClient, url: str) -> Any:
    """GET `url`; a streamed body is read into `.body` (which closes the file: the test
    client closes a streamed response when its content is exhausted)."""
    response = client.get(url)
    response.body = b"".join(response.streaming_content) if response.streaming else response.content
    return response
