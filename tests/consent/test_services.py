import pytest

from compliance.actions import consent as consent_action
from compliance.actions.consent import consent_set
from compliance.consent.models import ConsentDefault, ConsentEvent, ConsentState, Purpose
from compliance.consent.selectors import consent_current, consent_current_for
from compliance.consent.services import consent_default_create, consent_default_delete
from compliance.core.errors import ApplicationError, Conflict
from compliance.ledger.models import LedgerEntry
from tests.factories import ConsentDefaultFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def _set(profile, purpose="human_review", granted=True, notice_version="v1", channel="api"):
    return consent_set(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel=channel,
        notice_version=notice_version,
        actor="client:test",
    )


def _state(profile, purpose="human_review") -> bool | None:
    return ConsentState.objects.get(profile=profile, purpose=purpose).granted


def test_a_grant_writes_the_event_the_state_and_one_ledger_entry():
    profile = ProfileFactory()
    entries = LedgerEntry.objects.count()

    state = _set(profile, granted=True, notice_version="v3", channel="app")

    event = ConsentEvent.objects.get(profile=profile)
    assert (event.purpose, event.granted, event.channel, event.notice_version, event.actor) == (
        "human_review",
        True,
        "app",
        "v3",
        "client:test",
    )
    assert state.granted is True
    assert state.last_event == event
    assert _state(profile) is True
    assert LedgerEntry.objects.count() == entries + 1
    entry = LedgerEntry.objects.latest("seq")
    assert entry.kind == "consent.granted"
    assert entry.subject == f"profile:{profile.external_id}"
    assert entry.actor == "client:test"
    assert entry.payload == {
        "purpose": "human_review",
        "channel": "app",
        "notice_version": "v3",
        "event": event.pk,
    }


def test_a_withdrawal_after_a_grant_is_recorded_as_a_withdrawal():
    profile = ProfileFactory()
    _set(profile, granted=True)

    _set(profile, granted=False)

    assert _state(profile) is False
    assert ConsentEvent.objects.filter(profile=profile).count() == 2
    assert LedgerEntry.objects.latest("seq").kind == "consent.withdrawn"


def test_an_explicit_refusal_without_any_earlier_event_is_recorded():
    profile = ProfileFactory()

    _set(profile, granted=False)

    assert _state(profile) is False
    assert ConsentEvent.objects.filter(profile=profile, granted=False).count() == 1


def test_a_repeated_identical_change_writes_nothing():
    profile = ProfileFactory()
    _set(profile, granted=True, notice_version="v1")
    entries = LedgerEntry.objects.count()

    _set(profile, granted=True, notice_version="v1")

    assert ConsentEvent.objects.filter(profile=profile).count() == 1
    assert LedgerEntry.objects.count() == entries


def test_the_same_answer_to_a_new_notice_is_a_new_event():
    profile = ProfileFactory()
    _set(profile, granted=True, notice_version="v1")

    _set(profile, granted=True, notice_version="v2")

    assert list(
        ConsentEvent.objects.filter(profile=profile)
        .order_by("id")
        .values_list("notice_version", flat=True)
    ) == ["v1", "v2"]


def test_purposes_are_independent():
    profile = ProfileFactory()

    _set(profile, purpose="model_training", granted=True)

    assert _state(profile, "model_training") is True
    assert _state(profile, "human_review") is None


