from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from compliance.actions.ingest import recording_create
from compliance.recordings.services import RecordingInput
from tests.factories import ProfileFactory


@pytest.fixture
def ingest(db):
    """Ingest a recording through the real service (audio file + transcript)."""

    def make(
        profile=None, *, days_ago: float = 1, external_id: str | None = None, audio: bool = True
    ):
        profile = profile or ProfileFactory()
        make.counter += 1
        return recording_create(
            data=RecordingInput(
                external_id=external_id or f"rec-{make.counter}",
                profile_external_id=profile.external_id,
                recorded_at=timezone.now() - timedelta(days=days_ago),
                transcript="turn on the lights",
                audio=ContentFile(b"RIFF....WAVEfmt ", name="clip.wav") if audio else None,
            ),
            actor="test",
        )

    make.counter = 0
    return make


def stored_files(root: str) -> set[str]:
    base = Path(root)
    return (
        {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}
        if base.exists()
        else set()
    )
