from datetime import UTC, datetime, timedelta
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from compliance.ledger import selectors, services
from compliance.ledger.canonical import entry_hash
from compliance.ledger.models import LedgerEntry, VerificationRun
from compliance.ledger.selectors import ledger_status
from compliance.ledger.services import (
    GENESIS_HASH,
    ledger_append,
    ledger_verification_request,
    ledger_verification_start,
    ledger_verification_step,
    ledger_verifications_sweep,
)
from tests.ledger.conftest import append, edit_payload, verify_in_full

pytestmark = pytest.mark.django_db


def _append(n: int) -> list[LedgerEntry]:
    with transaction.atomic():
        return [
            ledger_append(kind="test.event", subject=f"thing:{i}", actor="t", payload={"i": i})
            for i in range(n)
        ]


def test_entries_form_a_dense_hash_chain():
    _append(5)

    entries = list(LedgerEntry.objects.order_by("seq"))

    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in pairwise(entries):
        assert after.prev_hash == before.hash
    for entry in entries:
        assert entry.hash == entry_hash(
            seq=entry.seq,
            created_at=entry.created_at,
            kind=entry.kind,
            subject=entry.subject,
            actor=entry.actor,
            payload=entry.payload,
            prev_hash=entry.prev_hash,
        )


def test_the_stored_entry_hashes_the_same_as_the_returned_one():
    [returned] = _append(1)

    stored = LedgerEntry.objects.get(pk=returned.pk)

    assert (stored.hash, stored.payload, stored.created_at) == (
        returned.hash,
        returned.payload,
        returned.created_at,
    )


def test_the_payload_is_stored_as_plain_json():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with transaction.atomic():
        entry = ledger_append(kind="k", payload={"at": moment, "ids": (1, 2)})

    assert LedgerEntry.objects.get(pk=entry.pk).payload == {
        "at": "2026-01-02 03:04:05+00:00",
        "ids": [1, 2],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"kind": "other"},
        {"subject": "x"},
        {"actor": "x"},
        {"payload": {"i": 1}},
        {"prev_hash": "1" * 64},
        {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},
    ],
)
def test_the_hash_covers_every_field(change):
    fields = {
        "seq": 1,
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
        "kind": "k",
        "subject": "s",
        "actor": "a",
        "payload": {"i": 0},
        "prev_hash": GENESIS_HASH,
    }

    assert entry_hash(**fields) != entry_hash(**{**fields, **change})


def test_appending_outside_a_transaction_is_refused(monkeypatch):
    # pytest-django wraps every test in a transaction; this is the connection outside one
    outside = SimpleNamespace(in_atomic_block=False, vendor=connection.vendor)
    monkeypatch.setattr(services, "connection", outside)

    with pytest.raises(RuntimeError, match="inside the transaction"):
        ledger_append(kind="k")

    assert not LedgerEntry.objects.exists()


def test_an_entry_rolled_back_with_its_change_leaves_no_gap():
    _append(2)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        ledger_append(kind="doomed")
        1 / 0  # noqa: B018

    _append(1)

    assert [e.seq for e in LedgerEntry.objects.order_by("seq")] == [1, 2, 3]
    assert not LedgerEntry.objects.filter(kind="doomed").exists()


# --- full verifications ------------------------------------------------------------------


def _run_to_the_end(run: VerificationRun, **step: Any) -> VerificationRun:
    """The steps of a run as its tasks would take them, each continuing the one before."""
    attempt = run.attempts
    while True:
        stepped = ledger_verification_step(run_id=run.pk, after_attempt=attempt, **step)
        assert stepped is not None
        if stepped.status != VerificationRun.Status.RUNNING:
            return stepped
        attempt = stepped.attempts


def test_a_full_verification_records_that_the_chain_is_intact_and_where_it_ends():
    entries = _append(5)
    run = ledger_verification_start(requested_by="test", by_worker=False)

    run = _run_to_the_end(run, budget_seconds=None)

    assert run.status == VerificationRun.Status.INTACT
    assert (run.through_id, run.through_seq, run.through_hash) == (
        entries[-1].pk,
        5,
        entries[-1].hash,
    )
    assert run.finished_at is not None and run.lease_until is None
    assert (run.problem_seq, run.problem) == (None, "")


