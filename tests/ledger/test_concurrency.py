"""The ledger under concurrent writers, on PostgreSQL: appends serialised into one chain,
and a run's finish serialised with an officer's acknowledgement. One connection per
thread, closed at its end."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from compliance.core.errors import ApplicationError
from compliance.ledger import selectors
from compliance.ledger.models import LedgerEntry, VerificationRun
from compliance.ledger.selectors import ledger_verify, verification_run_unacknowledged
from compliance.ledger.services import (
    ledger_acknowledge,
    ledger_append,
    ledger_verification_start,
    ledger_verification_step,
)
from tests.conftest import postgres_only
from tests.ledger.conftest import append, delete_newest, verify_in_full

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _in_thread(work: Callable[[], Any], outcome: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            outcome[name] = work()
        except Exception as error:  # handed to the test to assert on
            outcome[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_concurrent_appends_form_one_dense_chain():
    append(1)
    writers = 8
    ready = threading.Barrier(writers)
    outcome: dict[str, Any] = {}

    def write(i: int) -> Callable[[], LedgerEntry]:
        def go() -> LedgerEntry:
            with transaction.atomic():
                # every writer has read its transaction's snapshot before any appends
                LedgerEntry.objects.count()
                ready.wait(timeout=10)
                return ledger_append(kind="test.concurrent", subject=f"w:{i}")

        return go

    threads = [_in_thread(write(i), outcome, f"w{i}") for i in range(writers)]
    for thread in threads:
        thread.join(30)

    assert all(isinstance(entry, LedgerEntry) for entry in outcome.values()), outcome
    assert sorted(LedgerEntry.objects.values_list("seq", flat=True)) == list(range(1, writers + 2))
    assert ledger_verify().ok


def test_a_run_finishing_while_an_officer_acknowledges_is_never_held_against_the_old_reference(
    monkeypatch,
):
    """The run reads the reference, then the officer acknowledges (moving it). Were the
    two not serialised, the run would record the acknowledged shortfall again as a new,
    unacknowledged finding. Serialised, the acknowledgement waits and is refused: the
    officer is shown the run's finding to acknowledge instead."""
    append(10)
    verify_in_full()
    delete_newest(2)
    seen = verify_in_full()
    assert seen.status == "broken"
    racing = ledger_verification_start(requested_by="schedule", by_worker=False)

    read, proceed = threading.Event(), threading.Event()
    real = selectors.ledger_reference

    def pausing_after_reading() -> Any:
        reference = real()
        if threading.current_thread().name == "run":
            read.set()
            proceed.wait(timeout=10)
        return reference

    monkeypatch.setattr(selectors, "ledger_reference", pausing_after_reading)
    outcome: dict[str, Any] = {}
    run = _in_thread(
        lambda: ledger_verification_step(run_id=racing.pk, budget_seconds=None), outcome, "run"
    )
    assert read.wait(10)
    officer = _in_thread(
        lambda: ledger_acknowledge(run_id=seen.pk, reason="known loss", actor="user:1"),
        outcome,
        "officer",
    )
    officer.join(1.5)  # done, if nothing holds it back
    proceed.set()
    run.join(30)
    officer.join(30)

    finished = VerificationRun.objects.get(pk=racing.pk)
    assert finished.status == "broken"  # against the reference it read: the shortfall
    assert isinstance(outcome["officer"], ApplicationError), outcome
    assert outcome["officer"].code == "finding_superseded"
    assert verification_run_unacknowledged().pk == racing.pk
    assert not LedgerEntry.objects.filter(kind="ledger.acknowledged").exists()
