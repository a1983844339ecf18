"""The purge reasons: named once, with the values tombstones, ledger entries and webhook
events already carry."""

import pytest

from compliance.retention.reasons import EXPIRY_REASONS, PurgeReason, expiry_reason


def test_purge_reasons_keep_the_values_already_written_to_tombstones_and_the_ledger():
    assert {r.value for r in PurgeReason} == {
        "retention_policy",
        "user_choice",
        "dont_save",
        "deletion_request",
        "file_missing",
    }


@pytest.mark.parametrize(
    ("basis", "reason"),
    [
        ("policy:12", "retention_policy"),
        ("", "retention_policy"),
        ("choice:dont_save", "dont_save"),
        ("choice:3_months", "user_choice"),
    ],
)
def test_an_expiry_basis_gives_the_reason_its_artefact_is_purged_for(basis, reason):
    assert expiry_reason(basis) == reason


def test_only_purges_that_follow_an_expiry_count_towards_the_purge_lag():
    assert PurgeReason.DELETION_REQUEST not in EXPIRY_REASONS
    assert PurgeReason.FILE_MISSING not in EXPIRY_REASONS
    assert set(EXPIRY_REASONS) == {"retention_policy", "user_choice", "dont_save"}
