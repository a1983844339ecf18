import pytest

from compliance.accounts.models import Account, Profile
from compliance.accounts.services import account_create
from compliance.actions.profiles import profile_create, profile_retention_set
from compliance.consent.models import ConsentState, Purpose
from compliance.core.errors import ApplicationError, Conflict
from compliance.ledger.models import LedgerEntry
from tests.factories import AccountFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def test_an_account_is_created_with_a_ledger_entry():
    account = account_create(external_id="  a-1 ", jurisdiction="DE", actor="client:p")

    assert Account.objects.get().external_id == "a-1" == account.external_id
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.subject, entry.actor) == (
        "account.created",
        "account:a-1",
        "client:p",
    )
    assert entry.payload == {"jurisdiction": "DE"}


@pytest.mark.parametrize("jurisdiction", ["XX", "de", "EU", "", "D"])
def test_an_account_needs_a_country_code(jurisdiction):
    with pytest.raises(ApplicationError) as refused:
        account_create(external_id="a-1", jurisdiction=jurisdiction, actor="a")

    assert refused.value.code == "unknown_jurisdiction"
    assert not Account.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("external_id", ["", "   ", "x" * 129])
def test_an_account_needs_a_usable_external_id(external_id):
    with pytest.raises(ApplicationError) as refused:
        account_create(external_id=external_id, jurisdiction="DE", actor="a")

    assert refused.value.code == "validation_error"
    assert "external_id" in refused.value.fields
    assert not Account.objects.exists()


def test_a_duplicate_account_is_a_conflict():
    AccountFactory(external_id="a-1")
    entries = LedgerEntry.objects.count()

    with pytest.raises(Conflict):
        account_create(external_id="a-1", jurisdiction="DE", actor="a")

    assert LedgerEntry.objects.count() == entries


def test_a_profile_starts_with_one_undecided_consent_state_per_purpose():
    AccountFactory(external_id="a-1")

    profile = profile_create(
        external_id="p-1", account_external_id="a-1", is_child=True, actor="client:p"
    )

    states = ConsentState.objects.filter(profile=profile)
    assert sorted(s.purpose for s in states) == sorted(Purpose.values)
    assert {s.granted for s in states} == {None}
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.subject) == ("profile.created", "profile:p-1")
    assert entry.payload == {"account": "a-1", "is_child": True}


def test_a_profile_for_an_unknown_account_is_refused():
    with pytest.raises(ApplicationError) as refused:
        profile_create(external_id="p-1", account_external_id="nope", is_child=False, actor="a")

    assert refused.value.code == "unknown_account"
    assert not Profile.objects.exists()


def test_a_duplicate_profile_is_a_conflict_and_leaves_no_states():
    ProfileFactory(external_id="p-1")
    other = AccountFactory()
    entries = LedgerEntry.objects.count()

    with pytest.raises(Conflict):
        profile_create(
            external_id="p-1", account_external_id=other.external_id, is_child=False, actor="a"
        )

    assert Profile.objects.get(external_id="p-1").account != other
    assert ConsentState.objects.count() == len(Purpose.values)
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize("choice", ["3_months", "18_months", "until_deleted", "dont_save"])
def test_a_retention_choice_is_stored_with_a_ledger_entry(choice):
    profile = ProfileFactory(retention_choice="18_months" if choice != "18_months" else None)
    before = profile.retention_choice

    updated = profile_retention_set(profile=profile, choice=choice, actor="user:7")

    assert updated.retention_choice == choice
    assert Profile.objects.get(pk=profile.pk).retention_choice == choice
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.actor) == ("retention_choice.changed", "user:7")
    assert entry.payload == {"from": before, "to": choice}


def test_choosing_the_same_retention_again_writes_nothing():
    profile = ProfileFactory(retention_choice="3_months")
    entries = LedgerEntry.objects.count()

    profile_retention_set(profile=profile, choice="3_months", actor="user:7")

    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize("choice", ["1_year", "", None, "3_MONTHS"])
def test_an_unknown_retention_choice_is_refused(choice):
    profile = ProfileFactory(retention_choice="3_months")

    with pytest.raises(ApplicationError) as refused:
        profile_retention_set(profile=profile, choice=choice, actor="a")

    assert refused.value.code == "validation_error"
    assert Profile.objects.get(pk=profile.pk).retention_choice == "3_months"


def test_a_profile_gets_a_display_name_with_its_spaces_tidied_and_no_ledger_entry():
    from compliance.accounts.services import profile_rename

    profile = ProfileFactory()
    entries = LedgerEntry.objects.count()

    profile_rename(profile=profile, display_name="  Kitchen \n  speaker ")

    profile.refresh_from_db()
    assert profile.display_name == "Kitchen speaker"
    assert profile.name == "Kitchen speaker"
    assert LedgerEntry.objects.count() == entries  # a typed name never enters the ledger
    profile_rename(profile=profile, display_name="")
    profile.refresh_from_db()
    assert profile.name == profile.external_id


@pytest.mark.parametrize(
    "name",
    [
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 Family",  # joined by U+200D
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with U+200C
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f speaker",
        "\u2764\ufe0f kitchen",
    ],
    ids=["emoji-zwj", "persian-zwnj", "flag-tags", "variation-selector"],
)
def test_joiners_and_tags_that_belong_in_a_name_are_kept(name):
    from compliance.accounts.services import profile_rename

    profile = ProfileFactory()

    profile_rename(profile=profile, display_name=name)

    profile.refresh_from_db()
    assert profile.display_name == name


@pytest.mark.parametrize(
    "name",
    [
        "x" * 61,
        "bell\x07",
        None,
        "right\u202eto left",
        "isolate\u2066",
        "soft\u00adhyphen",
        "\u200d\u200c",  # joiners and nothing to see
        "hidden\U000e0041\U000e0042",  # tags outside a flag
    ],
)
def test_a_display_name_that_is_too_long_or_not_printable_is_refused(name):
    from compliance.accounts.services import profile_rename

    profile = ProfileFactory(display_name="Old")

    with pytest.raises(ApplicationError) as refused:
        profile_rename(profile=profile, display_name=name)

    assert [problem.code for problem in refused.value.fields["display_name"]] == ["invalid"]
    profile.refresh_from_db()
    assert profile.display_name == "Old"
