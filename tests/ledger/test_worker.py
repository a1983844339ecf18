"""Full verifications as they run in production: steps taken by a real Celery worker on
Redis, and `manage.py verify_ledger` as its own process, on a ledger shortened from its
end after an intact run. Neither may call it intact, and the second run's finding
does not clear the first's."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from compliance.ledger.models import VerificationRun
from compliance.ledger.selectors import ledger_verify, verification_run_unacknowledged
from compliance.ledger.services import ledger_verification_request
from tests.conftest import postgres_only
from tests.ledger.conftest import append, delete_newest, verify_in_full

REPO = Path(__file__).resolve().parents[2]
REDIS = settings.CELERY_BROKER_URL.startswith("redis://")

pytestmark = [
    postgres_only(),
    pytest.mark.skipif(not REDIS, reason="needs a Redis broker (set CELERY_BROKER_URL)"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
]


def _environment() -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }


@pytest.fixture
def worker() -> Iterator[subprocess.Popen]:
    from config.celery import app

    app.control.purge()  # nothing stale on the default queue from earlier runs
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "-Q",
            "celery",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=REPO,
        env=_environment(),
    )
    yield process
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def _finished(run_id: int, seconds: float = 60) -> VerificationRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = VerificationRun.objects.get(pk=run_id)
        if run.status != VerificationRun.Status.RUNNING:
            return run
        time.sleep(0.2)
    raise AssertionError(f"the worker did not finish verification run #{run_id}")


def _request() -> VerificationRun:
    run, new = ledger_verification_request(requested_by="schedule")  # commits, then queues
    assert new
    return _finished(run.pk)


def test_a_worker_finds_a_ledger_shortened_from_its_end_broken_and_so_does_the_command(worker):
    append(30)
    reference = verify_in_full()
    assert (reference.status, reference.through_seq) == ("intact", 30)
    delete_newest(5)
    assert ledger_verify().ok  # a walk from the first entry alone calls it intact

    first = _request()
    second = _request()
    command = subprocess.run(
        [sys.executable, "manage.py", "verify_ledger"],
        cwd=REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    for run in (first, second):
        assert (run.status, run.problem_seq) == ("broken", 26)
        assert f"expected at least 30 entries, up to #30 with hash {reference.through_hash}" in (
            run.problem
        )
    assert verification_run_unacknowledged().status == "broken"
    assert command.returncode != 0
    assert "FAILED at ledger entry #26: missing: expected at least 30 entries" in command.stderr
    assert "ledger OK" not in command.stdout
