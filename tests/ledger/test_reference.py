"""A ledger shortened from its end, or re-forged from an entry on, links from its first
entry: full verifications hold it against the last intact run, and a broken finding
stands until an officer acknowledges it. PostgreSQL: the ledger's trigger is only
there, and the tamperer turns it off as a database superuser would."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from compliance.core.errors import ApplicationError, FieldError
from compliance.ledger.models import LedgerAcknowledgement, LedgerEntry, VerificationRun
from compliance.ledger.selectors import (
    ChainPoint,
    ledger_reference,
    ledger_reference_problem,
    ledger_status,
    ledger_verify,
    verification_run_unacknowledged,
)
from compliance.ledger.services import (
    ledger_acknowledge,
    ledger_append,
    ledger_verification_start,
    ledger_verification_step,
)
from tests.conftest import postgres_only
from tests.ledger.conftest import append, delete_newest, edit_payload, reforge_from, verify_in_full

pytestmark = [pytest.mark.django_db, postgres_only()]

CHAIN = 64


def _metric() -> float:
    from compliance.ledger.metrics import LedgerCollector

    return {m.name: m.samples[0].value for m in LedgerCollector().collect()}[
        "earshot_ledger_broken"
    ]


def _command() -> str:
    """What `verify_ledger` says; its failures raise CommandError (a non-zero exit)."""
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    return out.getvalue()


def _command_fails() -> str:
    with pytest.raises(CommandError) as failed:
        _command()
    return str(failed.value)


@pytest.fixture
def verified() -> VerificationRun:
    """64 entries, found intact by a full verification: the reference."""
    append(CHAIN)
    run = verify_in_full()
    assert (run.status, run.through_seq) == ("intact", CHAIN)
    return run


# --- entries removed from the end --------------------------------------------------------


REMOVALS = pytest.mark.parametrize("removed", [1, 10, CHAIN], ids=["newest", "newest-10", "all"])


@REMOVALS
def test_removing_the_newest_entries_fails_verify_ledger_naming_what_is_missing(verified, removed):
    delete_newest(removed)
    assert ledger_verify().ok  # a walk from the first entry alone calls it intact

    message = _command_fails()

    left = CHAIN - removed
    assert f"FAILED at ledger entry #{left + 1}: missing" in message
    assert (
        f"expected at least {CHAIN} entries, up to #{CHAIN} with hash {verified.through_hash}"
        in message
    )
    assert f"verified by run #{verified.pk}" in message
    assert f"the chain ends at #{left}" in message


@REMOVALS
def test_removing_the_newest_entries_is_a_broken_full_run_and_stays_one(verified, removed):
    delete_newest(removed)

    first = verify_in_full()
    second = verify_in_full()

    for run in (first, second):
        assert run.status == VerificationRun.Status.BROKEN
        assert run.problem_seq == CHAIN - removed + 1
        assert f"up to #{CHAIN} with hash {verified.through_hash}" in run.problem
    assert ledger_reference().run.pk == verified.pk  # a broken run never becomes one
    assert ledger_status().broken
    assert _metric() == 1.0
    assert "missing" in _command_fails()


def test_entries_appended_after_a_removal_do_not_hide_it(verified):
    """The chain regrows past the reference's length, but entry #64 is another one."""
    delete_newest(10)
    append(20)

    run = verify_in_full()

    assert ledger_verify().ok
    assert (run.status, run.problem_seq) == ("broken", CHAIN)
    assert f"rewritten: expected #{CHAIN} with hash {verified.through_hash}" in run.problem


# --- an entry rewritten and every hash after it recomputed -------------------------------


@pytest.mark.parametrize("rewritten", [CHAIN, CHAIN - 5, 1], ids=["last", "near-last", "first"])
def test_a_rewrite_rehashed_onwards_is_caught_by_the_reference_hash(verified, rewritten):
    reforge_from(rewritten, {"forged": True})
    assert ledger_verify().ok  # consistent in itself

    run = verify_in_full()

    assert (run.status, run.problem_seq) == ("broken", CHAIN)
    assert f"rewritten: expected #{CHAIN} with hash {verified.through_hash}" in run.problem
    assert LedgerEntry.objects.get(seq=CHAIN).hash in run.problem
    assert f"#{CHAIN}: rewritten" in _command_fails()
    assert _metric() == 1.0


