from datetime import UTC, datetime

import pytest
import time_machine
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from rest_framework.test import APIClient

from compliance.actions import consent as consent_action
from compliance.consent.models import ConsentDefault, ConsentEvent, ConsentState
from compliance.ledger.models import LedgerEntry
from compliance.security.roles import OFFICERS_GROUP
from tests.factories import ConsentDefaultFactory, ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db

GRANT = {"granted": True, "channel": "app", "notice_version": "2026-01"}


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _state(profile, purpose="human_review") -> bool | None:
    return ConsentState.objects.get(profile=profile, purpose=purpose).granted


@pytest.fixture
def profile():
    return ProfileFactory(external_id="p-1", account__jurisdiction="US")


@pytest.fixture
def owner(profile):
    user = UserFactory()
    profile.account.user = user
    profile.account.save()
    return signed_in(user)


# --- setting and reading -----------------------------------------------------------


def test_put_sets_the_consent_and_answers_the_current_state(platform, profile):
    response = platform.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "profile": "p-1",
        "purpose": "human_review",
        "granted": True,
        "source": "explicit",
        "channel": "app",
        "notice_version": "2026-01",
        "updated_at": body["updated_at"],
    }
    assert body["updated_at"]
    assert _state(profile) is True


@pytest.mark.parametrize("notice", ["v\u0001", "2026\u202e-01", "line\nbreak"])
def test_a_notice_version_that_is_not_one_printable_line_is_refused(platform, profile, notice):
    response = platform.put(
        "/api/v1/profiles/p-1/consents/model_training",
        {"granted": True, "notice_version": notice, "channel": "api"},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert "notice_version" in response.json()["error"]["fields"]
    assert not ConsentEvent.objects.exists()


def test_a_client_that_names_no_channel_is_recorded_as_api(platform, profile):
    response = platform.put(
        "/api/v1/profiles/p-1/consents/model_training",
        {"granted": True, "notice_version": "v1"},
        format="json",
    )

    assert response.json()["channel"] == "api"
    assert ConsentEvent.objects.get().channel == "api"


def test_the_list_shows_every_purpose_with_its_source(platform, profile):
    ConsentDefaultFactory(jurisdiction="US", purpose="model_training", granted=True)
    platform.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")

    response = platform.get("/api/v1/profiles/p-1/consents")

    assert response.status_code == 200
    body = response.json()
    assert body["profile"] == "p-1"
    by_purpose = {c["purpose"]: c for c in body["consents"]}
    assert set(by_purpose) == {"human_review", "model_training"}
    assert (by_purpose["human_review"]["granted"], by_purpose["human_review"]["source"]) == (
        True,
        "explicit",
    )
    assert by_purpose["model_training"] == {
        "purpose": "model_training",
        "granted": True,
        "source": "default",
        "channel": None,
        "notice_version": None,
        "updated_at": None,
    }


@pytest.mark.parametrize(
    ("jurisdiction_default", "granted", "source"),
    [(None, False, "none"), (True, True, "default"), (False, False, "default")],
)
def test_without_an_event_the_jurisdictions_default_applies(
    platform, profile, jurisdiction_default, granted, source
):
    if jurisdiction_default is not None:
        ConsentDefaultFactory(
            jurisdiction="US", purpose="human_review", granted=jurisdiction_default
        )
    ConsentDefaultFactory(jurisdiction="DE", purpose="human_review", granted=True)

    response = platform.get("/api/v1/profiles/p-1/consents/human_review")

    assert response.status_code == 200
    assert (response.json()["granted"], response.json()["source"]) == (granted, source)


def test_an_explicit_withdrawal_wins_over_an_opt_out_default(platform, profile):
    ConsentDefaultFactory(jurisdiction="US", purpose="human_review", granted=True)

    response = platform.put(
        "/api/v1/profiles/p-1/consents/human_review",
        {**GRANT, "granted": False},
        format="json",
    )

    assert (response.json()["granted"], response.json()["source"]) == (False, "explicit")


def test_history_lists_the_events_newest_first(platform, profile):
    answers = [(True, "v1"), (False, "v1"), (True, "v2")]
    for day, (granted, notice) in enumerate(answers, start=1):
        with time_machine.travel(datetime(2026, 3, day, 12, tzinfo=UTC), tick=False):
            platform.put(
                "/api/v1/profiles/p-1/consents/human_review",
                {"granted": granted, "notice_version": notice, "channel": "voice"},
                format="json",
            )
    platform.put("/api/v1/profiles/p-1/consents/model_training", GRANT, format="json")

    response = platform.get("/api/v1/profiles/p-1/consents/human_review/history")

    assert response.status_code == 200
    body = response.json()
    assert (body["profile"], body["purpose"]) == ("p-1", "human_review")
    events = body["events"]
    assert [(e["granted"], e["notice_version"]) for e in events] == list(reversed(answers))
    assert [e["created_at"][:10] for e in events] == ["2026-03-03", "2026-03-02", "2026-03-01"]
    assert {e["purpose"] for e in events} == {"human_review"}
    assert events[0]["actor"].startswith("client:")
    assert events[0]["channel"] == "voice"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/profiles/p-1/consents/marketing"),
        ("get", "/api/v1/profiles/p-1/consents/marketing"),
        ("get", "/api/v1/profiles/p-1/consents/marketing/history"),
        ("put", "/api/v1/profiles/p-1/consents/HUMAN_REVIEW"),
        ("put", "/api/v1/profiles/nobody/consents/human_review"),
        ("get", "/api/v1/profiles/nobody/consents"),
        ("get", "/api/v1/profiles/nobody/consents/human_review/history"),
    ],
)
def test_an_unknown_purpose_or_profile_in_the_path_is_404(platform, profile, method, path):
    response = getattr(platform, method)(path, GRANT, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not ConsentEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "app", "notice_version": "v1"}, "granted"),
        ({**GRANT, "granted": "yes"}, "granted"),
        ({**GRANT, "granted": "True"}, "granted"),
        ({**GRANT, "granted": 1}, "granted"),
        ({**GRANT, "granted": 0}, "granted"),
        ({**GRANT, "granted": None}, "granted"),
        ({**GRANT, "granted": [True]}, "granted"),
        ({"granted": True, "channel": "app"}, "notice_version"),
        ({**GRANT, "notice_version": ""}, "notice_version"),
        ({**GRANT, "notice_version": "   "}, "notice_version"),
        ({**GRANT, "notice_version": 3}, "notice_version"),
        ({**GRANT, "notice_version": None}, "notice_version"),
        ({**GRANT, "notice_version": "v" * 65}, "notice_version"),
        ({**GRANT, "notice_version": "v\x001"}, "notice_version"),
        ({**GRANT, "channel": "email"}, "channel"),
        ({**GRANT, "channel": "API"}, "channel"),
        ({**GRANT, "channel": ""}, "channel"),
        ({**GRANT, "channel": None}, "channel"),
        ({**GRANT, "channel": ["app"]}, "channel"),
    ],
)
def test_bad_consent_input_is_400_with_the_field_and_writes_nothing(platform, profile, body, field):
    entries = LedgerEntry.objects.count()

    response = platform.put("/api/v1/profiles/p-1/consents/human_review", body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert not ConsentEvent.objects.exists()
    assert _state(profile) is None
    assert LedgerEntry.objects.count() == entries


# --- children ---------------------------------------------------------------------


def test_a_childs_profile_is_never_granted_human_review(platform):
    child = ProfileFactory(external_id="kid", is_child=True)
    entries = LedgerEntry.objects.count()

    response = platform.put("/api/v1/profiles/kid/consents/human_review", GRANT, format="json")

    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == "child_profile"
    assert response.json()["error"]["message"]
    assert not ConsentEvent.objects.exists()
    assert _state(child) is None
    assert LedgerEntry.objects.count() == entries
    listed = platform.get("/api/v1/profiles/kid/consents/human_review").json()
    assert listed["granted"] is False


def test_a_childs_profile_may_be_granted_model_training(platform):
    child = ProfileFactory(external_id="kid", is_child=True)

    response = platform.put("/api/v1/profiles/kid/consents/model_training", GRANT, format="json")

    assert response.status_code == 200
    assert response.json()["granted"] is True
    assert _state(child, "model_training") is True


# --- the ledger -------------------------------------------------------------------


def test_a_repeated_identical_put_writes_no_second_event(platform, profile):
    first = platform.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")
    entries = LedgerEntry.objects.count()

    second = platform.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")

    assert second.status_code == 200
    assert second.json() == first.json()
    assert ConsentEvent.objects.count() == 1
    assert LedgerEntry.objects.count() == entries


def test_every_change_writes_exactly_one_ledger_entry(platform, profile):
    for granted in (True, False, True):
        entries = LedgerEntry.objects.count()

        platform.put(
            "/api/v1/profiles/p-1/consents/human_review",
            {**GRANT, "granted": granted},
            format="json",
        )

        assert LedgerEntry.objects.count() == entries + 1
        entry = LedgerEntry.objects.latest("seq")
        assert entry.kind == ("consent.granted" if granted else "consent.withdrawn")
        assert entry.subject == "profile:p-1"
        assert entry.payload["event"] == ConsentEvent.objects.latest("id").pk


def test_when_the_ledger_append_fails_the_change_is_not_half_written(
    platform, profile, monkeypatch
):
    platform.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")
    entries = LedgerEntry.objects.count()

    def broken_ledger(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(consent_action, "ledger_append", broken_ledger)
    platform.raise_request_exception = False
    response = platform.put(
        "/api/v1/profiles/p-1/consents/human_review",
        {**GRANT, "granted": False},
        format="json",
    )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert ConsentEvent.objects.count() == 1
    assert _state(profile) is True
    assert LedgerEntry.objects.count() == entries


# --- who may ----------------------------------------------------------------------


def test_the_owner_reads_and_sets_their_own_consent_through_the_session(owner, profile):
    response = owner.put(
        "/api/v1/profiles/p-1/consents/human_review",
        {"granted": True, "notice_version": "v1"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["channel"] == "web"
    event = ConsentEvent.objects.get()
    assert event.actor == f"user:{profile.account.user_id}"
    assert LedgerEntry.objects.latest("seq").actor == event.actor
    assert owner.get("/api/v1/profiles/p-1/consents").status_code == 200
    history = owner.get("/api/v1/profiles/p-1/consents/human_review/history")
    assert len(history.json()["events"]) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/profiles/p-2/consents"),
        ("get", "/api/v1/profiles/p-2/consents/human_review"),
        ("get", "/api/v1/profiles/p-2/consents/human_review/history"),
        ("put", "/api/v1/profiles/p-2/consents/human_review"),
    ],
)
def test_an_end_user_gets_404_for_another_accounts_profile(owner, method, path):
    other = ProfileFactory(external_id="p-2", account__user=UserFactory())

    response = getattr(owner, method)(path, GRANT, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert _state(other) is None


def test_a_verified_officer_sets_consent_on_the_officer_channel(profile):
    user = UserFactory()
    user.groups.create(name=OFFICERS_GROUP)
    client = signed_in(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = StaticDevice.objects.create(user=user).persistent_id
    session.save()

    response = client.put(
        "/api/v1/profiles/p-1/consents/human_review",
        {"granted": False, "notice_version": "v1"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["channel"] == "officer"


def test_a_user_without_an_account_sees_no_profile(profile):
    stranger = signed_in(UserFactory())

    response = stranger.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")

    assert response.status_code == 404
    assert _state(profile) is None


def test_the_owners_session_needs_the_csrf_token(profile):
    user = UserFactory()
    profile.account.user = user
    profile.account.save()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert _state(profile) is None


def test_without_any_credentials_the_answer_is_401(profile):
    response = APIClient().put("/api/v1/profiles/p-1/consents/human_review", GRANT, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        (["consents:read"], "put", "/api/v1/profiles/p-1/consents/human_review"),
        (["recordings:write"], "put", "/api/v1/profiles/p-1/consents/human_review"),
        (["consents:write"], "get", "/api/v1/profiles/p-1/consents"),
        (["consents:write"], "get", "/api/v1/profiles/p-1/consents/human_review/history"),
        (["consents:read"], "put", "/api/v1/profiles/nobody/consents/human_review"),
    ],
)
def test_a_client_without_the_scope_gets_403(api_client_with_scopes, profile, scopes, method, path):
    client = api_client_with_scopes(*scopes)

    response = getattr(client, method)(path, GRANT, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert not ConsentEvent.objects.exists()


# --- consent defaults -------------------------------------------------------------

DEFAULT = {"jurisdiction": "US", "purpose": "human_review", "granted": True}


def test_a_consent_default_is_created_listed_and_deleted(api_client_with_scopes):
    officer = api_client_with_scopes("policies:write")

    created = officer.post("/api/v1/consent-defaults", DEFAULT, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in DEFAULT} == DEFAULT
    assert LedgerEntry.objects.latest("seq").kind == "consent_default.created"
    listed = officer.get("/api/v1/consent-defaults")
    assert listed.status_code == 200
    assert [d["id"] for d in listed.json()] == [body["id"]]

    deleted = officer.delete(f"/api/v1/consent-defaults/{body['id']}")

    assert deleted.status_code == 204
    assert not ConsentDefault.objects.exists()
    assert LedgerEntry.objects.latest("seq").kind == "consent_default.deleted"
    assert officer.get("/api/v1/consent-defaults").json() == []


def test_a_new_default_changes_the_answer_for_profiles_without_an_event(platform, profile):
    platform.post("/api/v1/consent-defaults", DEFAULT, format="json")

    current = platform.get("/api/v1/profiles/p-1/consents/human_review").json()

    assert (current["granted"], current["source"]) == (True, "default")


def test_a_duplicate_default_is_409_and_keeps_the_first(platform):
    platform.post("/api/v1/consent-defaults", DEFAULT, format="json")
    entries = LedgerEntry.objects.count()

    response = platform.post(
        "/api/v1/consent-defaults", {**DEFAULT, "granted": False}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert ConsentDefault.objects.get().granted is True
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"jurisdiction": "XX"}, "unknown_jurisdiction", "jurisdiction"),
        ({"jurisdiction": "us"}, "unknown_jurisdiction", "jurisdiction"),
        ({"jurisdiction": "USA"}, "validation_error", "jurisdiction"),
        ({"jurisdiction": 1}, "validation_error", "jurisdiction"),
        ({"purpose": "marketing"}, "unknown_purpose", "purpose"),
        ({"purpose": ""}, "validation_error", "purpose"),
        ({"purpose": ["human_review"]}, "validation_error", "purpose"),
        ({"granted": "yes"}, "validation_error", "granted"),
        ({"granted": None}, "validation_error", "granted"),
    ],
)
def test_a_bad_default_is_400_with_a_code(platform, change, code, field):
    response = platform.post("/api/v1/consent-defaults", {**DEFAULT, **change}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not ConsentDefault.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/consent-defaults"),
        ("post", "/api/v1/consent-defaults"),
        ("delete", "/api/v1/consent-defaults/{id}"),
    ],
)
def test_consent_defaults_need_policies_write(api_client_with_scopes, method, path):
    default = ConsentDefaultFactory()
    client = api_client_with_scopes("consents:write", "consents:read")

    response = getattr(client, method)(path.format(id=default.pk), DEFAULT, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert ConsentDefault.objects.count() == 1


def test_an_end_user_may_not_manage_defaults():
    response = signed_in(UserFactory()).post("/api/v1/consent-defaults", DEFAULT, format="json")

    assert response.status_code == 403
    assert not ConsentDefault.objects.exists()


def test_an_officer_needs_a_verified_second_factor():
    user = UserFactory()
    user.groups.create(name=OFFICERS_GROUP)
    client = signed_in(user)

    assert client.post("/api/v1/consent-defaults", DEFAULT, format="json").status_code == 403

    device = StaticDevice.objects.create(user=user, name="backup")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    response = client.post("/api/v1/consent-defaults", DEFAULT, format="json")

    assert response.status_code == 201, response.content
    assert ConsentDefault.objects.get().created_by == f"user:{user.pk}"


@pytest.mark.parametrize("pk", ["999999", "99999999999999999999999", "abc", "-1"])
def test_deleting_an_unknown_default_is_404(platform, pk):
    response = platform.delete(f"/api/v1/consent-defaults/{pk}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
