import pytest
from django.core.exceptions import ImproperlyConfigured

from compliance.retention import hooks
from compliance.sampling.services import review_items_revoke_for_recordings


def test_the_sampling_app_registers_its_revocation_for_tombstoned_recordings():
    assert hooks._revokers == [review_items_revoke_for_recordings]


def test_tombstoning_with_no_revocation_registered_raises_instead_of_leaving_items_open(
    monkeypatch,
):
    monkeypatch.setattr(hooks, "_revokers", [])

    with pytest.raises(ImproperlyConfigured):
        hooks.recordings_tombstoned(recording_ids=[1], reason="purged")


def test_every_registered_revocation_is_told_and_the_counts_add_up(monkeypatch):
    told: list[tuple[list[int], str]] = []

    def revoke(*, recording_ids: list[int], reason: str) -> int:
        told.append((recording_ids, reason))
        return len(recording_ids)

    monkeypatch.setattr(hooks, "_revokers", [])
    hooks.on_recordings_tombstoned(revoke)
    hooks.on_recordings_tombstoned(revoke)

    assert hooks.recordings_tombstoned(recording_ids=[1, 2], reason="purged") == 2
    assert hooks.recordings_tombstoned(recording_ids=[], reason="purged") == 0
    assert told == [([1, 2], "purged")]


@pytest.mark.django_db
def test_a_caller_with_its_own_revocation_is_not_revoked_through_the_hook(ingest, monkeypatch):
    """A ledger recovery revokes without a new ledger entry (the re-imported one records
    it): its revocation replaces the hook's, which would append one."""
    from django.utils import timezone

    from compliance.retention.tombstones import recordings_tombstone
    from tests.factories import ProfileFactory

    recording = ingest(ProfileFactory(), days_ago=1)
    monkeypatch.setattr(hooks, "_revokers", [lambda **kw: pytest.fail("the hook was told")])
    told: list[list[int]] = []

    recordings_tombstone(
        [recording.pk],
        now=timezone.now(),
        reason="deletion_request",
        basis="",
        actor="test",
        revoke=told.append,
    )

    recording.refresh_from_db()
    assert recording.state == "purged"
    assert told == [[recording.pk]]
