"""The consent locks: where an opt-out and a hand-off meet (docs/reliability.md,
"Opt-out against hand-off"). The races themselves are proven with real transactions in
tests/sampling/test_race.py; here, the table and what each side locks."""

import importlib

import pytest
from django.db import connection, transaction

from compliance.actions.consent import consent_set
from compliance.consent.models import CONSENT_LOCKS, ConsentLock
from compliance.consent.services import (
    consent_lock_of,
    consent_locks_take,
    consent_locks_take_free,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db


def _rows_locked(table: str) -> set[int]:
    """The rows of `table` whose header names a locker (xmax): a row lock writes it. Only
    rows written in the test itself start without one (a lock by an earlier, rolled-back
    test stays written)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE xmax::text <> '0'")  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


def _fresh_locks(*profiles) -> set[int]:
    """The profiles' lock rows, written anew (no earlier locker in their headers)."""
    rows = {consent_lock_of(p.pk) for p in profiles}
    ConsentLock.objects.filter(pk__in=rows).delete()
    ConsentLock.objects.bulk_create([ConsentLock(pk=row) for row in rows])
    assert not rows & _rows_locked(ConsentLock._meta.db_table)
    return rows


def test_the_migration_creates_every_row_the_code_locks():
    migration = importlib.import_module("compliance.consent.migrations.0003_consentlock")

    assert migration.CONSENT_LOCKS == CONSENT_LOCKS
    assert ConsentLock.objects.count() == CONSENT_LOCKS
    assert set(ConsentLock.objects.values_list("pk", flat=True)) == set(range(CONSENT_LOCKS))


def test_a_profile_meets_its_opt_outs_on_one_row_and_neighbours_on_others():
    assert consent_lock_of(7) == consent_lock_of(7 + CONSENT_LOCKS) == 7
    assert len({consent_lock_of(p) for p in range(1, 1_001)}) == 1_000


@postgres_only()
def test_a_hand_off_locks_its_profiles_consent_locks_and_no_consent_state():
    # given profiles with their consent-state rows (written in this test: no locker yet)
    first, second = ProfileFactory(), ProfileFactory()
    rows = _fresh_locks(first, second)

    with transaction.atomic():
        consent_locks_take(profile_ids=[first.pk, second.pk])

        # then the two lock rows carry the lock, and no consent state (a table that
        # grows with the profiles) was written for it
        assert rows <= _rows_locked(ConsentLock._meta.db_table)
        assert _rows_locked("consent_consentstate") == set()


@postgres_only()
def test_an_opt_out_locks_its_profiles_consent_lock():
    profile = ProfileFactory()
    rows = _fresh_locks(profile)

    with transaction.atomic():
        consent_set(
            profile=profile,
            purpose="human_review",
            granted=False,
            channel="app",
            notice_version="v1",
            actor="test",
        )
        assert rows <= _rows_locked(ConsentLock._meta.db_table)


@postgres_only()
def test_a_missing_row_is_created_by_a_side_that_may_wait():
    # given a table that lost rows (manage.py flush empties it)
    profile = ProfileFactory()
    ConsentLock.objects.filter(pk=consent_lock_of(profile.pk)).delete()

    with transaction.atomic():
        consent_locks_take(profile_ids=[profile.pk])

    assert ConsentLock.objects.filter(pk=consent_lock_of(profile.pk)).exists()


@postgres_only()
def test_a_side_that_may_not_wait_leaves_a_profile_without_its_row_out():
    # creating a row that another transaction is creating would wait for it
    kept, lost = ProfileFactory(), ProfileFactory()
    ConsentLock.objects.filter(pk=consent_lock_of(lost.pk)).delete()

    with transaction.atomic():
        free = consent_locks_take_free(profile_ids=[kept.pk, lost.pk])

    assert free == {kept.pk}
    assert not ConsentLock.objects.filter(pk=consent_lock_of(lost.pk)).exists()
