"""Crash safety with real Celery workers on Redis: a worker killed (SIGKILL) at each
step boundary of a purge batch, then a fresh worker; nothing lost, nothing wrongly
deleted, exactly one ledger count per artefact."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from compliance.ledger.models import LedgerEntry
from compliance.ledger.selectors import ledger_verify
from compliance.recordings.models import Artefact, Recording
from compliance.retention.services import (
    legal_hold_place,
    retention_policies_apply,
    retention_policy_create,
)
from compliance.retention.tasks import purge_expired_task
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.conftest import stored_files

REPO = Path(__file__).resolve().parents[2]
REDIS = settings.CELERY_BROKER_URL.startswith("redis://")

pytestmark = [
    postgres_only(),
    pytest.mark.skipif(not REDIS, reason="needs a Redis broker (set CELERY_BROKER_URL)"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
]


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def start_worker() -> Iterator[Callable[..., tuple[subprocess.Popen, str]]]:
    started: list[subprocess.Popen] = []

    def start(queue: str, **env: str) -> subprocess.Popen:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.faults.settings",  # TEST_PURGE_FAULT works
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "TEST_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "EARSHOT_PURGE_LEASE_SECONDS": "2",
            **env,
        }
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "-Q",
                queue,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "warning",
            ],
            cwd=REPO,
            env=environment,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.parametrize("step", ["claimed", "unlinked", "finished"])
def test_a_worker_killed_at_any_step_loses_nothing_and_the_next_one_finishes(
    ingest, start_worker, step
):
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()
    expired = [ingest(days_ago=11) for _ in range(12)]
    fresh = [ingest(days_ago=1) for _ in range(3)]
    held_profile = ProfileFactory()
    held = [ingest(held_profile, days_ago=11) for _ in range(2)]
    legal_hold_place(profile=held_profile, reason="case", case_reference="C", actor="t")
    doomed_keys = {r.artefacts.get(category="audio").storage_key for r in expired}
    kept_keys = {r.artefacts.get(category="audio").storage_key for r in fresh + held}
    queue = f"test-{uuid.uuid4().hex}"

    victim = start_worker(queue, TEST_PURGE_FAULT=step)
    purge_expired_task.apply_async(queue=queue)
    victim.wait(60)
    assert victim.returncode == -9, "the fault hook should have killed the worker"

    survivor = start_worker(queue)
    time.sleep(2.5)  # let the dead worker's claim lapse (lease of 2 s)
    purge_expired_task.apply_async(queue=queue)
    expired_ids = [r.pk for r in expired]
    assert _wait_until(
        lambda: (
            Recording.objects.filter(pk__in=expired_ids, state="purged").count() == len(expired)
        ),
        60,
    ), "the fresh worker did not finish the purge"
    survivor.terminate()

    assert not Artefact.objects.filter(
        recording__in=expired, state__in=["active", "purging"]
    ).exists()
    assert not doomed_keys & stored_files(settings.MEDIA_ROOT)
    assert kept_keys <= stored_files(settings.MEDIA_ROOT)
    assert not Artefact.objects.filter(recording__in=fresh + held).exclude(state="active").exists()
    counted = sum(e.payload["artefacts"] for e in LedgerEntry.objects.filter(kind="purge.batch"))
    assert counted == 2 * len(expired)
    assert ledger_verify().ok


def test_a_deletion_request_is_carried_out_by_a_worker_after_commit(ingest, start_worker, platform):
    from config.celery import app

    profile = ProfileFactory()
    inside = [ingest(profile, days_ago=d) for d in (3, 4)]
    outside = ingest(profile, days_ago=30)
    app.control.purge()  # nothing stale from other runs on the default queue
    worker = start_worker("celery")

    response = platform.post(
        f"/api/v1/profiles/{profile.external_id}/deletion-requests",
        {"from": inside[-1].recorded_at.isoformat(), "to": inside[0].recorded_at.isoformat()},
        format="json",
    )
    assert response.status_code == 202
    request_id = response.json()["id"]

    def done() -> bool:
        return platform.get(f"/api/v1/deletion-requests/{request_id}").json()["status"] == "done"

    assert _wait_until(done, 60), "the worker did not carry out the request"
    worker.terminate()
    status = platform.get(f"/api/v1/deletion-requests/{request_id}").json()
    assert status["recordings_deleted"] == 2
    assert Recording.objects.get(pk=outside.pk).state == "active"


def test_the_lease_and_the_purges_period_take_a_dead_workers_batch_over_within_a_minute():
    period = settings.CELERY_BEAT_SCHEDULE["purge-expired"]["schedule"]
    assert settings.PURGE_LEASE_SECONDS + period <= 60


def test_a_worker_killed_mid_batch_is_taken_over_within_a_minute_with_the_real_lease(
    ingest, start_worker
):
    """No shortened lease here: the lease and the purge's period as deployed. The
    victim dies with its files deleted and its finish not committed; the survivor,
    sent a purge at the beat's period, finishes the batch within 60 s of the kill."""
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policies_apply()
    expired = [ingest(days_ago=11) for _ in range(6)]
    queue = f"test-{uuid.uuid4().hex}"
    lease = str(settings.PURGE_LEASE_SECONDS)
    period = settings.CELERY_BEAT_SCHEDULE["purge-expired"]["schedule"]

    victim = start_worker(queue, TEST_PURGE_FAULT="unlinked", EARSHOT_PURGE_LEASE_SECONDS=lease)
    purge_expired_task.apply_async(queue=queue)
    victim.wait(60)
    killed_at = time.monotonic()
    assert victim.returncode == -9, "the fault hook should have killed the worker"
    assert Artefact.objects.filter(recording__in=expired, state="purging").count() == 6
    doomed_keys = set(
        Artefact.objects.filter(state="purging").values_list("storage_key", flat=True)
    )

    start_worker(queue, EARSHOT_PURGE_LEASE_SECONDS=lease)
    expired_ids = [r.pk for r in expired]

    audio = Artefact.objects.filter(recording__in=expired_ids, category="audio")

    def purged() -> bool:
        return audio.filter(state="purged", purge_attempt=2).count() == 6

    while not purged() and time.monotonic() - killed_at < 60:
        purge_expired_task.apply_async(queue=queue)  # the beat's tick
        _wait_until(purged, period)
    assert purged(), "the dead worker's batch was not finished within 60 s of the kill"
    assert time.monotonic() - killed_at <= 60
    assert not doomed_keys & stored_files(settings.MEDIA_ROOT)
    counted = sum(e.payload["artefacts"] for e in LedgerEntry.objects.filter(kind="purge.batch"))
    assert counted == 6
    assert ledger_verify().ok