def test_the_reference_is_the_intact_run_that_verified_furthest(verified):
    append(5)
    further = verify_in_full()
    reforge_from(CHAIN + 3, {"forged": True})

    run = verify_in_full()

    assert ledger_reference().run.pk == further.pk
    assert (run.status, run.problem_seq) == ("broken", CHAIN + 5)


# --- the finding stands until acknowledged --------------------------------------------------


def test_an_intact_run_after_the_chain_is_put_back_does_not_clear_the_finding(verified):
    edit_payload(3, {"i": 99})
    broken = verify_in_full()
    edit_payload(3, {"i": 2})  # restored as it was written

    intact = verify_in_full()

    assert (broken.status, intact.status) == ("broken", "intact")
    assert verification_run_unacknowledged().pk == broken.pk
    assert ledger_status().broken
    assert _metric() == 1.0
    message = _command_fails()
    assert f"full verification #{broken.pk} found ledger entry #3" in message
    assert "not acknowledged yet" in message


@REMOVALS
def test_only_an_acknowledgement_clears_a_removal_and_it_is_in_the_ledger(verified, removed):
    delete_newest(removed)
    verify_in_full()
    standing = verify_in_full()

    acknowledgement = ledger_acknowledge(
        run_id=standing.pk, reason="restored from backup 12; see INC-7", actor="user:7"
    )

    entry = LedgerEntry.objects.order_by("-seq").first()
    assert (entry.kind, entry.actor, entry.seq) == (
        "ledger.acknowledged",
        "user:7",
        CHAIN - removed + 1,
    )
    assert entry.payload["reason"] == "restored from backup 12; see INC-7"
    assert sorted(entry.payload["runs"]) == sorted(
        VerificationRun.objects.filter(status="broken").values_list("pk", flat=True)
    )
    assert (acknowledgement.acknowledged_by, acknowledgement.through_seq) == ("user:7", entry.seq)
    assert acknowledgement.through_hash == entry.hash
    assert acknowledgement.acknowledged_at is not None
    assert not VerificationRun.objects.filter(status="broken", acknowledgement=None).exists()
    assert not ledger_status().broken
    assert _metric() == 0.0
    # the chain as it stands is the reference now: the next runs find it intact
    assert f"ledger OK: {entry.seq} entries verified" in _command()
    assert verify_in_full().status == "intact"
    assert _metric() == 0.0


def test_after_an_acknowledgement_the_chain_is_held_against_it(verified):
    delete_newest(10)
    standing = verify_in_full()
    acknowledgement = ledger_acknowledge(run_id=standing.pk, reason="known", actor="user:1")
    append(3)

    delete_newest(4)  # the acknowledgement's own entry goes too
    run = verify_in_full()

    assert ledger_reference().acknowledgement.pk == acknowledgement.pk
    assert (run.status, run.problem_seq) == ("broken", acknowledgement.through_seq)
    assert f"accepted by acknowledgement #{acknowledgement.pk}" in run.problem
    assert _metric() == 1.0


def test_an_acknowledgement_needs_a_reason_and_a_finding_and_names_the_newest_one(verified):
    with pytest.raises(ApplicationError) as nothing:
        ledger_acknowledge(run_id=verified.pk, reason="why not", actor="user:1")
    edit_payload(2, {"i": 9})
    older = verify_in_full()
    newer = verify_in_full()

    with pytest.raises(ApplicationError) as blank:
        ledger_acknowledge(run_id=newer.pk, reason="   ", actor="user:1")
    with pytest.raises(ApplicationError) as stale:
        ledger_acknowledge(run_id=older.pk, reason="seen", actor="user:1")

    assert (nothing.value.code, nothing.value.status_code) == ("nothing_to_acknowledge", 409)
    assert (blank.value.code, blank.value.fields) == (
        "reason_required",
        {"reason": [FieldError("required", "This field is required.")]},
    )
    assert (stale.value.code, stale.value.status_code) == ("finding_superseded", 409)
    assert not LedgerAcknowledgement.objects.exists()
    assert LedgerEntry.objects.filter(kind="ledger.acknowledged").count() == 0
    assert verification_run_unacknowledged().pk == newer.pk


