"""The recording carries the facts the eligibility rule needs of its profile and account:
the profile's `is_child` and the account's `jurisdiction`, neither of which ever
changes once created (accounts.services, actions.profiles). A decision then reads the
recording, its consent state and its artefacts, not the profile's and the account's
rows as well: a fifth less CPU a decision, and a draw's probes stop at the recording's
row when its jurisdiction or a child's profile rules it out (docs/capacity.md, "Fewer
lookups per decision").

The copies are the database's to keep: a trigger sets them from the profile on every
insert and on every change of `profile_id` (SET_NULL when a profile is deleted: false
and empty), whatever the application sends, so no path that writes a recording (the
ingest, a test's factory, a bench's SQL) can leave them wrong; and should a profile's
`is_child` or account, or an account's `jurisdiction`, ever change (nothing in the
application changes them; a shell or a later feature might), triggers on those tables
carry the change to the profile's recordings in the same statement (locks in the
project's order: the account or profile, then its recordings). On PostgreSQL a BEFORE
row trigger on recordings and AFTER row triggers on profiles and accounts; on SQLite,
which cannot assign to NEW, AFTER triggers that update the rows.

The backfill is one UPDATE of every recording: on a large deployment, run it in id
ranges before this migration (the same statement with `AND r.id BETWEEN ...`), so that
the migration's own UPDATE finds nothing left to change."""

from django.db import migrations, models
from django.db.migrations.operations.base import Operation

_PG_BACKFILL = """
UPDATE recordings_recording r SET is_child = p.is_child, jurisdiction = a.jurisdiction
    FROM accounts_profile p JOIN accounts_account a ON a.id = p.account_id
    WHERE p.id = r.profile_id
        AND (r.is_child IS DISTINCT FROM p.is_child OR r.jurisdiction <> a.jurisdiction)
"""
_PG_CREATE = """
CREATE OR REPLACE FUNCTION recording_profile_facts() RETURNS trigger AS $$
BEGIN
    IF NEW.profile_id IS NULL THEN
        NEW.is_child := false;
        NEW.jurisdiction := '';
    ELSE
        SELECT p.is_child, a.jurisdiction INTO STRICT NEW.is_child, NEW.jurisdiction
            FROM accounts_profile p JOIN accounts_account a ON a.id = p.account_id
            WHERE p.id = NEW.profile_id;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER recording_profile_facts
    BEFORE INSERT OR UPDATE OF profile_id ON recordings_recording
    FOR EACH ROW EXECUTE FUNCTION recording_profile_facts();

CREATE OR REPLACE FUNCTION profile_facts_to_recordings() RETURNS trigger AS $$
BEGIN
    UPDATE recordings_recording r SET is_child = NEW.is_child, jurisdiction = a.jurisdiction
        FROM accounts_account a WHERE a.id = NEW.account_id AND r.profile_id = NEW.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER profile_facts_to_recordings
    AFTER UPDATE OF is_child, account_id ON accounts_profile
    FOR EACH ROW WHEN (
        OLD.is_child IS DISTINCT FROM NEW.is_child
        OR OLD.account_id IS DISTINCT FROM NEW.account_id
    )
    EXECUTE FUNCTION profile_facts_to_recordings();

CREATE OR REPLACE FUNCTION account_facts_to_recordings() RETURNS trigger AS $$
BEGIN
    UPDATE recordings_recording r SET jurisdiction = NEW.jurisdiction
        FROM accounts_profile p WHERE p.account_id = NEW.id AND r.profile_id = p.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER account_facts_to_recordings
    AFTER UPDATE OF jurisdiction ON accounts_account
    FOR EACH ROW WHEN (OLD.jurisdiction IS DISTINCT FROM NEW.jurisdiction)
    EXECUTE FUNCTION account_facts_to_recordings();
"""
_PG_DROP = """
DROP TRIGGER IF EXISTS account_facts_to_recordings ON accounts_account;
DROP FUNCTION IF EXISTS account_facts_to_recordings();
DROP TRIGGER IF EXISTS profile_facts_to_recordings ON accounts_profile;
DROP FUNCTION IF EXISTS profile_facts_to_recordings();
DROP TRIGGER IF EXISTS recording_profile_facts ON recordings_recording;
DROP FUNCTION IF EXISTS recording_profile_facts();
"""

