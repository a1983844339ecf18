import pytest
from rest_framework.test import APIClient

from compliance.ledger.models import LedgerEntry
from compliance.transfers.models import TransferRule
from tests.factories import TransferRuleFactory, UserFactory

pytestmark = pytest.mark.django_db

RULE = {"jurisdiction": "DE", "reviewer_location": "IE"}


@pytest.fixture
def officer(api_client_with_scopes) -> APIClient:
    return api_client_with_scopes("policies:write")


def test_a_rule_is_created_listed_and_deleted_with_ledger_entries(officer):
    created = officer.post("/api/v1/transfer-rules", RULE, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in RULE} == RULE
    assert body["id"] and body["created_at"]
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.payload) == ("transfer_rule.created", RULE)
    assert TransferRule.objects.get().created_by.startswith("client:")

    listed = officer.get("/api/v1/transfer-rules")

    assert listed.status_code == 200
    assert listed.json() == [body]

    deleted = officer.delete(f"/api/v1/transfer-rules/{body['id']}")

    assert deleted.status_code == 204
    assert not TransferRule.objects.exists()
    assert LedgerEntry.objects.latest("seq").kind == "transfer_rule.deleted"
    assert officer.get("/api/v1/transfer-rules").json() == []


def test_rules_are_listed_by_jurisdiction_then_location(officer):
    for jurisdiction, location in [("US", "IE"), ("DE", "PL"), ("DE", "IE")]:
        TransferRuleFactory(jurisdiction=jurisdiction, reviewer_location=location)

    listed = officer.get("/api/v1/transfer-rules").json()

    assert [(r["jurisdiction"], r["reviewer_location"]) for r in listed] == [
        ("DE", "IE"),
        ("DE", "PL"),
        ("US", "IE"),
    ]


def test_a_duplicate_rule_is_409_and_writes_nothing(officer):
    officer.post("/api/v1/transfer-rules", RULE, format="json")
    entries = LedgerEntry.objects.count()

    response = officer.post("/api/v1/transfer-rules", RULE, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert TransferRule.objects.count() == 1
    assert LedgerEntry.objects.count() == entries


def test_the_reverse_direction_is_a_different_rule(officer):
    officer.post("/api/v1/transfer-rules", RULE, format="json")

    response = officer.post(
        "/api/v1/transfer-rules", {"jurisdiction": "IE", "reviewer_location": "DE"}, format="json"
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"jurisdiction": "XX"}, "unknown_jurisdiction", "jurisdiction"),
        ({"jurisdiction": "de"}, "unknown_jurisdiction", "jurisdiction"),
        ({"jurisdiction": "EU"}, "unknown_jurisdiction", "jurisdiction"),
        ({"reviewer_location": "ZZ"}, "unknown_location", "reviewer_location"),
        ({"reviewer_location": "ie"}, "unknown_location", "reviewer_location"),
        ({"jurisdiction": "DEU"}, "validation_error", "jurisdiction"),
        ({"jurisdiction": ""}, "validation_error", "jurisdiction"),
        ({"jurisdiction": None}, "validation_error", "jurisdiction"),
        ({"reviewer_location": 49}, "validation_error", "reviewer_location"),
        ({"reviewer_location": ["IE"]}, "validation_error", "reviewer_location"),
    ],
)
def test_an_unknown_code_is_400(officer, change, code, field):
    response = officer.post("/api/v1/transfer-rules", {**RULE, **change}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not TransferRule.objects.exists()


@pytest.mark.parametrize("missing", ["jurisdiction", "reviewer_location"])
def test_both_codes_are_required(officer, missing):
    body = {k: v for k, v in RULE.items() if k != missing}

    response = officer.post("/api/v1/transfer-rules", body, format="json")

    assert response.status_code == 400
    assert missing in response.json()["error"]["fields"]


@pytest.mark.parametrize("pk", ["424242", "99999999999999999999999"])
def test_deleting_an_unknown_rule_is_404(officer, pk):
    response = officer.delete(f"/api/v1/transfer-rules/{pk}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/transfer-rules"),
        ("post", "/api/v1/transfer-rules"),
        ("delete", "/api/v1/transfer-rules/{id}"),
    ],
)
def test_transfer_rules_need_policies_write(api_client_with_scopes, method, path):
    rule = TransferRuleFactory()
    client = api_client_with_scopes("eligibility:read", "consents:write")

    response = getattr(client, method)(path.format(id=rule.pk), RULE, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert TransferRule.objects.count() == 1


def test_an_end_user_may_not_manage_transfer_rules():
    client = APIClient()
    client.force_login(UserFactory())

    response = client.post("/api/v1/transfer-rules", RULE, format="json")

    assert response.status_code == 403
    assert not TransferRule.objects.exists()


def test_without_credentials_the_answer_is_401():
    response = APIClient().get("/api/v1/transfer-rules")

    assert response.status_code == 401
