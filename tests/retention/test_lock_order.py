"""Lock order under load, on PostgreSQL: retention choices, purges, deletion requests,
policy application and ingest all on the same few profiles at once.

Every path takes its locks in the codebase's one order (account -> profile -> consent
state -> recording -> artefact -> review item -> ledger), so PostgreSQL never has to
break a cycle: no `deadlock detected`, no request answered 5xx, and everything due is
purged once the load stops.
"""

import os
import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, connections
from django.db.models import Q
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.actions.ingest import recording_create
from compliance.clients.services import service_client_create
from compliance.ledger.selectors import ledger_verify
from compliance.recordings.models import Artefact, ArtefactState
from compliance.recordings.services import RecordingInput
from compliance.retention import deletion_requests, purge
from compliance.retention.services import (
    deletion_request_create,
    retention_policies_apply,
    retention_policy_create,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]

SECONDS = float(os.environ.get("EARSHOT_LOCK_TEST_SECONDS", "30"))
CHOICES = ["3_months", "18_months", "until_deleted", "dont_save"]


def _deadlocks_so_far() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


class _Load:
    """Threads that each loop on one kind of work until `stop`, with their own
    connection (closed at the end), counting what went wrong."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def failed(self, kind: str, error: BaseException | str) -> None:
        text = str(error)
        with self.lock:
            self.errors["deadlock" if "deadlock detected" in text else kind] += 1
            if len(self.failures) < 20:
                self.failures.append(f"{kind}: {text[:300]}")

    def run(self, kind: str, step, seed: int) -> None:
        def loop() -> None:
            rng = random.Random(seed)
            try:
                while not self.stop.is_set():
                    try:
                        step(rng)
                        with self.lock:
                            self.done[kind] += 1
                    except DatabaseError as error:
                        self.failed(kind, error)
            except BaseException as error:  # anything else ends the thread: report it
                self.failed(kind, repr(error))
            finally:
                connections.close_all()

        thread = threading.Thread(target=loop, name=f"{kind}-{seed}")
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)
            assert not thread.is_alive(), f"{thread.name} did not stop"


def test_retention_changes_purges_deletions_policies_and_ingest_never_deadlock(settings):
    for category in ("audio", "transcript"):
        retention_policy_create(jurisdiction="*", category=category, retention_days=10, actor="t")
    retention_policies_apply()
    profiles = [ProfileFactory() for _ in range(10)]
    _, key = service_client_create(name="lock-order", scopes=["consents:write"])
    counter = iter(range(10_000_000))
    counter_lock = threading.Lock()

    def ingest(rng: random.Random, profile=None) -> None:
        with counter_lock:
            n = next(counter)
        recording_create(
            data=RecordingInput(
                external_id=f"load-{n}",
                profile_external_id=(profile or rng.choice(profiles)).external_id,
                recorded_at=timezone.now() - timedelta(days=rng.choice([1, 5, 11, 12, 40])),
                transcript="turn on the lights",
            ),
            actor="test",
        )

    seeding = random.Random(0)
    for profile in profiles:
        for _ in range(15):
            ingest(seeding, profile)

    def change_retention(rng: random.Random, client: APIClient) -> None:
        profile = rng.choice(profiles)
        response = client.put(
            f"/api/v1/profiles/{profile.external_id}/retention",
            {"choice": rng.choice(CHOICES)},
            format="json",
        )
        if response.status_code >= 500:
            load.failed("http_5xx", f"{response.status_code} {response.content[:300]!r}")
        elif response.status_code != 200:
            load.failed("http_other", f"{response.status_code} {response.content[:300]!r}")

    def run_purge(rng: random.Random) -> None:
        purge.purge_expired(limit=rng.choice([5, 20, 50]), budget_seconds=5)

    def run_deletion(rng: random.Random) -> None:
        profile = rng.choice(profiles)
        now = timezone.now()
        request = deletion_request_create(
            profile=profile,
            recorded_from=now - timedelta(days=6),
            recorded_to=now - timedelta(days=4),
            actor="test",
        )
        deletion_requests.deletion_request_run(public_id=request.public_id)
        time.sleep(0.2)

    def apply_policy(rng: random.Random) -> None:
        retention_policy_create(
            jurisdiction="*",
            category=rng.choice(["audio", "transcript"]),
            retention_days=rng.choice([3, 10, 30]),
            actor="test",
        )
        retention_policies_apply()
        time.sleep(0.5)

    deadlocks_before = _deadlocks_so_far()
    load = _Load()
    for n in range(8):
        client = APIClient()
        client.raise_request_exception = False  # a crash must show as the 500 it is
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        load.run("retention", lambda rng, c=client: change_retention(rng, c), seed=n)
    for n in range(3):
        load.run("purge", run_purge, seed=100 + n)
    for n in range(2):
        load.run("ingest", ingest, seed=200 + n)
    load.run("deletion", run_deletion, seed=300)
    load.run("policy", apply_policy, seed=400)
    time.sleep(SECONDS)
    load.join()

    # what was due when the load stopped (dont_save: everything of that profile) goes
    # at the next purge; nothing is left half-claimed
    cutoff = timezone.now()
    purge.purge_expired(budget_seconds=120)
    time.sleep(1.5)  # the other backends' statistics reach pg_stat_database
    deadlocks = _deadlocks_so_far() - deadlocks_before

    print(
        f"lock order load: done={dict(load.done)} errors={dict(load.errors)} deadlocks={deadlocks}"
    )
    assert load.done["retention"] >= 50 and load.done["purge"] >= 10, load.done
    assert load.done["ingest"] >= 20 and load.done["deletion"] >= 3, load.done
    assert not load.errors, (dict(load.errors), load.failures)
    assert deadlocks == 0, f"PostgreSQL detected {deadlocks} deadlocks"
    overdue = Artefact.objects.filter(
        Q(state=ArtefactState.PURGING)
        | Q(
            state=ArtefactState.ACTIVE,
            purge_blocked=False,
            expires_at__lte=cutoff,
        )
    )
    assert not overdue.exists(), list(overdue.values("id", "state", "expires_at"))[:10]
    assert Artefact.objects.filter(state=ArtefactState.PURGED).count() > 100
    assert ledger_verify().ok
