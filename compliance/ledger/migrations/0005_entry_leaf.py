"""Every ledger entry carries its leaf: the canonical bytes its hash is computed from,
and the leaf's hash in the Merkle tree.

Entries written before this have their leaf encoded once here, from their columns,
in `seq` order and in chunks. The append-only trigger refuses the UPDATE, so it is
switched off for the backfill and on again in the same transaction (PostgreSQL DDL is
transactional: a failure in between leaves it on).
"""

import hashlib
from datetime import UTC

from django.db import migrations, models
from django.db.migrations.operations.base import Operation

from compliance.ledger.canonical import canonical_bytes

_TABLE = "ledger_ledgerentry"
_CHUNK = 2000


def _leaf(entry) -> bytes:  # noqa: ANN001
    return canonical_bytes(
        {
            "seq": entry.seq,
            "created_at": entry.created_at.astimezone(UTC).isoformat(),
            "kind": entry.kind,
            "subject": entry.subject,
            "actor": entry.actor,
            "payload": entry.payload,
            "prev_hash": entry.prev_hash,
        },
        allow_floats=True,
    )


def backfill(apps, schema_editor) -> None:  # noqa: ANN001
    LedgerEntry = apps.get_model("ledger", "LedgerEntry")  # noqa: N806
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(f"ALTER TABLE {_TABLE} DISABLE TRIGGER ledger_append_only")
    after = 0
    while True:
        batch = list(LedgerEntry.objects.filter(seq__gt=after).order_by("seq")[:_CHUNK])
        if not batch:
            break
        for entry in batch:
            entry.leaf = _leaf(entry)
            entry.leaf_hash = hashlib.sha256(b"\x00" + entry.leaf).digest()
        LedgerEntry.objects.bulk_update(batch, ["leaf", "leaf_hash"])
        after = batch[-1].seq
    if postgres:
        schema_editor.execute(f"ALTER TABLE {_TABLE} ENABLE TRIGGER ledger_append_only")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_acknowledgement")]

    operations: list[Operation] = [
        migrations.AddField("ledgerentry", "leaf", models.BinaryField(null=True)),
        migrations.AddField(
            "ledgerentry", "leaf_hash", models.BinaryField(max_length=32, null=True)
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField("ledgerentry", "leaf", models.BinaryField()),
        migrations.AlterField("ledgerentry", "leaf_hash", models.BinaryField(max_length=32)),
    ]
