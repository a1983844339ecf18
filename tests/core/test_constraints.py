"""`CoveringUniqueConstraint`: a unique key that covers on PostgreSQL and stays a unique
key on SQLite, where Django would leave a covering one out."""

import pytest
from django.db import connection
from django.db.models import Q, UniqueConstraint
from django.db.utils import ConnectionHandler

from compliance.core.constraints import CoveringUniqueConstraint
from compliance.recordings.models import Artefact
from tests.conftest import postgres_only

KEY = {
    "fields": ["recording"],
    "condition": Q(category="audio"),
    "include": ["state", "expires_at"],
    "name": "artefact_one_audio",
}


@pytest.fixture
def sqlite(django_db_blocker):
    """A connection to an SQLite database in memory, whatever the tests run on."""
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    with django_db_blocker.unblock():
        yield handler["default"]
        handler.close_all()


def test_on_sqlite_the_key_is_made_without_its_included_columns(sqlite):
    with sqlite.schema_editor(collect_sql=True) as editor:
        covering = CoveringUniqueConstraint(**KEY).create_sql(Artefact, editor)
        plain = UniqueConstraint(**KEY).create_sql(Artefact, editor)
        removed = CoveringUniqueConstraint(**KEY).remove_sql(Artefact, editor)

    assert plain is None  # what Django does with a covering unique key there
    assert str(covering) == (
        'CREATE UNIQUE INDEX "artefact_one_audio" ON "recordings_artefact"'
        ' ("recording_id") WHERE "category" = \'audio\''
    )
    assert str(removed) == 'DROP INDEX "artefact_one_audio"'


@postgres_only()
@pytest.mark.django_db
def test_on_postgresql_the_key_covers_what_the_rule_reads():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef('artefact_one_audio'::regclass)")
        (definition,) = cursor.fetchone()

    assert definition == (
        "CREATE UNIQUE INDEX artefact_one_audio ON public.recordings_artefact"
        " USING btree (recording_id) INCLUDE (state, expires_at)"
        " WHERE ((category)::text = 'audio'::text)"
    )


def test_it_migrates_as_itself():
    path, _, kwargs = CoveringUniqueConstraint(**KEY).deconstruct()

    assert path == "compliance.core.constraints.CoveringUniqueConstraint"
    assert kwargs["include"] == ("state", "expires_at")
