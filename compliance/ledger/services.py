"""Appending to the ledger.

Every entry is written in the transaction of the change it records, so the change and
its evidence commit or vanish together. Appends are serialised (a transaction-scoped
advisory lock on PostgreSQL; SQLite serialises writers itself) so that concurrent
writers still form one chain.
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from .models import LedgerEntry

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key for the ledger tail; any constant unique to this lock.
_LEDGER_LOCK_KEY = 0x4541_5253_484F_54  # "EARSHOT"


def entry_hash(
    *,
    seq: int,
    created_at: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "created_at": created_at.astimezone(UTC).isoformat(),
            "kind": kind,
            "subject": subject,
            "actor": actor,
            "payload": payload,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def ledger_append(
    *, kind: str, subject: str = "", actor: str = "", payload: dict[str, Any] | None = None
) -> LedgerEntry:
    """Append one entry. Must run inside the transaction of the change it records."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger_append must run inside the transaction of the change")
    payload = json.loads(json.dumps(payload or {}, default=str))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LEDGER_LOCK_KEY])
    last = LedgerEntry.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    created_at = timezone.now()
    return LedgerEntry.objects.create(
        seq=seq,
        created_at=created_at,
        kind=kind,
        subject=subject,
        actor=actor,
        payload=payload,
        prev_hash=prev_hash,
        hash=entry_hash(
            seq=seq,
            created_at=created_at,
            kind=kind,
            subject=subject,
            actor=actor,
            payload=payload,
            prev_hash=prev_hash,
        ),
    )
