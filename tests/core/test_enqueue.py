"""With the broker unreachable, a change that committed is answered 2xx, never 5xx; the
work it handed to Celery waits in the database, and the sweeps (or a worker) finish it."""

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from compliance.core.enqueue import enqueue, enqueue_backoff_reset, enqueue_on_commit
from compliance.core.metrics import registry
from compliance.ledger.models import LedgerEntry, VerificationRun
from compliance.ledger.services import ledger_verifications_sweep
from compliance.ledger.tasks import ledger_verification_step_task
from compliance.recordings.models import Recording
from compliance.retention import deletion_requests
from compliance.retention.models import DeletionRequest, RetentionPolicy
from compliance.retention.tasks import (
    deletion_request_run_task,
    retention_policies_apply_task,
    retention_sweep_task,
)
from config.celery import app as celery_app
from tests.conftest import broker_unreachable, postgres_only
from tests.factories import ArtefactFactory, ProfileFactory, RecordingFactory
from tests.web.conftest import make_household, make_officer, verify_session

pytestmark = pytest.mark.django_db(transaction=True)


def failures(task_name: str) -> float:
    return registry.get_sample_value("earshot_enqueue_failures_total", {"task": task_name}) or 0.0


def run_lost_deletion_requests() -> list[str]:
    """What the beat's sweep and then a worker do, once the request counts as lost."""
    lost = deletion_requests.deletion_requests_sweep(now=timezone.now() + timedelta(seconds=31))
    for public_id in lost:
        deletion_request_run_task(public_id)
    return lost


def test_an_enqueue_the_broker_refuses_is_counted_logged_and_quick(broker_down, caplog):
    before = failures("retention.apply_policies")
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="compliance.core.enqueue"):
        sent = enqueue(retention_policies_apply_task)

    assert sent is False
    assert time.monotonic() - started < 5
    assert failures("retention.apply_policies") == before + 1
    assert "task.enqueue_failed task=retention.apply_policies" in caplog.text


def test_after_a_refusal_the_process_leaves_the_broker_alone_for_a_while(broker_down, monkeypatch):
    assert enqueue(retention_policies_apply_task) is False
    before = failures("retention.apply_policies")
    tried: list[tuple] = []
    monkeypatch.setattr(retention_policies_apply_task, "delay", lambda *a: tried.append(a))

    during = enqueue(retention_policies_apply_task)
    enqueue_backoff_reset()  # as when BROKER_BACKOFF_SECONDS have passed
    after = enqueue(retention_policies_apply_task)

    assert (during, after) == (False, True)
    assert tried == [()]
    assert failures("retention.apply_policies") == before + 1


def test_nothing_is_enqueued_for_a_change_that_rolled_back(broker_down):
    before = failures("retention.apply_policies")

    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(retention_policies_apply_task)
        raise RuntimeError("rolled back")

    assert failures("retention.apply_policies") == before


def test_a_deletion_request_with_the_broker_down_is_accepted_once_and_swept(broker_down, platform):
    recording = RecordingFactory()
    before = failures("retention.run_deletion_request")

    response = platform.post(
        f"/api/v1/profiles/{recording.profile.external_id}/deletion-requests", {}, format="json"
    )

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "received"
    request = DeletionRequest.objects.get()
    assert request.public_id == response.json()["id"]
    assert LedgerEntry.objects.filter(kind="deletion_request.received").count() == 1
    assert failures("retention.run_deletion_request") == before + 1

    scraped = Client().get("/metrics").content.decode()
    assert 'earshot_enqueue_failures_total{task="retention.run_deletion_request"}' in scraped
    waiting = registry.get_sample_value("earshot_deletion_request_oldest_received_seconds")
    assert waiting is not None and waiting > 0
    assert run_lost_deletion_requests() == [request.public_id]
    assert registry.get_sample_value("earshot_deletion_request_oldest_received_seconds") == 0

    request.refresh_from_db()
    assert request.status == "done"
    assert Recording.objects.get(pk=recording.pk).state == "purged"


