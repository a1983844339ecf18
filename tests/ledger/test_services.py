from datetime import UTC, datetime
from itertools import pairwise
from types import SimpleNamespace

import pytest
from django.db import connection, transaction

from compliance.ledger import services
from compliance.ledger.models import LedgerEntry
from compliance.ledger.services import GENESIS_HASH, entry_hash, ledger_append

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
