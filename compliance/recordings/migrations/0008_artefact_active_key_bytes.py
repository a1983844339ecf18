"""On PostgreSQL, the active artefacts' storage keys in byte order (`COLLATE "C"`), for
the storage sweep on S3: it merges them with a bucket listing, which S3 returns in
UTF-8 byte order (retention/storage_sweep.py). `artefact_storage_key_owner` is in the
database's collation, which the planner cannot use for a byte-order range or sort:
every page of 1,000 keys read and sorted all active rows (quadratic in the table).

Built CONCURRENTLY (no lock on writes while it builds), so outside a transaction; IF
NOT EXISTS, so a build interrupted and retried by hand is harmless. SQLite has no "C"
collation and sorts text in byte order (BINARY) already: nothing to do there. Not in
the model's Meta, as Django cannot express a PostgreSQL-only collation."""

from django.db import migrations
from django.db.migrations.operations.base import Operation

_CREATE = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS artefact_active_key_bytes
    ON recordings_artefact ((storage_key COLLATE "C"))
    WHERE state = 'active' AND storage_key <> ''
"""
_DROP = "DROP INDEX CONCURRENTLY IF EXISTS artefact_active_key_bytes"


def _on_postgresql(sql: str):  # noqa: ANN202
    def run(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("recordings", "0007_artefact_due_claim_order")]

    operations: list[Operation] = [
        migrations.RunPython(_on_postgresql(_CREATE), _on_postgresql(_DROP)),
    ]
