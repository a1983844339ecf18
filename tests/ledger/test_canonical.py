import hashlib
import json
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from compliance.ledger.canonical import (
    NotCanonical,
    canonical_bytes,
    entry_leaf,
    entry_leaf_around,
    leaf_hash,
    leaf_spliced,
)
from compliance.ledger.models import LedgerEntry
from compliance.ledger.services import ledger_append
from tests.conftest import postgres_only
from tests.ledger.conftest import TABLE, append, sql

# --- the encoding ----------------------------------------------------------------------


def test_keys_sort_by_utf16_code_units_as_rfc_8785_sorts_them():
    # RFC 8785, 3.2.3: U+1F600 (a surrogate pair, D83D DE00) sorts before U+FB33.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }

    keys = list(json.loads(canonical_bytes(value)))

    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_the_encoding_is_compact_utf8_with_only_the_escapes_json_requires():
    value = {"b": [1, True, None], "a": 'é"\\\n\x1f\u2028/'}

    expected = '{"a":"é\\"\\\\\\n\\u001f\u2028/","b":[1,true,null]}'
    assert canonical_bytes(value) == expected.encode()


@pytest.mark.parametrize(
    "value",
    [{"x": 1.5}, {"x": [0.0]}, {"x": 2**53}, {1: "a"}, {"x": "\ud800"}, {"x": object()}],
    ids=["float", "nested float", "huge int", "int key", "lone surrogate", "object"],
)
def test_what_has_no_canonical_form_is_refused(value):
    with pytest.raises(NotCanonical):
        canonical_bytes(value)


_AWKWARD = {
    "kind": "k.\u00e9",
    "subject": 'profile:"p","seq":0,"subject":\\',
    "actor": "client:\U0001f600",
    "payload": {"prev_hash": '","seq":0', "z": [1, None], "\u20ac": "\n"},
}


@pytest.mark.parametrize("seq", [1, 9, 10, 123_456_789])
def test_the_leaf_cut_around_its_place_in_the_chain_is_the_leaf_once_spliced(seq):
    moment = datetime(2026, 12, 7, 4, 5, 6, 789, tzinfo=UTC)
    prev_hash = hashlib.sha256(str(seq).encode()).hexdigest()

    head, tail = entry_leaf_around(created_at=moment, **_AWKWARD)

    assert leaf_spliced(head, tail, seq=seq, prev_hash=prev_hash) == entry_leaf(
        seq=seq, created_at=moment, prev_hash=prev_hash, **_AWKWARD
    )


# --- the append ------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_appended_leaf_is_the_python_encoding_of_its_stored_fields():
    """On PostgreSQL the database splices the head's hash and number into the leaf and
    hashes it (migration 0009): the bytes and hashes are the ones Python computes."""
    with transaction.atomic():
        returned = [ledger_append(**_AWKWARD) for _ in range(3)]

    stored = list(LedgerEntry.objects.order_by("seq"))
    assert [e.seq for e in stored] == [1, 2, 3]
    for entry, back in zip(stored, returned, strict=True):
        leaf = entry_leaf(
            seq=entry.seq,
            created_at=entry.created_at,
            kind=entry.kind,
            subject=entry.subject,
            actor=entry.actor,
            payload=entry.payload,
            prev_hash=entry.prev_hash,
        )
        assert bytes(entry.leaf) == leaf == back.leaf
        assert entry.hash == hashlib.sha256(leaf).hexdigest() == back.hash
        assert bytes(entry.leaf_hash) == leaf_hash(leaf) == back.leaf_hash
        assert (entry.pk, entry.seq, entry.prev_hash) == (back.pk, back.seq, back.prev_hash)
    assert stored[0].prev_hash == "0" * 64
    assert [e.prev_hash for e in stored[1:]] == [e.hash for e in stored[:-1]]


@pytest.mark.django_db
def test_an_append_stores_its_leaf_whose_hashes_are_the_chain_and_tree_hashes():
    with transaction.atomic():
        entry = ledger_append(
            kind="consent.granted", subject="profile:p", actor="t", payload={"n": 3}
        )
    stored = LedgerEntry.objects.get(pk=entry.pk)
    leaf = bytes(stored.leaf)

    assert json.loads(leaf) == {
        "seq": 1,
        "created_at": stored.created_at.isoformat(),
        "kind": "consent.granted",
        "subject": "profile:p",
        "actor": "t",
        "payload": {"n": 3},
        "prev_hash": "0" * 64,
    }
    assert hashlib.sha256(leaf).hexdigest() == stored.hash
    assert bytes(stored.leaf_hash) == hashlib.sha256(b"\x00" + leaf).digest() == leaf_hash(leaf)


@pytest.mark.django_db
def test_an_append_with_a_float_is_refused_and_writes_nothing():
    with pytest.raises(NotCanonical), transaction.atomic():
        ledger_append(kind="x", payload={"ratio": 0.5})

    assert not LedgerEntry.objects.exists()


# --- the migration that backfills the leaves -------------------------------------------


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_every_leaf_and_leaves_the_trigger_on():
    append(5)
    expected = {e.seq: (bytes(e.leaf), bytes(e.leaf_hash)) for e in LedgerEntry.objects.all()}
    executor = MigrationExecutor(connection)
    executor.migrate([("ledger", "0004_acknowledgement")])
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("ledger", "0005_entry_leaf")])
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes("ledger"))

    backfilled = {e.seq: (bytes(e.leaf), bytes(e.leaf_hash)) for e in LedgerEntry.objects.all()}
    assert backfilled == expected
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        sql(f"UPDATE {TABLE} SET kind = 'x' WHERE seq = 1", [])  # noqa: S608


def _append_functions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(r"SELECT proname FROM pg_proc WHERE proname LIKE 'ledger\_append\_%'")
        return {row[0] for row in cursor.fetchall()}


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_the_append_has_one_function_and_undoing_0010_brings_the_old_one_back():
    assert _append_functions() == {"ledger_append_entry"}
    executor = MigrationExecutor(connection)
    executor.migrate([("ledger", "0009_append_entry_function")])
    try:
        assert _append_functions() == {"ledger_append_entry", "ledger_append_head"}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes("ledger"))
    assert _append_functions() == {"ledger_append_entry"}