def test_a_finding_after_the_acknowledgement_stands_again(verified):
    edit_payload(2, {"i": 9})
    ledger_acknowledge(run_id=verify_in_full().pk, reason="investigated", actor="user:1")

    again = verify_in_full()  # the edit is still there: found anew

    assert again.status == "broken" and again.acknowledgement is None
    assert verification_run_unacknowledged().pk == again.pk
    assert _metric() == 1.0


# --- the reference is compared at the finish, against the chain as it is then -------------


def test_a_run_overtaken_by_a_later_reference_walks_on_to_it_instead_of_calling_it_missing(
    monkeypatch,
):
    """Two runs overlap: the one whose walk reached the chain's end first finishes after
    the other made a later point the reference. The entries between were appended
    after its walk, not removed."""
    from compliance.ledger import selectors

    append(4)
    walk = selectors.ledger_walk
    overtaken: list[VerificationRun] = []
    once = iter([True])

    def overtaken_at_the_end(**kwargs):
        for step in walk(**kwargs):
            if step.complete and next(once, False):
                append(2)
                overtaken.append(verify_in_full("command"))
            yield step

    monkeypatch.setattr(selectors, "ledger_walk", overtaken_at_the_end)
    run = verify_in_full()

    assert (overtaken[0].status, overtaken[0].through_seq) == ("intact", 6)
    assert (run.status, run.through_seq) == ("intact", 6)


def test_the_reference_problem_with_no_reference_is_none():
    assert ledger_reference() is None
    assert ledger_reference_problem(end=ChainPoint(0, 0, "0" * 64), reference=None) is None


def test_appends_after_an_acknowledgement_keep_the_chain_whole(verified):
    delete_newest(1)
    ack = ledger_acknowledge(run_id=verify_in_full().pk, reason="r", actor="user:1")
    with transaction.atomic():
        entry = ledger_append(kind="k")

    assert entry.prev_hash == ack.through_hash
    assert ledger_verify().ok


def test_an_entry_that_fails_on_the_walk_on_is_named_not_called_missing(monkeypatch):
    from compliance.ledger import selectors

    append(4)
    walk = selectors.ledger_walk
    once = iter([True])

    def overtaken_at_the_end(**kwargs):
        for step in walk(**kwargs):
            if step.complete and next(once, False):
                append(2)
                verify_in_full("command")  # the reference is #6 now
                edit_payload(5, {"forged": True})  # and #5 is edited after it
            yield step

    monkeypatch.setattr(selectors, "ledger_walk", overtaken_at_the_end)
    run = verify_in_full()

    assert (run.status, run.problem_seq, run.through_seq) == ("broken", 5, 4)
    assert "edited" in run.problem


def test_of_overlapping_runs_the_one_that_verified_furthest_is_the_reference_not_the_newest():
    append(6)
    earlier = ledger_verification_start(requested_by="schedule", by_worker=False)
    later = verify_in_full("command")  # asked for after, finished first: 6 entries
    append(3)
    earlier = ledger_verification_step(run_id=earlier.pk, budget_seconds=None)  # 9 entries
    assert (later.through_seq, earlier.through_seq) == (6, 9)
    delete_newest(2)

    run = verify_in_full()

    assert ledger_reference().run.pk == earlier.pk
    assert (run.status, run.problem_seq) == ("broken", 8)


def test_the_page_checks_on_from_the_reference_a_run_or_an_acknowledgement(verified):
    append(3)
    assert ledger_status().since.start == ChainPoint(*_point_of(CHAIN))
    assert ledger_status().since.entries_checked == 3
    delete_newest(5)
    acknowledgement = ledger_acknowledge(run_id=verify_in_full().pk, reason="known", actor="user:1")
    append(2)

    status = ledger_status()

    assert status.since.start == ChainPoint(*_point_of(acknowledgement.through_seq))
    assert (status.since.entries_checked, status.since.complete) == (2, True)
    assert not status.broken


def _point_of(seq: int) -> tuple[int, int, str]:
    entry = LedgerEntry.objects.get(seq=seq)
    return entry.pk, entry.seq, entry.hash
