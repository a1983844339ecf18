"""The consent change as an action: consent's rows, the revocation and the ledger entry
in one transaction, in the lock order."""

import pytest

from compliance.actions import consent as action
from compliance.actions.consent import consent_set
from compliance.consent.models import ConsentEvent, ConsentState, Purpose
from compliance.consent.services import consent_record
from compliance.ledger.models import LedgerEntry
from compliance.sampling.models import ReviewItem, ReviewItemState
from compliance.sampling.services import SampleRequest, sample_draw
from tests.sampling.conftest import HUMAN, reviewable

pytestmark = pytest.mark.django_db


def _withdraw(profile, purpose=HUMAN):
    return consent_set(
        profile=profile,
        purpose=purpose,
        granted=False,
        channel="app",
        notice_version="v2",
        actor="user:1",
    )


def _drawn_item(recording) -> ReviewItem:
    sample_draw(
        request=SampleRequest(purpose=HUMAN, size=1, reviewer_location="DE"), actor="client:t"
    )
    return ReviewItem.objects.get(recording=recording)


def test_a_withdrawal_revokes_the_open_items_and_then_writes_its_ledger_entry():
    recording = reviewable()
    item = _drawn_item(recording)
    before = LedgerEntry.objects.order_by("seq").last()

    _withdraw(recording.profile)

    item.refresh_from_db()
    assert item.state == ReviewItemState.REVOKED
    kinds = list(
        LedgerEntry.objects.filter(seq__gt=before.seq)
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    # the revocation's entry first, the change's last: the ledger is appended last
    assert kinds == ["review_items.revoked", "consent.withdrawn"]


def test_when_the_revocation_fails_the_withdrawal_is_not_written(monkeypatch):
    recording = reviewable()
    item = _drawn_item(recording)
    events, entries = ConsentEvent.objects.count(), LedgerEntry.objects.count()

    def broken(**kwargs):
        raise RuntimeError("revocation failed")

    monkeypatch.setattr(action, "review_items_revoke_for_profile", broken)
    with pytest.raises(RuntimeError):
        _withdraw(recording.profile)

    state = ConsentState.objects.get(profile=recording.profile, purpose=HUMAN)
    assert state.granted is True
    assert ConsentEvent.objects.count() == events
    assert LedgerEntry.objects.count() == entries
    item.refresh_from_db()
    assert item.state == ReviewItemState.PENDING


def test_a_grant_revokes_nothing():
    recording = reviewable(granted={HUMAN: True, Purpose.MODEL_TRAINING: None})
    item = _drawn_item(recording)

    consent_set(
        profile=recording.profile,
        purpose=Purpose.MODEL_TRAINING,
        granted=True,
        channel="app",
        notice_version="v2",
        actor="user:1",
    )

    item.refresh_from_db()
    assert item.state == ReviewItemState.PENDING


@pytest.mark.django_db(transaction=True)
def test_consents_own_part_refuses_to_run_outside_a_transaction():
    recording = reviewable()

    with pytest.raises(RuntimeError, match="inside the transaction"):
        consent_record(
            profile=recording.profile,
            purpose=HUMAN,
            granted=False,
            channel="app",
            notice_version="v2",
            actor="user:1",
        )

    assert not ConsentEvent.objects.exists()