def test_a_full_verification_records_the_first_entry_that_does_not_hold():
    _append(5)
    edit_payload(3, {"i": 99})
    run = ledger_verification_start(requested_by="test", by_worker=False)

    run = _run_to_the_end(run, budget_seconds=None)

    assert run.status == VerificationRun.Status.BROKEN
    assert (run.problem_seq, run.through_seq) == (3, 2)
    assert "edited" in run.problem


def test_a_step_stops_at_its_budget_and_the_next_goes_on_from_where_it_stopped():
    _append(5)
    run = ledger_verification_start(requested_by="test", by_worker=False)
    progress = []

    first = ledger_verification_step(run_id=run.pk, budget_seconds=0, chunk=2)
    progress.append(first.through_seq)
    second = ledger_verification_step(
        run_id=run.pk, after_attempt=first.attempts, budget_seconds=0, chunk=2
    )
    progress.append(second.through_seq)
    done = _run_to_the_end(second, budget_seconds=0, chunk=2)

    assert first.status == second.status == VerificationRun.Status.RUNNING
    assert progress == [2, 4]
    assert (done.status, done.through_seq) == (VerificationRun.Status.INTACT, 5)


def test_a_run_in_a_workers_hands_is_not_taken_until_its_lease_lapses():
    _append(3)
    run = ledger_verification_start(requested_by="test", by_worker=False)
    held = ledger_verification_step(run_id=run.pk, budget_seconds=0, chunk=1)

    assert ledger_verification_step(run_id=run.pk) is None  # the sweep's resume, too early
    VerificationRun.objects.filter(pk=run.pk).update(lease_until=timezone.now())
    taken = ledger_verification_step(run_id=run.pk, budget_seconds=None)

    assert taken.status == VerificationRun.Status.INTACT
    assert taken.attempts == held.attempts + 1
    # the first worker's continuation, late: not its run any more
    assert ledger_verification_step(run_id=run.pk, after_attempt=held.attempts) is None


def test_a_worker_whose_run_was_taken_over_on_the_way_writes_nothing_more(monkeypatch):
    _append(4)
    run = ledger_verification_start(requested_by="test", by_worker=False)
    walk = selectors.ledger_walk

    def taken_over_after_the_first_chunk(**kwargs):
        for n, step in enumerate(walk(**kwargs)):
            if n == 1:  # another worker claimed the run meanwhile
                VerificationRun.objects.filter(pk=run.pk).update(attempts=F("attempts") + 1)
            yield step

    monkeypatch.setattr(selectors, "ledger_walk", taken_over_after_the_first_chunk)

    assert ledger_verification_step(run_id=run.pk, budget_seconds=None, chunk=2) is None
    run.refresh_from_db()
    assert (run.status, run.through_seq) == (VerificationRun.Status.RUNNING, 2)


