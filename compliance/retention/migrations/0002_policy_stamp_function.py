"""On PostgreSQL, `retention_policy_stamp(lock_key)`: takes the transaction-scoped
advisory lock `lock_key` shared (selectors.POLICY_LOCK_KEY), then reads the policy
table's version stamp (selectors.POLICY_STAMP_SQL's row).

Why a function: a statement takes its snapshot when it starts, so a stamp read by the
statement that takes the lock could predate a version committed while it waited. Each
statement of a VOLATILE PL/pgSQL function takes a new snapshot, so the stamp is read
after the lock is granted, and the ingest still reads it in the statement that locks
its profiles (one round trip). `retention_policies_apply` takes the lock exclusively
before it bounds its reschedule (services.artefacts_scheduled_so_far): every write that
read the stamp before then has committed, and every later one reads the versions it
applies. `ROWS 1`: planned as the one row it returns (PostgreSQL's guess for a function
returning a table is 1,000 rows, which turned the ingest's profile look-up into a
nested loop over every profile).
"""

from django.db import migrations
from django.db.migrations.operations.base import Operation

_CREATE = """
CREATE OR REPLACE FUNCTION retention_policy_stamp(lock_key bigint)
RETURNS TABLE (versions bigint, newest bigint, retired bigint, last_created timestamptz) AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(lock_key);
    RETURN QUERY SELECT count(*), max(p.id), count(p.retired_at), max(p.created_at)
        FROM retention_retentionpolicy p;
END;
$$ LANGUAGE plpgsql VOLATILE ROWS 1;
"""
_DROP = "DROP FUNCTION IF EXISTS retention_policy_stamp(bigint);"


def _on_postgresql(sql: str):  # noqa: ANN202
    def run(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("retention", "0001_initial")]

    operations: list[Operation] = [
        migrations.RunPython(_on_postgresql(_CREATE), _on_postgresql(_DROP)),
    ]
