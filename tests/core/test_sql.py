import pytest

from compliance.core.sql import filter_ids, ids_in, pg_array
from compliance.recordings.models import Recording
from tests.factories import RecordingFactory

pytestmark = pytest.mark.django_db


def test_an_array_literal_lists_the_values_in_order():
    assert pg_array([3, 1, 2]) == "{3,1,2}"
    assert pg_array([]) == "{}"


def test_filter_ids_selects_exactly_the_listed_rows():
    recordings = RecordingFactory.create_batch(4)
    wanted = [recordings[0].pk, recordings[2].pk]
    assert set(filter_ids(Recording.objects.all(), wanted).values_list("pk", flat=True)) == set(
        wanted
    )


def test_an_empty_list_selects_nothing():
    RecordingFactory()
    assert not filter_ids(Recording.objects.all(), []).exists()


def test_ids_in_works_in_updates_and_beside_other_conditions():
    first, second = RecordingFactory.create_batch(2)
    updated = Recording.objects.filter(
        pk__in=ids_in([first.pk, second.pk]), sensitive=False
    ).update(sensitive=True)
    assert updated == 2
    assert Recording.objects.filter(sensitive=True).count() == 2