def test_asking_while_a_full_verification_runs_joins_it(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        first, first_new = ledger_verification_request(requested_by="user:1")
        second, second_new = ledger_verification_request(requested_by="user:2")

    assert (first_new, second_new) == (True, False)
    assert second.pk == first.pk
    assert len(queued) == 1  # one first step for a worker


def test_the_sweep_starts_a_scheduled_run_when_none_was_asked_for_lately(
    django_capture_on_commit_callbacks,
):
    _append(2)
    now = timezone.now()

    with django_capture_on_commit_callbacks() as queued:
        started = ledger_verifications_sweep(now=now).started
    again = ledger_verifications_sweep(now=now + timedelta(minutes=5)).started
    _run_to_the_end(VerificationRun.objects.get(pk=started), budget_seconds=None)
    with time_machine.travel(now + timedelta(hours=1, minutes=1)):
        later = ledger_verifications_sweep().started

    assert VerificationRun.objects.get(pk=started).requested_by == "schedule"
    assert len(queued) == 1
    assert again is None
    assert later is not None and later != started


def test_the_sweep_resumes_runs_whose_worker_died_or_whose_task_was_lost():
    now = timezone.now()

    def run(**fields: Any) -> int:
        return VerificationRun.objects.create(requested_by="t", **fields).pk

    lapsed = run(requested_at=now - timedelta(hours=1), lease_until=now - timedelta(seconds=1))
    lost = run(requested_at=now - timedelta(minutes=1))
    held = run(requested_at=now - timedelta(hours=1), lease_until=now + timedelta(minutes=1))
    queued = run(requested_at=now - timedelta(seconds=5))
    finished = now - timedelta(minutes=1)
    run(requested_at=now - timedelta(hours=1), status="intact", finished_at=finished)

    sweep = ledger_verifications_sweep(now=now)

    assert sweep.started is None  # one was asked for within the hour
    assert sorted(sweep.resume) == sorted([lapsed, lost])
    assert held not in sweep.resume and queued not in sweep.resume


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "intact"},  # finished without a finish time
        {"status": "running", "finished_at": datetime(2026, 1, 1, tzinfo=UTC)},
        {"status": "broken", "finished_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no problem
        {"status": "intact", "finished_at": datetime(2026, 1, 1, tzinfo=UTC), "problem_seq": 3},
    ],
)
def test_a_run_cannot_say_it_finished_without_saying_when_or_fail_without_saying_where(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        VerificationRun.objects.create(requested_by="t", requested_at=timezone.now(), **fields)


def _metric(name: str) -> float:
    from compliance.ledger.metrics import LedgerCollector

    return {m.name: m.samples[0].value for m in LedgerCollector().collect()}[name]


@pytest.mark.django_db
def test_an_older_run_finishing_intact_never_clears_a_newer_runs_broken_finding():
    """Runs overlap: one that passed an entry before it was edited, finishing after a
    run that found the edit, must not clear the alarm on the page or in the metrics."""
    append(6)
    older = ledger_verification_start(requested_by="schedule", by_worker=False)
    step = ledger_verification_step(run_id=older.pk, budget_seconds=0, chunk=2)
    assert (step.status, step.through_seq) == ("running", 2)
    edit_payload(1, {"i": 99})
    newer = ledger_verification_start(requested_by="command", by_worker=False)
    newer = ledger_verification_step(run_id=newer.pk, after_attempt=0, budget_seconds=None)
    assert (newer.status, newer.problem_seq) == ("broken", 1)

    done = ledger_verification_step(
        run_id=older.pk, after_attempt=step.attempts, budget_seconds=None
    )
    assert done.status == "intact"  # it checked entry #1 before the edit

    status = ledger_status()
    assert status.broken
    assert status.last_finished.pk == newer.pk
    assert _metric("earshot_ledger_broken") == 1.0


@pytest.mark.django_db
def test_an_intact_run_asked_for_after_a_broken_finding_does_not_clear_it_an_acknowledgement_does():
    """E.g. the ledger restored from a backup: a full run that finds it intact again
    does not say what happened; the finding stands until an officer acknowledges it."""
    append(4)
    edit_payload(2, {"i": 99})
    broken = verify_in_full("command")
    assert broken.status == "broken"
    assert ledger_status().broken and _metric("earshot_ledger_broken") == 1.0

    edit_payload(2, {"i": 1})  # the entry as it was written
    intact = verify_in_full("command")
    assert intact.status == "intact"
    status = ledger_status()
    assert status.broken
    assert status.last_finished.pk == broken.pk
    assert _metric("earshot_ledger_broken") == 1.0

    acknowledged = services.ledger_acknowledge(
        run_id=broken.pk, reason="restored entry #2", actor="user:1"
    )
    status = ledger_status()
    assert not status.broken
    assert status.last_finished is None  # the runs before it are no reference now
    assert status.reference.acknowledgement.pk == acknowledged.pk
    assert _metric("earshot_ledger_broken") == 0.0


def test_the_hash_is_the_same_for_the_same_moment_in_any_time_zone():
    """A connection that hands back times in another zone must not fail verification."""
    from zoneinfo import ZoneInfo

    moment = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    fields = {
        "seq": 1,
        "kind": "k",
        "subject": "s",
        "actor": "a",
        "payload": {},
        "prev_hash": GENESIS_HASH,
    }

    assert entry_hash(created_at=moment, **fields) == entry_hash(
        created_at=moment.astimezone(ZoneInfo("Europe/Berlin")), **fields
    )
