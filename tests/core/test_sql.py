import pytest

from compliance.core.sql import pg_array
from compliance.recordings.models import Recording
from tests.factories import RecordingFactory

pytestmark = pytest.mark.django_db


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
