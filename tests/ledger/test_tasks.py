"""The verification tasks called directly, with the queue stood in for by a list."""

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from compliance.ledger import services, tasks
from compliance.ledger.models import VerificationRun
from compliance.ledger.services import ledger_verification_start
from tests.ledger.conftest import append

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(monkeypatch) -> list[tuple]:
    """The step tasks sent, as (run id, after attempt)."""
    sent: list[tuple] = []
    monkeypatch.setattr(
        tasks.ledger_verification_step_task, "delay", lambda *args: sent.append(args)
    )
    return sent


def test_a_step_task_queues_the_next_step_until_the_run_is_done(monkeypatch, queue):
    append(5)
    small_steps = partial(services.ledger_verification_step, budget_seconds=0, chunk=2)
    monkeypatch.setattr(services, "ledger_verification_step", small_steps)
    run = ledger_verification_start(requested_by="test", by_worker=False)

    tasks.ledger_verification_step_task(run.pk)
    while queue:
        tasks.ledger_verification_step_task(*queue.pop(0))

    run.refresh_from_db()
    assert (run.status, run.entries_checked) == (VerificationRun.Status.INTACT, 5)
    assert run.attempts == 3  # entries 1-2, 3-4, then 5 and the end


def test_a_duplicate_step_task_does_nothing(queue):
    append(2)
    run = ledger_verification_start(requested_by="test", by_worker=False)
    tasks.ledger_verification_step_task(run.pk)

    tasks.ledger_verification_step_task(run.pk)  # delivered twice
    tasks.ledger_verification_step_task(run.pk, 0)  # a stale continuation

    run.refresh_from_db()
    assert (run.status, run.attempts) == (VerificationRun.Status.INTACT, 1)
    assert queue == []


def test_the_sweep_task_queues_a_step_for_each_run_whose_worker_is_gone(queue):
    now = timezone.now()
    VerificationRun.objects.create(requested_by="t", requested_at=now)  # asked for just now
    lapsed = VerificationRun.objects.create(
        requested_by="t", requested_at=now, lease_until=now - timedelta(seconds=1)
    )

    tasks.ledger_verification_sweep_task()

    assert queue == [(lapsed.pk,)]
