from datetime import UTC, datetime, timedelta

import pytest

from compliance.retention.models import RetentionPolicy
from compliance.retention.selectors import PolicyTable, effective_expiry
from tests.conftest import postgres_only

RECORDED = datetime(2026, 1, 1, tzinfo=UTC)
CREATED = RECORDED + timedelta(minutes=1)


def policy(
    jurisdiction: str, days: int, applies_to: str = "all", category: str = "audio", pk: int = 0
):
    return RetentionPolicy(
        pk=pk or days,
        jurisdiction=jurisdiction,
        category=category,
        applies_to=applies_to,
        retention_days=days,
        version=1,
        effective_from=RECORDED,
    )


TABLE = PolicyTable(
    (
        policy("*", 1000),
        policy("EU", 500),
        policy("DE", 200),
        policy("*", 30, applies_to="children"),
        policy("EU", 20, applies_to="adults", category="transcript"),
    )
)


@pytest.mark.parametrize(
    ("country", "is_child", "category", "days"),
    [
        ("DE", False, "audio", 200),  # the country itself beats its group and *
        ("FR", False, "audio", 500),  # a group beats *
        ("US", False, "audio", 1000),
        ("US", True, "audio", 30),  # children over all, at the same jurisdiction rank
        ("DE", True, "audio", 200),  # the jurisdiction ranks first
        ("FR", False, "transcript", 20),
        ("FR", True, "transcript", None),  # an adults' policy says nothing of children
        ("US", False, "annotation", None),
    ],
)
def test_the_most_specific_policy_wins(country, is_child, category, days):
    chosen = TABLE.resolve(country=country, category=category, is_child=is_child)
    assert (chosen.retention_days if chosen else None) == days


@pytest.mark.parametrize(
    ("choice", "policy_days", "expected", "basis"),
    [
        (None, 200, RECORDED + timedelta(days=200), "policy"),
        ("3_months", 200, RECORDED + timedelta(days=90), "choice"),  # the user's is shorter
        ("18_months", 200, RECORDED + timedelta(days=200), "policy"),  # the policy's is shorter
        ("until_deleted", 200, RECORDED + timedelta(days=200), "policy"),
        ("dont_save", 200, CREATED, "choice"),
        ("until_deleted", None, None, ""),
        (None, None, None, ""),
        ("3_months", None, RECORDED + timedelta(days=90), "choice"),
    ],
)
def test_effective_retention_is_the_shorter_of_policy_and_choice(
    choice, policy_days, expected, basis
):
    table = PolicyTable((policy("DE", policy_days),) if policy_days else ())
    expiry = effective_expiry(
        table=table,
        category="audio",
        country="DE",
        is_child=False,
        choice=choice,
        recorded_at=RECORDED,
        created_at=CREATED,
    )
    assert expiry.expires_at == expected
    assert expiry.basis.split(":")[0] == basis


@postgres_only()
@pytest.mark.django_db
def test_reading_the_policies_for_new_artefacts_takes_their_lock_and_is_one_row():
    """The stamp's function (migration 0002), which a write that creates artefacts reads
    the policies through, holds the policies' lock shared for the rest of the
    transaction, and is planned as the one row it returns: with PostgreSQL's
    default guess (1,000 rows) the ingest's profile look-up, which reads the stamp in
    the same statement, became a nested loop over every profile."""
    from django.db import connection, transaction

    from compliance.retention.selectors import POLICY_LOCK_KEY, policy_stamp

    with connection.cursor() as cursor:
        cursor.execute("SELECT prorows FROM pg_proc WHERE proname = 'retention_policy_stamp'")
        assert cursor.fetchone()[0] == 1
        held = (
            "SELECT mode FROM pg_locks WHERE locktype = 'advisory'"
            " AND pid = pg_backend_pid() AND objid = %s"
        )
        with transaction.atomic():
            policy_stamp()  # a reader that creates nothing takes no lock
            cursor.execute(held, [POLICY_LOCK_KEY & 0xFFFFFFFF])
            assert cursor.fetchall() == []
            policy_stamp(for_new_artefacts=True)
            cursor.execute(held, [POLICY_LOCK_KEY & 0xFFFFFFFF])
            assert [mode for (mode,) in cursor.fetchall()] == ["ShareLock"]
