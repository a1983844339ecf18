"""Per-profile parts of entries that cover many profiles (compliance/ledger/parts.py)."""

import base64
import json
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction

from compliance.ledger.checkpoints import ledger_checkpoint_issue
from compliance.ledger.models import LedgerEntryPart
from compliance.ledger.parts import entry_parts, parts_inclusion_path, profile_parts
from compliance.ledger.services import ledger_append
from earshot_verify.merkle import hash_leaf, root_from_leaf_hashes, verify_inclusion
from tests.conftest import postgres_only
from tests.ledger.conftest import verify_in_full

pytestmark = pytest.mark.django_db


def _append_with_parts(n: int = 3):
    with transaction.atomic():
        return ledger_append(
            kind="purge.batch",
            subject="purge",
            actor="t",
            payload={"artefacts": n},
            parts={f"p-{i}": {"recordings": [{"recording": f"r-{i}", "reason": "x"}]}
                   for i in range(n)},
        )  # fmt: skip


def test_an_entry_covering_many_profiles_commits_to_each_part_by_its_root_only():
    entry = _append_with_parts(3)

    leaf = bytes(entry.leaf)
    assert b"p-0" not in leaf and b"r-1" not in leaf
    stored = list(LedgerEntryPart.objects.filter(seq=entry.seq).order_by("index"))
    assert [p.profile for p in stored] == ["p-0", "p-1", "p-2"]
    assert all(bytes(p.leaf_hash) == hash_leaf(bytes(p.part)) for p in stored)
    root = root_from_leaf_hashes([bytes(p.leaf_hash) for p in stored])
    assert entry.payload["parts_root"] == base64.b64encode(root).decode()
    assert entry.payload["parts"] == 3
    assert [p["recordings"][0]["recording"] for p in entry_parts(seq=entry.seq)] == [
        "r-0",
        "r-1",
        "r-2",
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_every_parts_path_reaches_the_root(count):
    hashes = [hash_leaf(str(i).encode()) for i in range(count)]
    root = root_from_leaf_hashes(hashes)

    for index in range(count):
        verify_inclusion(
            leaf_hash=hashes[index],
            index=index,
            tree_size=count,
            proof=parts_inclusion_path(hashes, index),
            root=root,
        )


def test_a_profiles_part_comes_with_its_path_and_no_other():
    entry = _append_with_parts(5)

    [(seq, part)] = profile_parts(profile="p-3").items()

    assert seq == entry.seq
    assert part.body["profile"] == "p-3"
    verify_inclusion(
        leaf_hash=hash_leaf(part.part),
        index=part.index,
        tree_size=5,
        proof=part.path,
        root=base64.b64decode(entry.payload["parts_root"]),
    )


def test_parts_are_salted_so_equal_contents_never_hash_alike():
    _append_with_parts(1)
    _append_with_parts(1)

    salts = [
        json.loads(bytes(p))["salt"] for p in LedgerEntryPart.objects.values_list("part", flat=True)
    ]
    hashes = set(LedgerEntryPart.objects.values_list("leaf_hash", flat=True))

    assert len(set(salts)) == 2 and len(hashes) == 2


@postgres_only()
def test_the_database_refuses_to_change_or_remove_a_part():
    _append_with_parts(2)

    for statement in (
        "UPDATE ledger_ledgerentrypart SET profile = 'x'",
        "DELETE FROM ledger_ledgerentrypart",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)


@postgres_only()
def test_parts_are_exported_beside_their_entries(settings):
    entry = _append_with_parts(2)

    ledger_checkpoint_issue()

    [exported] = (Path(settings.LEDGER_EXPORT) / "parts").iterdir()
    lines = exported.read_text().splitlines()
    stored = LedgerEntryPart.objects.filter(seq=entry.seq).order_by("index")
    assert lines == [
        f"{entry.seq} {p.index} {base64.b64encode(bytes(p.part)).decode()}" for p in stored
    ]


def _with_part_triggers_off(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_ledgerentrypart DISABLE TRIGGER USER")
        cursor.execute(statement, params)
        cursor.execute("ALTER TABLE ledger_ledgerentrypart ENABLE TRIGGER USER")


@postgres_only()
@pytest.mark.parametrize(
    ("statement", "named"),
    [
        # a rewritten part, its stored leaf hash recomputed
        (
            "UPDATE ledger_ledgerentrypart SET part = %s, leaf_hash = %s WHERE index = 1",
            "do not match its parts_root (edited)",
        ),
        ("DELETE FROM ledger_ledgerentrypart WHERE index = 1", "missing or out of order"),
    ],
    ids=["edited", "removed"],
)
def test_a_full_verification_finds_a_tampered_part_and_names_its_entry(statement, named):
    _append_with_parts(1)
    entry = _append_with_parts(3)
    forged = b'{"profile":"p-1","recordings":[],"salt":"AAAA"}'
    params = [forged, hash_leaf(forged)] if "UPDATE" in statement else []

    _with_part_triggers_off(statement, params)
    run = verify_in_full()

    assert run.status == "broken"
    assert run.problem_seq == entry.seq
    assert named in run.problem


def test_a_full_verification_holds_entries_with_parts_intact():
    _append_with_parts(3)
    _append_with_parts(0)

    assert verify_in_full().status == "intact"
