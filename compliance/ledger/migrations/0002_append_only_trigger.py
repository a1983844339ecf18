"""On PostgreSQL, refuse UPDATE and DELETE on the ledger at the database itself, so
that no code path (bulk ORM calls included) can rewrite evidence. Direct SQL by a
superuser can still disable the trigger; verification catches what that changes."""

from django.db import migrations
from django.db.migrations.operations.base import Operation

_CREATE = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_append_only
    BEFORE UPDATE OR DELETE ON ledger_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_no_truncate
    BEFORE TRUNCATE ON ledger_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""
_DROP = """
DROP TRIGGER IF EXISTS ledger_no_truncate ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS ledger_append_only ON ledger_ledgerentry;
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


def _on_postgresql(sql: str):  # noqa: ANN202
    def run(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations: list[Operation] = [
        migrations.RunPython(_on_postgresql(_CREATE), _on_postgresql(_DROP)),
    ]