_SQLITE_SET = """
    UPDATE recordings_recording SET
        is_child = coalesce(
            (SELECT p.is_child FROM accounts_profile p WHERE p.id = NEW.profile_id), 0),
        jurisdiction = coalesce(
            (SELECT a.jurisdiction FROM accounts_profile p
                JOIN accounts_account a ON a.id = p.account_id
                WHERE p.id = NEW.profile_id), '')
        WHERE id = NEW.id;
"""
_SQLITE_BACKFILL = """
UPDATE recordings_recording SET
    is_child = coalesce(
        (SELECT p.is_child FROM accounts_profile p
            WHERE p.id = recordings_recording.profile_id), 0),
    jurisdiction = coalesce(
        (SELECT a.jurisdiction FROM accounts_profile p
            JOIN accounts_account a ON a.id = p.account_id
            WHERE p.id = recordings_recording.profile_id), '')
"""
_SQLITE_CREATE = [
    "CREATE TRIGGER recording_profile_facts_insert AFTER INSERT ON recordings_recording"
    f" BEGIN {_SQLITE_SET} END",
    "CREATE TRIGGER recording_profile_facts_update AFTER UPDATE OF profile_id"
    f" ON recordings_recording BEGIN {_SQLITE_SET} END",
]
_SQLITE_CREATE += [
    "CREATE TRIGGER profile_facts_to_recordings AFTER UPDATE OF is_child, account_id"
    " ON accounts_profile"
    " WHEN OLD.is_child IS NOT NEW.is_child OR OLD.account_id IS NOT NEW.account_id"
    " BEGIN UPDATE recordings_recording SET is_child = NEW.is_child, jurisdiction = coalesce("
    "(SELECT a.jurisdiction FROM accounts_account a WHERE a.id = NEW.account_id), '')"
    " WHERE profile_id = NEW.id; END",
    "CREATE TRIGGER account_facts_to_recordings AFTER UPDATE OF jurisdiction"
    " ON accounts_account WHEN OLD.jurisdiction IS NOT NEW.jurisdiction"
    " BEGIN UPDATE recordings_recording SET jurisdiction = NEW.jurisdiction"
    " WHERE profile_id IN (SELECT id FROM accounts_profile WHERE account_id = NEW.id); END",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS recording_profile_facts_insert",
    "DROP TRIGGER IF EXISTS recording_profile_facts_update",
    "DROP TRIGGER IF EXISTS profile_facts_to_recordings",
    "DROP TRIGGER IF EXISTS account_facts_to_recordings",
]


def _copies_kept(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_PG_BACKFILL, params=None)
        schema_editor.execute(_PG_CREATE, params=None)
    else:
        schema_editor.execute(_SQLITE_BACKFILL, params=None)
        for sql in _SQLITE_CREATE:
            schema_editor.execute(sql, params=None)


def _copies_left(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_PG_DROP, params=None)
    else:
        for sql in _SQLITE_DROP:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_profile_display_name"),
        ("recordings", "0008_artefact_active_key_bytes"),
    ]

    operations: list[Operation] = [
        migrations.AddField(
            model_name="recording",
            name="is_child",
            field=models.BooleanField(default=False, db_default=False, editable=False),
        ),
        migrations.AddField(
            model_name="recording",
            name="jurisdiction",
            field=models.CharField(
                blank=True, default="", db_default="", editable=False, max_length=2
            ),
        ),
        migrations.RunPython(_copies_kept, _copies_left),
        migrations.RemoveIndex(
            model_name="recording",
            name="recording_external_id_cover",
        ),
        migrations.AddIndex(
            model_name="recording",
            index=models.Index(
                fields=["external_id"],
                include=(
                    "id",
                    "profile",
                    "state",
                    "sensitive",
                    "false_wake",
                    "is_child",
                    "jurisdiction",
                ),
                name="recording_external_id_cover",
            ),
        ),
    ]
