"""On PostgreSQL, a whole append in one round trip: `ledger_append_entry(...)` takes the
transaction-scoped advisory lock that serialises appends, reads the chain's head,
and inserts the entry after it. The caller encodes the entry's leaf around its place
in the chain (`canonical.entry_leaf_around`: the bytes before the previous hash, and
those after the sequence number); the function splices the head's hash and the next
number in and stores the leaf, its SHA-256 (the chain hash, hex) and its RFC 9162
leaf hash, exactly the bytes and hashes the append computed in Python before.

As in `ledger_append_head` (0008), each statement of a VOLATILE PL/pgSQL function
takes a new snapshot, so the head is read after the lock is granted. The lock is
taken by this statement, the append's only one: whatever the transaction waited for
before it (an ingest's unique-key conflicts), it waited for without the ledger's lock.
"""

from django.db import migrations
from django.db.migrations.operations.base import Operation

_CREATE = """
CREATE OR REPLACE FUNCTION ledger_append_entry(
    lock_key bigint,
    genesis varchar,
    entry_created_at timestamptz,
    entry_kind varchar,
    entry_subject varchar,
    entry_actor varchar,
    entry_payload jsonb,
    leaf_head bytea,
    leaf_tail bytea
)
RETURNS TABLE (entry_id bigint, entry_seq bigint, entry_prev_hash varchar) AS $$
DECLARE
    head_seq bigint;
    head_hash varchar;
    new_leaf bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT e.seq, e.hash INTO head_seq, head_hash
        FROM ledger_ledgerentry e ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := genesis;
    END IF;
    new_leaf := leaf_head
        || convert_to(head_hash || '","seq":' || (head_seq + 1)::text, 'UTF8')
        || leaf_tail;
    RETURN QUERY INSERT INTO ledger_ledgerentry AS e
        (seq, created_at, kind, subject, actor, payload, prev_hash, hash, leaf, leaf_hash)
        VALUES (
            head_seq + 1, entry_created_at, entry_kind, entry_subject, entry_actor, entry_payload,
            head_hash,
            encode(sha256(new_leaf), 'hex'), new_leaf, sha256('\\x00'::bytea || new_leaf)
        )
        RETURNING e.id, e.seq, e.prev_hash;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""
_DROP = (
    "DROP FUNCTION IF EXISTS ledger_append_entry("
    "bigint, varchar, timestamptz, varchar, varchar, varchar, jsonb, bytea, bytea);"
)


def _on_postgresql(sql: str):  # noqa: ANN202
    def run(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("ledger", "0008_append_head_function")]

    operations: list[Operation] = [
        migrations.RunPython(_on_postgresql(_CREATE), _on_postgresql(_DROP)),
    ]
