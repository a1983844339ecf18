import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from compliance.core.sql import bound_cursor, pg_array
from compliance.recordings.models import Recording
from tests.factories import RecordingFactory

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="server-side binding is PostgreSQL's"
)


def test_an_array_literal_lists_the_values_in_order():
    assert pg_array([3, 1, 2]) == "{3,1,2}"
    assert pg_array([]) == "{}"


def test_any_of_selects_exactly_the_listed_rows():
    recordings = RecordingFactory.create_batch(4)
    wanted = [recordings[0].pk, recordings[2].pk]
    assert set(Recording.objects.filter(pk__any_of=wanted).values_list("pk", flat=True)) == set(
        wanted
    )


def test_an_empty_list_selects_nothing():
    RecordingFactory()
    assert not Recording.objects.filter(pk__any_of=[]).exists()


def test_any_of_works_in_updates_beside_other_conditions_and_on_foreign_keys():
    first, second = RecordingFactory.create_batch(2)
    updated = Recording.objects.filter(pk__any_of=[first.pk, second.pk], sensitive=False).update(
        sensitive=True
    )
    assert updated == 2
    assert Recording.objects.filter(sensitive=True).count() == 2
    assert set(
        Recording.objects.filter(profile_id__any_of=[first.profile_id]).values_list("pk", flat=True)
    ) == {first.pk}


def test_any_of_sends_the_ids_as_one_array_on_postgresql():
    from django.db import connection

    sql, params = Recording.objects.filter(pk__any_of=[3, 1, 2]).query.sql_with_params()
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and params == ("{3,1,2}",)
    else:
        assert params == (3, 1, 2)


@postgresql_only
def test_a_bound_cursor_logs_each_statement_with_its_values_prepared_or_not():
    with CaptureQueriesContext(connection) as queries:
        for n in range(3):  # prepared from the second on
            with bound_cursor() as cursor:
                cursor.execute("SELECT %s::int, %s::text", [n, "it's"])
                assert cursor.fetchone() == (n, "it's")

    assert [q["sql"] for q in queries.captured_queries] == [
        f"SELECT {n}::int, 'it''s'::text" for n in range(3)
    ]


@postgresql_only
def test_a_bound_cursor_prepares_a_statement_once_per_connection():
    sql = "SELECT id FROM recordings_recording WHERE external_id = %s"
    for n in range(3):
        with bound_cursor() as cursor:
            cursor.execute(sql, [f"r-{n}"])

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s",
            [sql.replace("%s", "$1")],
        )
        assert cursor.fetchone() == (1,)


@postgresql_only
def test_a_bound_cursor_raises_djangos_errors_and_stays_usable():
    RecordingFactory(external_id="taken")
    sql = (
        "INSERT INTO recordings_recording (external_id, profile_id, recorded_at, sensitive,"
        " false_wake, state, created_at, purge_reason, purge_policy)"
        " SELECT %s, profile_id, recorded_at, false, false, 'active', now(), '', ''"
        " FROM recordings_recording WHERE external_id = 'taken'"
    )
    with pytest.raises(IntegrityError), transaction.atomic(), bound_cursor() as cursor:
        cursor.execute(sql, ["taken"])

    with bound_cursor() as cursor:
        cursor.execute(sql, ["free"])
    assert Recording.objects.filter(external_id="free").exists()
