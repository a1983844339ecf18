import pytest

from compliance.accounts.models import Account, Profile
from compliance.consent.models import ConsentState
from compliance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db


def test_a_client_registers_an_account_and_a_profile(platform):
    response = platform.post(
        "/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "DE"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["external_id"] == "a-1"

    response = platform.post(
        "/api/v1/profiles",
        {"external_id": "p-1", "account": "a-1", "is_child": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json() == {
        "external_id": "p-1",
        "account": "a-1",
        "is_child": True,
        "retention_choice": None,
        "created_at": response.json()["created_at"],
    }
    assert ConsentState.objects.filter(profile__external_id="p-1").count() == 2
    assert LedgerEntry.objects.filter(kind="profile.created", subject="profile:p-1").exists()


def test_a_duplicate_account_is_a_conflict_and_writes_nothing(platform):
    platform.post("/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "DE"}, format="json")
    entries = LedgerEntry.objects.count()
    response = platform.post(
        "/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "FR"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert Account.objects.get(external_id="a-1").jurisdiction == "DE"
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"external_id": "a-1", "jurisdiction": "XX"}, "unknown_jurisdiction", "jurisdiction"),
        ({"external_id": "a-1", "jurisdiction": "de"}, "unknown_jurisdiction", "jurisdiction"),
        ({"external_id": "a-1", "jurisdiction": "DEU"}, "validation_error", "jurisdiction"),
        ({"external_id": "a-1"}, "validation_error", "jurisdiction"),
        ({"external_id": 12, "jurisdiction": "DE"}, "validation_error", "external_id"),
        ({"external_id": "", "jurisdiction": "DE"}, "validation_error", "external_id"),
        ({"external_id": "x" * 129, "jurisdiction": "DE"}, "validation_error", "external_id"),
        ({"external_id": ["a"], "jurisdiction": "DE"}, "validation_error", "external_id"),
    ],
)
def test_bad_account_input_is_refused_with_a_code(platform, body, code, field):
    response = platform.post("/api/v1/accounts", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not Account.objects.exists()


def test_malformed_json_is_refused(platform):
    response = platform.post(
        "/api/v1/accounts", '{"external_id": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_a_profile_for_an_unknown_account_is_refused(platform):
    response = platform.post(
        "/api/v1/profiles", {"external_id": "p-1", "account": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_account"
    assert not Profile.objects.exists()


def test_is_child_must_be_a_boolean(platform):
    platform.post("/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "DE"}, format="json")
    response = platform.post(
        "/api/v1/profiles",
        {"external_id": "p-1", "account": "a-1", "is_child": "yes"},
        format="json",
    )
    assert response.status_code == 400
    assert "is_child" in response.json()["error"]["fields"]


def test_without_a_key_the_answer_is_401(client):
    response = client.post(
        "/api/v1/accounts",
        {"external_id": "a", "jurisdiction": "DE"},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_wrong_key_is_401(client, db):
    response = client.post(
        "/api/v1/accounts",
        {"external_id": "a", "jurisdiction": "DE"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Api-Key esk_not-a-key",
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_key_without_the_scope_is_403(api_client_with_scopes):
    reader = api_client_with_scopes("eligibility:read")
    response = reader.post(
        "/api/v1/accounts", {"external_id": "a", "jurisdiction": "DE"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert not Account.objects.exists()


# --- retention choice ----------------------------------------------------------------
# (appended: imports stay local so the lines above are untouched)


@pytest.fixture
def owned_profile():
    from tests.factories import ProfileFactory, UserFactory

    return ProfileFactory(external_id="p-1", account__user=UserFactory())


@pytest.fixture
def owner(owned_profile):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(owned_profile.account.user)
    return client


@pytest.mark.parametrize("choice", ["3_months", "18_months", "until_deleted", "dont_save"])
def test_a_retention_choice_is_set_and_answered(platform, owned_profile, choice):
    response = platform.put("/api/v1/profiles/p-1/retention", {"choice": choice}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"profile": "p-1", "choice": choice}
    assert Profile.objects.get(external_id="p-1").retention_choice == choice
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.subject) == ("retention_choice.changed", "profile:p-1")
    assert platform.get("/api/v1/profiles/p-1/retention").json()["choice"] == choice


def test_the_same_retention_choice_again_writes_nothing(platform, owned_profile):
    platform.put("/api/v1/profiles/p-1/retention", {"choice": "3_months"}, format="json")
    entries = LedgerEntry.objects.count()

    response = platform.put("/api/v1/profiles/p-1/retention", {"choice": "3_months"}, format="json")

    assert response.status_code == 200
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    "body",
    [
        {"choice": "1_year"},
        {"choice": "3 months"},
        {"choice": ""},
        {"choice": None},
        {"choice": 3},
        {"choice": ["3_months"]},
        {"choice": {"3_months": True}},
        {},
    ],
)
def test_an_invalid_retention_choice_is_400_and_changes_nothing(platform, owned_profile, body):
    entries = LedgerEntry.objects.count()

    response = platform.put("/api/v1/profiles/p-1/retention", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert "choice" in response.json()["error"]["fields"]
    assert Profile.objects.get(external_id="p-1").retention_choice is None
    assert LedgerEntry.objects.count() == entries


def test_the_owner_sets_their_own_retention_through_the_session(owner, owned_profile):
    response = owner.put("/api/v1/profiles/p-1/retention", {"choice": "dont_save"}, format="json")

    assert response.status_code == 200, response.content
    assert LedgerEntry.objects.latest("seq").actor == f"user:{owned_profile.account.user_id}"
    assert owner.get("/api/v1/profiles/p-1/retention").json()["choice"] == "dont_save"


@pytest.mark.parametrize("method", ["get", "put"])
def test_an_end_user_gets_404_for_another_owners_retention(owner, method):
    from tests.factories import ProfileFactory, UserFactory

    ProfileFactory(external_id="p-2", account__user=UserFactory())

    response = getattr(owner, method)(
        "/api/v1/profiles/p-2/retention", {"choice": "dont_save"}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert Profile.objects.get(external_id="p-2").retention_choice is None


def test_the_retention_of_an_unknown_profile_is_404(platform):
    response = platform.put(
        "/api/v1/profiles/nobody/retention", {"choice": "3_months"}, format="json"
    )

    assert response.status_code == 404


@pytest.mark.parametrize(("scope", "method"), [("consents:read", "put"), ("consents:write", "get")])
def test_the_retention_choice_needs_the_consent_scopes(
    api_client_with_scopes, owned_profile, scope, method
):
    response = getattr(api_client_with_scopes(scope), method)(
        "/api/v1/profiles/p-1/retention", {"choice": "3_months"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert Profile.objects.get(external_id="p-1").retention_choice is None


@pytest.mark.parametrize("method", ["get", "delete", "patch"])
def test_a_method_the_endpoint_does_not_have_is_405(platform, method):
    response = getattr(platform, method)("/api/v1/accounts")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
