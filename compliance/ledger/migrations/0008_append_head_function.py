"""On PostgreSQL, the append's lock and its read of the chain's head in one round trip:
`ledger_append_head(key)` takes the transaction-scoped advisory lock that serialises
appends, then reads the head. A VOLATILE PL/pgSQL function's statements each take a
new snapshot, so the head is read after the lock is granted and includes the entry of
the append that held it (one statement holding both would read the head from a
snapshot taken before it waited)."""

from django.db import migrations
from django.db.migrations.operations.base import Operation

_CREATE = """
CREATE OR REPLACE FUNCTION ledger_append_head(lock_key bigint)
RETURNS TABLE (seq bigint, hash varchar) AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN QUERY SELECT e.seq, e.hash FROM ledger_ledgerentry e ORDER BY e.seq DESC LIMIT 1;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""
_DROP = "DROP FUNCTION IF EXISTS ledger_append_head(bigint);"


def _on_postgresql(sql: str):  # noqa: ANN202
    def run(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("ledger", "0007_entry_parts")]

    operations: list[Operation] = [
        migrations.RunPython(_on_postgresql(_CREATE), _on_postgresql(_DROP)),
    ]
