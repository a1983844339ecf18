import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction

from compliance.ledger import selectors
from compliance.ledger.canonical import entry_hash
from compliance.ledger.models import LedgerEntry, VerificationRun
from compliance.ledger.selectors import (
    GENESIS,
    ChainPoint,
    ledger_tail_walk,
    ledger_verify,
    ledger_walk,
)
from tests.conftest import postgres_only
from tests.ledger.conftest import TABLE, append, edit_payload, sql, tampering

pytestmark = pytest.mark.django_db


def _row(seq: int) -> dict:
    entry = LedgerEntry.objects.get(seq=seq)
    return {
        "seq": entry.seq,
        "created_at": entry.created_at,
        "kind": entry.kind,
        "subject": entry.subject,
        "actor": entry.actor,
        "payload": json.dumps(entry.payload),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _overwrite(pk: int, row: dict) -> None:
    columns = ", ".join(f"{name} = %s" for name in row)
    sql(f"UPDATE {TABLE} SET {columns} WHERE id = %s", [*row.values(), pk])  # noqa: S608


def _verify_command_fails() -> str:
    with pytest.raises(CommandError) as failed:
        call_command("verify_ledger", stdout=StringIO())
    return str(failed.value)


# --- a clean ledger --------------------------------------------------------------------


def test_an_empty_ledger_verifies():
    result = ledger_verify()

    assert result.ok
    assert result.entries_checked == 0


def test_a_clean_ledger_verifies_and_the_command_says_so(ledger):
    result = ledger_verify(chunk=4)  # more than one chunk

    assert result.ok
    assert result.entries_checked == 6
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "ledger OK: 6 entries verified" in out.getvalue()


# --- tampering ------------------------------------------------------------------------


def test_an_edited_payload_fails_naming_that_entry(ledger):
    with tampering():
        sql(f"UPDATE {TABLE} SET payload = %s WHERE seq = 4", [json.dumps({"i": 99})])  # noqa: S608

    result = ledger_verify()

    assert not result.ok
    assert result.problem.seq == 4
    assert "edited" in result.problem.problem
    assert result.entries_checked == 3
    assert "#4" in _verify_command_fails()


@pytest.mark.parametrize("column", ["kind", "subject", "actor"])
def test_any_edited_field_fails_naming_that_entry(ledger, column):
    with tampering():
        sql(f"UPDATE {TABLE} SET {column} = %s WHERE seq = 2", ["forged"])  # noqa: S608

    assert ledger_verify().problem.seq == 2


def test_an_edit_with_a_recomputed_hash_breaks_the_link_of_the_next_entry(ledger):
    forged = LedgerEntry.objects.get(seq=3)
    forged.payload = {"i": 99}
    new_hash = entry_hash(
        seq=forged.seq,
        created_at=forged.created_at,
        kind=forged.kind,
        subject=forged.subject,
        actor=forged.actor,
        payload=forged.payload,
        prev_hash=forged.prev_hash,
    )
    with tampering():
        _overwrite(forged.pk, {"payload": json.dumps(forged.payload), "hash": new_hash})

    result = ledger_verify()

    assert result.problem.seq == 4
    assert "link" in result.problem.problem
    assert "#4" in _verify_command_fails()


@pytest.mark.parametrize("removed", [1, 3, 5])
def test_a_removed_entry_fails_naming_the_missing_seq(ledger, removed):
    with tampering():
        sql(f"DELETE FROM {TABLE} WHERE seq = %s", [removed])  # noqa: S608

    result = ledger_verify()

    assert result.problem.seq == removed
    assert "missing" in result.problem.problem
    assert f"#{removed}" in _verify_command_fails()


def test_swapped_sequence_numbers_fail_naming_the_entry_out_of_order(ledger):
    with tampering():
        sql(f"UPDATE {TABLE} SET seq = -seq WHERE seq IN (3, 4)", [])  # noqa: S608
        sql(f"UPDATE {TABLE} SET seq = 4 WHERE seq = -3", [])  # noqa: S608
        sql(f"UPDATE {TABLE} SET seq = 3 WHERE seq = -4", [])  # noqa: S608

    result = ledger_verify()

    assert result.problem.seq == 4
    assert "out of order" in result.problem.problem
    assert "missing" not in result.problem.problem
    assert "#4" in _verify_command_fails()


def test_swapped_rows_fail_naming_the_entry_out_of_order(ledger):
    third, fourth = ledger[2], ledger[3]
    row3, row4 = _row(3), _row(4)
    with tampering():
        _overwrite(third.pk, {"seq": -1, "hash": "x" * 64})
        _overwrite(fourth.pk, row3)
        _overwrite(third.pk, row4)

    result = ledger_verify()

    assert result.problem.seq == 4
    assert "out of order" in result.problem.problem


def test_swapped_contents_under_their_old_numbers_fail_as_edited(ledger):
    row2, row5 = _row(2), _row(5)
    row2.pop("seq"), row5.pop("seq")
    with tampering():
        _overwrite(ledger[1].pk, {**row5, "hash": "x" * 64})
        _overwrite(ledger[4].pk, row2)
        _overwrite(ledger[1].pk, row5)

    result = ledger_verify()

    assert result.problem.seq == 2
    assert "edited" in result.problem.problem


# --- the database refuses changes (PostgreSQL) ---------------------------------------


@postgres_only()
@pytest.mark.parametrize(
    "change",
    [
        lambda: LedgerEntry.objects.filter(seq=2).update(kind="forged"),
        lambda: LedgerEntry.objects.filter(seq=2).delete(),
        lambda: LedgerEntry.objects.get(seq=2).delete(),
        lambda: LedgerEntry.objects.all().delete(),
        lambda: sql(f"UPDATE {TABLE} SET payload = %s WHERE seq = 2", ['{"i": 9}']),  # noqa: S608
        lambda: sql(f"DELETE FROM {TABLE} WHERE seq = 2", []),  # noqa: S608
        lambda: sql(f"TRUNCATE {TABLE}", []),
    ],
    ids=[
        "orm-update",
        "orm-delete",
        "orm-instance-delete",
        "orm-delete-all",
        "sql-update",
        "sql-delete",
        "sql-truncate",
    ],
)
def test_the_database_refuses_to_change_or_remove_entries(ledger, change):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        change()

    assert [e.seq for e in LedgerEntry.objects.order_by("seq")] == [1, 2, 3, 4, 5, 6]
    assert LedgerEntry.objects.get(seq=2).kind == "consent.granted"
    assert ledger_verify().ok


@postgres_only()
def test_a_saved_instance_cannot_be_rewritten(ledger):
    entry = LedgerEntry.objects.get(seq=3)
    entry.actor = "someone else"

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        entry.save()

    assert LedgerEntry.objects.get(seq=3).actor == "t"


@postgres_only()
def test_after_tampering_the_trigger_is_on_again(ledger):
    with tampering():
        pass

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(seq=1).delete()


# --- walking on from a verified point ----------------------------------------------------


def _point(entry: LedgerEntry) -> ChainPoint:
    return ChainPoint(entry.pk, entry.seq, entry.hash)


@pytest.fixture
def hashes(monkeypatch) -> list[int]:
    """The sequence numbers of the entries re-hashed, in order."""
    seen: list[int] = []

    def counting(**fields):
        seen.append(fields["seq"])
        return entry_hash(**fields)

    monkeypatch.setattr(selectors, "entry_hash", counting)
    return seen


def test_a_walk_from_a_verified_point_rehashes_only_that_entry_and_those_after_it(ledger, hashes):
    *_, walk = ledger_walk(start=_point(ledger[3]))

    assert walk.ok and walk.complete
    assert (walk.entries_checked, walk.end) == (2, _point(ledger[5]))
    assert hashes == [4, 5, 6]


def test_a_walk_yields_its_progress_after_every_chunk(ledger):
    walks = [(w.end.seq, w.complete) for w in ledger_walk(chunk=2)]

    assert walks == [(2, False), (4, False), (6, False), (6, True)]


def test_a_walk_from_a_point_trusts_the_entries_before_it_a_full_one_does_not(ledger):
    edit_payload(2, {"i": 99})

    *_, walk = ledger_walk(start=_point(ledger[3]))

    assert walk.ok
    assert ledger_verify().problem.seq == 2


def test_an_edit_after_the_point_fails_the_walk_naming_the_entry(ledger):
    edit_payload(5, {"i": 99})

    *_, walk = ledger_walk(start=_point(ledger[3]))

    assert walk.problem.seq == 5
    assert "edited" in walk.problem.problem
    assert walk.end == _point(ledger[3])


@pytest.mark.parametrize("change", ["payload", "payload-and-hash", "removed"])
def test_a_changed_or_removed_point_fails_the_walk_from_it(ledger, change):
    point = _point(ledger[3])
    with tampering():
        if change == "removed":
            sql(f"DELETE FROM {TABLE} WHERE seq = 4", [])  # noqa: S608
        else:
            forged = LedgerEntry.objects.get(seq=4)
            forged.payload = {"i": 99}
            row = {"payload": json.dumps(forged.payload)}
            if change == "payload-and-hash":
                row["hash"] = selectors._recomputed(forged)
            _overwrite(forged.pk, row)

    [walk] = ledger_walk(start=point)

    assert walk.problem.seq == 4
    assert walk.entries_checked == 0


def test_a_tail_walk_stops_at_its_limit(ledger):
    walk = ledger_tail_walk(start=GENESIS, limit=4)

    assert walk.ok and not walk.complete
    assert walk.entries_checked == 4


def test_the_command_records_its_run():
    append(3)

    call_command("verify_ledger", stdout=StringIO())

    run = VerificationRun.objects.get()
    assert (run.requested_by, run.status, run.entries_checked) == ("command", "intact", 3)
