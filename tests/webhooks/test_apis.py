"""The subscriptions API: who may call it, what it stores, what it refuses."""

import pytest

from compliance.ledger.models import LedgerEntry
from compliance.webhooks.models import Subscription
from compliance.webhooks.signing import secret_decrypt
from tests.conftest import postgres_only

pytestmark = [postgres_only(), pytest.mark.django_db]


@pytest.fixture
def hooks_client(api_client_with_scopes, local_receivers_allowed):
    return api_client_with_scopes("webhooks:write")


def test_create_shows_the_secret_once_and_stores_it_encrypted(hooks_client):
    response = hooks_client.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["consent.changed"], "holds_copies": True},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["consent.changed"] and body["holds_copies"] is True
    row = Subscription.objects.get(external_id=body["id"])
    assert body["secret"] not in row.secret_encrypted
    assert secret_decrypt(row.secret_encrypted) == body["secret"]
    assert "secret" not in hooks_client.get(f"/api/v1/webhooks/{body['id']}").json()
    assert LedgerEntry.objects.filter(
        kind="webhook_subscription.created", subject=f"webhook:{body['id']}"
    ).exists()


def test_list_patch_delete(hooks_client):
    created = hooks_client.post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/a", "events": ["*"]}, format="json"
    ).json()
    path = f"/api/v1/webhooks/{created['id']}"
    assert [h["id"] for h in hooks_client.get("/api/v1/webhooks").json()] == [created["id"]]
    patched = hooks_client.patch(path, {"description": "annotation tool"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "annotation tool"
    assert LedgerEntry.objects.filter(kind="webhook_subscription.updated").count() == 1
    assert hooks_client.delete(path).status_code == 204
    assert hooks_client.get(path).status_code == 404
    assert hooks_client.get("/api/v1/webhooks").json() == []


def test_rotate_secret_returns_a_new_secret_and_keeps_the_old_for_the_overlap(hooks_client):
    created = hooks_client.post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/a", "events": ["*"]}, format="json"
    ).json()
    rotated = hooks_client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"]
    row = Subscription.objects.get(external_id=created["id"])
    assert secret_decrypt(row.previous_secret_encrypted) == created["secret"]
    assert row.previous_secret_until is not None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://127.0.0.1:9/a", "events": ["nope"]}, "webhook_events_invalid"),
        ({"url": "http://127.0.0.1:9/a", "events": []}, "webhook_events_invalid"),
        ({"url": "http://127.0.0.1:9/a", "events": "*"}, "validation_error"),
        ({"url": "ftp://127.0.0.1/a", "events": ["*"]}, "webhook_url_scheme"),
        ({"url": "http://user:pw@127.0.0.1/a", "events": ["*"]}, "webhook_url_invalid"),
        ({"url": "http://[::1/a", "events": ["*"]}, "webhook_url_invalid"),
        ({"url": 5, "events": ["*"]}, "validation_error"),
        (
            {"url": "http://127.0.0.1:9/a", "events": ["*"], "holds_copies": "yes"},
            "validation_error",
        ),
    ],
)
def test_bad_input_is_a_400_with_a_code(hooks_client, body, code):
    response = hooks_client.post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_a_client_without_the_scope_is_refused(api_client_with_scopes):
    response = api_client_with_scopes("consents:write").get("/api/v1/webhooks")
    assert response.status_code == 403


def test_events_are_stored_sorted_and_each_once(hooks_client):
    created = hooks_client.post(
        "/api/v1/webhooks",
        {
            "url": "http://127.0.0.1:9/a",
            "events": ["recording.purged", "consent.changed", "recording.purged"],
        },
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["events"] == ["consent.changed", "recording.purged"]


@pytest.mark.parametrize(
    ("events", "field_code"), [(["nope"], "unknown"), ([], "invalid"), (["*"] * 12, "invalid")]
)
def test_a_patch_with_bad_events_is_refused_before_the_service(hooks_client, events, field_code):
    created = hooks_client.post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/a", "events": ["*"]}, format="json"
    ).json()
    response = hooks_client.patch(
        f"/api/v1/webhooks/{created['id']}", {"events": events}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "webhook_events_invalid"
    assert [f["code"] for f in error["fields"]["events"]] == [field_code]
    assert Subscription.objects.get(external_id=created["id"]).events == ["*"]
