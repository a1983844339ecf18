"""Drop `ledger_append_head` (0008): since `ledger_append_entry` (0009) does the whole
append in one statement, nothing calls it. Undone, it is created again as 0008 had it."""

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
    dependencies = [("ledger", "0009_append_entry_function")]

    operations: list[Operation] = [
        migrations.RunPython(_on_postgresql(_DROP), _on_postgresql(_CREATE)),
    ]
