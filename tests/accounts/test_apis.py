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