def test_a_childs_profile_is_never_granted_human_review_and_nothing_is_written():
    child = ProfileFactory(is_child=True)
    entries = LedgerEntry.objects.count()

    with pytest.raises(ApplicationError) as refused:
        _set(child, purpose="human_review", granted=True)

    assert refused.value.code == "child_profile"
    assert 400 <= refused.value.status_code < 500
    assert not ConsentEvent.objects.filter(profile=child).exists()
    assert _state(child) is None
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("purpose", "granted"),
    [("model_training", True), ("model_training", False), ("human_review", False)],
)
def test_a_childs_profile_may_be_given_every_other_answer(purpose, granted):
    child = ProfileFactory(is_child=True)

    _set(child, purpose=purpose, granted=granted)

    assert _state(child, purpose) is granted


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"purpose": "marketing"}, "unknown_purpose", "purpose"),
        ({"purpose": None}, "unknown_purpose", "purpose"),
        ({"channel": "email"}, "validation_error", "channel"),
        ({"channel": ""}, "validation_error", "channel"),
    ],
)
def test_an_unknown_purpose_or_channel_is_refused_and_nothing_is_written(change, code, field):
    profile = ProfileFactory()
    entries = LedgerEntry.objects.count()

    with pytest.raises(ApplicationError) as refused:
        _set(profile, **change)

    assert refused.value.code == code
    assert field in refused.value.fields
    assert not ConsentEvent.objects.exists()
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize("before", [None, True, False])
def test_if_the_ledger_append_fails_no_event_and_no_state_change_remain(monkeypatch, before):
    profile = ProfileFactory()
    if before is not None:
        _set(profile, granted=before)
    events = ConsentEvent.objects.count()
    entries = LedgerEntry.objects.count()

    def broken_ledger(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(consent_action, "ledger_append", broken_ledger)
    with pytest.raises(RuntimeError):
        _set(profile, granted=not before, notice_version="v9")

    assert _state(profile) is before
    assert ConsentEvent.objects.count() == events
    assert LedgerEntry.objects.count() == entries


def test_a_change_creates_the_state_row_when_the_profile_has_none():
    profile = ProfileFactory()
    ConsentState.objects.filter(profile=profile).delete()

    _set(profile, purpose="model_training", granted=True)

    assert _state(profile, "model_training") is True


@pytest.mark.parametrize(
    ("default", "event", "granted", "source"),
    [
        (None, None, False, "none"),
        (True, None, True, "default"),
        (False, None, False, "default"),
        (True, False, False, "explicit"),
        (False, True, True, "explicit"),
        (None, True, True, "explicit"),
    ],
)
def test_the_current_state_is_the_event_else_the_jurisdictions_default_else_not_granted(
    default, event, granted, source
):
    profile = ProfileFactory(account__jurisdiction="US")
    if default is not None:
        ConsentDefaultFactory(jurisdiction="US", purpose="human_review", granted=default)
    ConsentDefaultFactory(jurisdiction="FR", purpose="human_review", granted=not granted)
    if event is not None:
        _set(profile, granted=event)

    current = consent_current_for(profile=profile, purpose="human_review")

    assert (current.granted, current.source) == (granted, source)


def test_the_current_state_lists_every_purpose_in_order():
    profile = ProfileFactory()

    assert [c.purpose for c in consent_current(profile=profile)] == Purpose.values


def test_a_consent_default_is_created_with_a_ledger_entry():
    entries = LedgerEntry.objects.count()

    default = consent_default_create(
        jurisdiction="US", purpose="model_training", granted=True, actor="client:ops"
    )

    assert ConsentDefault.objects.get().pk == default.pk
    assert default.created_by == "client:ops"
    assert LedgerEntry.objects.count() == entries + 1
    entry = LedgerEntry.objects.latest("seq")
    assert entry.kind == "consent_default.created"
    assert entry.payload == {"jurisdiction": "US", "purpose": "model_training", "granted": True}


def test_a_second_default_for_the_same_key_is_a_conflict_and_writes_nothing():
    consent_default_create(jurisdiction="US", purpose="human_review", granted=True, actor="a")
    entries = LedgerEntry.objects.count()

    with pytest.raises(Conflict):
        consent_default_create(jurisdiction="US", purpose="human_review", granted=False, actor="a")

    assert ConsentDefault.objects.get().granted is True
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("jurisdiction", "purpose", "code"),
    [
        ("XX", "human_review", "unknown_jurisdiction"),
        ("us", "human_review", "unknown_jurisdiction"),
        ("EU", "human_review", "unknown_jurisdiction"),
        (None, "human_review", "unknown_jurisdiction"),
        ("US", "marketing", "unknown_purpose"),
    ],
)
def test_a_default_for_an_unknown_jurisdiction_or_purpose_is_refused(jurisdiction, purpose, code):
    with pytest.raises(ApplicationError) as refused:
        consent_default_create(jurisdiction=jurisdiction, purpose=purpose, granted=True, actor="a")

    assert refused.value.code == code
    assert not ConsentDefault.objects.exists()


def test_deleting_a_default_writes_a_ledger_entry_and_the_opt_in_rule_applies_again():
    profile = ProfileFactory(account__jurisdiction="US")
    default = consent_default_create(
        jurisdiction="US", purpose="human_review", granted=True, actor="a"
    )

    consent_default_delete(default=default, actor="client:ops")

    assert not ConsentDefault.objects.exists()
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.actor) == ("consent_default.deleted", "client:ops")
    current = consent_current_for(profile=profile, purpose="human_review")
    assert (current.granted, current.source) == (False, "none")
