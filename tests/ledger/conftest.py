import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from compliance.ledger.models import LedgerEntry, VerificationRun
from compliance.ledger.services import (
    ledger_append,
    ledger_verification_start,
    ledger_verification_step,
)

TABLE = LedgerEntry._meta.db_table


def append(n: int, kind: str = "consent.granted") -> list[LedgerEntry]:
    """`n` entries as the application writes them."""
    with transaction.atomic():
        return [
            ledger_append(kind=kind, subject=f"profile:p-{i}", actor="t", payload={"i": i})
            for i in range(n)
        ]


@pytest.fixture
def ledger(db) -> list[LedgerEntry]:
    """Six entries, 1..6, as the application writes them."""
    append(6)
    return list(LedgerEntry.objects.order_by("seq"))


@contextmanager
def tampering() -> Iterator[None]:
    """Direct SQL as a database superuser would run it: the append-only trigger off.

    PostgreSQL DDL is transactional, so this stays inside the test's transaction and is
    rolled back with it even if an assertion fails in between."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        yield
        if postgres:
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")


def sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def edit_payload(seq: int, payload: dict) -> None:
    """What a tamperer does to an entry, its hash left as it was."""
    with tampering():
        sql(f"UPDATE {TABLE} SET payload = %s WHERE seq = %s", [json.dumps(payload), seq])  # noqa: S608


def verify_in_full(requested_by: str = "schedule") -> VerificationRun:
    """A full verification as the beat runs one, its steps taken here."""
    run = ledger_verification_start(requested_by=requested_by, by_worker=False)
    finished = ledger_verification_step(run_id=run.pk, budget_seconds=None)
    assert finished is not None
    return finished


def delete_newest(n: int) -> None:
    """A tamperer removes the newest `n` entries (all, if `n` is as long as the chain)."""
    newest = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    with tampering():
        sql(f"DELETE FROM {TABLE} WHERE seq > %s", [newest - n])  # noqa: S608


def reforge_from(seq: int, payload: dict) -> None:
    """A tamperer rewrites entry `seq` and recomputes its hash and every later entry's
    link and hash, so that the chain is consistent in itself."""
    from compliance.ledger.canonical import entry_hash

    prev_hash = None
    with tampering():
        for entry in LedgerEntry.objects.filter(seq__gte=seq).order_by("seq"):
            if entry.seq == seq:
                entry.payload = payload
            else:
                entry.prev_hash = prev_hash
            entry.hash = entry_hash(
                seq=entry.seq,
                created_at=entry.created_at,
                kind=entry.kind,
                subject=entry.subject,
                actor=entry.actor,
                payload=entry.payload,
                prev_hash=entry.prev_hash,
            )
            sql(
                f"UPDATE {TABLE} SET payload = %s, prev_hash = %s, hash = %s WHERE id = %s",  # noqa: S608
                [json.dumps(entry.payload), entry.prev_hash, entry.hash, entry.pk],
            )
            prev_hash = entry.hash


def append_with_parts(n: int = 2) -> LedgerEntry:
    """A purge batch as the purge writes one: a part per profile, `n` profiles."""
    with transaction.atomic():
        return ledger_append(
            kind="purge.batch",
            subject="purge",
            actor="t",
            payload={"artefacts": n},
            parts={
                f"p-{i}": {"recordings": [{"recording": f"r-{i}", "reason": "retention_policy"}]}
                for i in range(n)
            },
        )


def delete_parts_after(seq: int) -> None:
    """The parts of the entries after `seq` go with them (what a restore of an older
    backup leaves)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_ledgerentrypart DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM ledger_ledgerentrypart WHERE seq > %s", [seq])
        cursor.execute("ALTER TABLE ledger_ledgerentrypart ENABLE TRIGGER USER")
