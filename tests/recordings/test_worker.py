"""Registered recordings under the real purge: a Celery worker on Redis deletes the
objects of `dont_save` registrations and keeps those under a legal hold."""

import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from compliance.ledger.selectors import ledger_verify
from compliance.recordings.models import Artefact, Recording
from compliance.retention.services import legal_hold_place
from compliance.retention.tasks import purge_expired_task
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.test_worker import REDIS, _wait_until, start_worker  # noqa: F401 (fixture)

pytestmark = [
    postgres_only(),
    pytest.mark.skipif(not REDIS, reason="needs a Redis broker (set CELERY_BROKER_URL)"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
]


def test_a_worker_purges_dont_save_registrations_with_their_objects_and_keeps_held_ones(
    platform,
    start_worker,  # noqa: F811 (the fixture, imported above)
):
    gone = ProfileFactory(external_id="p-gone", retention_choice="dont_save")
    held = ProfileFactory(external_id="p-held", retention_choice="dont_save")
    legal_hold_place(profile=held, reason="litigation", case_reference="C-9", actor="t")
    items, keys = [], {}
    for n, profile in enumerate([gone] * 5 + [held] * 3):
        key = default_storage.save(f"ingest/w/{n}.wav", ContentFile(b"RIFF....WAVEfmt "))
        keys[f"r-{n}"] = key
        items.append(
            {
                "external_id": f"r-{n}",
                "profile": profile.external_id,
                "recorded_at": "2026-01-31T12:00:00Z",
                "audio_key": key,
            }
        )
    response = platform.post("/api/v1/recordings/batch", {"recordings": items}, format="json")
    assert {r["status"] for r in response.json()["results"]} == {"created"}
    doomed = [f"r-{n}" for n in range(5)]
    queue = f"test-{uuid.uuid4().hex}"
    worker = start_worker(queue)

    purge_expired_task.apply_async(queue=queue)

    assert _wait_until(
        lambda: Recording.objects.filter(external_id__in=doomed, state="purged").count() == 5,
        60,
    ), "the worker did not purge the dont_save registrations"
    worker.terminate()
    for n in range(8):
        exists = Path(settings.MEDIA_ROOT, keys[f"r-{n}"]).exists()
        assert exists == (n >= 5), n
    assert not Artefact.objects.filter(recording__profile=held).exclude(state="active").exists()
    assert ledger_verify().ok