def test_a_policy_created_and_retired_with_the_broker_down_is_applied_by_the_sweep(
    broker_down, platform
):
    artefact = ArtefactFactory(
        recording__profile__account__jurisdiction="DE", category="transcript", text="hello"
    )
    assert artefact.expires_at is None

    created = platform.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "DE", "category": "transcript", "retention_days": 30},
        format="json",
    )

    assert created.status_code == 201, created.content
    policy = RetentionPolicy.objects.get()
    assert policy.applied_at is None  # the work, waiting for the sweep
    assert registry.get_sample_value("earshot_retention_policies_unapplied") == 1

    retention_sweep_task()  # the beat's sweep, the broker still down

    policy.refresh_from_db()
    artefact.refresh_from_db()
    assert policy.applied_at is not None
    assert artefact.expires_at == artefact.recording.recorded_at + timedelta(days=30)

    retired = platform.delete(f"/api/v1/retention-policies/{policy.pk}")

    assert retired.status_code == 200, retired.content
    retention_sweep_task()
    artefact.refresh_from_db()
    assert artefact.expires_at is None


def test_deleting_from_the_privacy_page_with_the_broker_down_is_filed_and_swept(broker_down):
    household = make_household()
    client = Client()
    client.force_login(household.user)
    url = f"/privacy/profiles/{household.adult.external_id}/deletions/"

    filed = client.post(url, {"scope": "all", "confirm": "on"})

    request = DeletionRequest.objects.get()
    assert filed.status_code == 302
    assert filed["Location"] == f"/privacy/deletions/{request.public_id}/"
    assert run_lost_deletion_requests() == [request.public_id]
    assert not Recording.objects.filter(profile=household.adult, state="active").exists()


def test_an_officer_policy_and_verification_with_the_broker_down_succeed_and_are_swept(
    broker_down,
):
    user, device = make_officer()
    client = Client()
    client.force_login(user)
    verify_session(client, device)

    policy_page = client.post(
        "/officer/policies/",
        {
            "jurisdiction": "EU",
            "category": "transcript",
            "applies_to": "all",
            "retention_days": "30",
            "action": "create",
        },
    )
    verify_page = client.post("/officer/ledger/verify/")

    assert policy_page.status_code == 302
    assert verify_page.status_code == 302
    assert RetentionPolicy.objects.get().applied_at is None
    run = VerificationRun.objects.get()
    assert run.status == "running"

    later = timezone.now() + timedelta(minutes=10)
    assert ledger_verifications_sweep(now=later).resume == [run.pk]
    ledger_verification_step_task(run.pk)  # what the worker the sweep rings does
    run.refresh_from_db()
    assert run.status == "intact"
    retention_sweep_task()
    assert RetentionPolicy.objects.get().applied_at is not None


def test_the_sweeps_carry_on_past_a_refused_enqueue(broker_down):
    profiles = [ProfileFactory() for _ in range(2)]
    for profile in profiles:
        purge_request = DeletionRequest.objects.create(
            public_id=f"del_{profile.pk}", profile=profile, requested_by="test"
        )
        DeletionRequest.objects.filter(pk=purge_request.pk).update(
            created_at=timezone.now() - timedelta(minutes=5)
        )
    before = failures("retention.run_deletion_request")

    retention_sweep_task()

    assert failures("retention.run_deletion_request") == before + 2


@postgres_only()
@pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"),
    reason="needs a Redis broker (set CELERY_BROKER_URL)",
)
@pytest.mark.worker
def test_a_request_accepted_while_the_broker_was_down_is_run_by_a_real_worker(platform):
    recording = RecordingFactory()
    with broker_unreachable():
        accepted = platform.post(
            f"/api/v1/profiles/{recording.profile.external_id}/deletion-requests",
            {},
            format="json",
        )
    assert accepted.status_code == 202
    request = DeletionRequest.objects.get()
    celery_app.control.purge()  # this database's queue: only what this test sends
    worker = _start_worker()
    try:
        with time_machine.travel(timezone.now() + timedelta(seconds=31)):
            retention_sweep_task()  # the beat's sweep finds the lost request; broker up

        assert _wait_until(
            lambda: DeletionRequest.objects.get(pk=request.pk).status == "done", 60
        ), "no worker ran the swept request"
    finally:
        worker.terminate()
        worker.wait(10)
    assert Recording.objects.get(pk=recording.pk).state == "purged"


def _start_worker() -> subprocess.Popen:
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TEST_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"),
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
    )


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_a_process_that_never_imported_the_task_modules_finds_a_task_by_name():
    """A web process imports services, never tasks: naming a task must still find it
    (before, the lookup raised NotRegistered in an on_commit hook: a 500 after commit)."""
    script = (
        "import django; django.setup()\n"
        "from celery import current_app\n"
        "from compliance.core.enqueue import task_by_name\n"
        "assert 'webhooks.send' not in current_app.tasks\n"
        "print(task_by_name('webhooks.send').name, task_by_name('retention.apply_policies').name)\n"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["webhooks.send", "retention.apply_policies"]
