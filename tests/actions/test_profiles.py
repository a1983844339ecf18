"""Profile creation and the retention choice as actions: each app's part and the ledger
entry in one transaction."""

import pytest

from compliance.accounts.models import Profile
from compliance.accounts.services import profile_insert, profile_retention_choice_set
from compliance.actions import profiles as action
from compliance.actions.profiles import profile_create, profile_retention_set
from compliance.consent.models import ConsentState, Purpose
from compliance.ledger.models import LedgerEntry
from tests.factories import AccountFactory, ArtefactFactory, ProfileFactory, RecordingFactory

pytestmark = pytest.mark.django_db


def test_a_new_profile_has_a_consent_state_per_purpose_and_its_ledger_entry():
    AccountFactory(external_id="a-1")

    profile = profile_create(
        external_id="p-1", account_external_id="a-1", is_child=False, actor="client:t"
    )

    assert sorted(
        ConsentState.objects.filter(profile=profile).values_list("purpose", flat=True)
    ) == sorted(Purpose.values)
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.subject) == ("profile.created", "profile:p-1")
    assert entry.payload == {"account": "a-1", "is_child": False}


def test_when_the_consent_states_fail_no_profile_is_created(monkeypatch):
    AccountFactory(external_id="a-1")
    entries = LedgerEntry.objects.count()

    def broken(**kwargs):
        raise RuntimeError("consent unavailable")

    monkeypatch.setattr(action, "consent_states_initialise", broken)
    with pytest.raises(RuntimeError):
        profile_create(external_id="p-1", account_external_id="a-1", is_child=False, actor="t")

    assert not Profile.objects.filter(external_id="p-1").exists()
    assert LedgerEntry.objects.count() == entries


def test_a_new_retention_choice_reschedules_the_profiles_artefacts_in_its_transaction():
    profile = ProfileFactory()
    artefact = ArtefactFactory(recording=RecordingFactory(profile=profile), category="transcript")

    profile_retention_set(profile=profile, choice="dont_save", actor="user:1")

    artefact.refresh_from_db()
    assert artefact.expiry_basis == "choice:dont_save"
    entry = LedgerEntry.objects.latest("seq")
    assert entry.kind == "retention_choice.changed"
    assert entry.payload == {"from": None, "to": "dont_save"}


def test_when_the_reschedule_fails_the_choice_is_not_changed(monkeypatch):
    profile = ProfileFactory()

    def broken(**kwargs):
        raise RuntimeError("reschedule failed")

    monkeypatch.setattr(action, "profile_reschedule", broken)
    with pytest.raises(RuntimeError):
        profile_retention_set(profile=profile, choice="dont_save", actor="user:1")

    profile.refresh_from_db()
    assert profile.retention_choice is None


@pytest.mark.django_db(transaction=True)
def test_the_accounts_parts_refuse_to_run_outside_a_transaction():
    account = AccountFactory(external_id="a-1")
    profile = ProfileFactory(account=account)

    with pytest.raises(RuntimeError, match="inside the transaction"):
        profile_insert(external_id="p-2", account_external_id="a-1", is_child=False)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        profile_retention_choice_set(profile=profile, choice="dont_save")

    assert not Profile.objects.filter(external_id="p-2").exists()
    profile.refresh_from_db()
    assert profile.retention_choice is None
