"""A subscriber that holds copies confirms it deleted them; the deletion request shows
who confirmed and who has not."""

import json
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from compliance.retention.deletion_requests import deletion_request_run
from compliance.retention.services import deletion_request_create
from compliance.webhooks.models import Confirmation
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.conftest import ingest  # noqa: F401 - a fixture

from .conftest import drain

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _signed_post(subscription_id: str, secret: str, event_ids: list[str]):
    body = json.dumps({"event_ids": event_ids})
    now = timezone.now()
    msg_id = f"msg_{now.timestamp()}"
    headers = {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(now.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": Webhook(secret).sign(msg_id, now, body),
    }
    return APIClient().post(
        f"/api/v1/webhooks/{subscription_id}/confirmations",
        body,
        content_type="application/json",
        **headers,
    )


def test_a_signed_confirmation_shows_on_the_deletion_request(
    receiver,
    subscribe,
    ingest,  # noqa: F811
    platform,
):
    annotator, annotator_secret = subscribe(receiver.url, holds_copies=True)
    vendor, _ = subscribe(receiver.url, holds_copies=True)
    subscribe(receiver.url, holds_copies=False)  # listens, holds nothing
    profile = ProfileFactory()
    ingest(profile, days_ago=2)
    request = deletion_request_create(
        profile=profile, recorded_from=datetime(2020, 1, 1, tzinfo=UTC), recorded_to=None, actor="t"
    )
    deletion_request_run(public_id=request.public_id)
    drain()
    event_id = next(
        r.headers["webhook-id"]
        for r in receiver.got
        if r.json["type"] == "deletion_request.completed"
    )

    before = platform.get(f"/api/v1/deletion-requests/{request.public_id}").json()
    assert before["confirmations"]["required"] == 2
    assert sorted(before["confirmations"]["pending"]) == sorted(
        [annotator.external_id, vendor.external_id]
    )

    response = _signed_post(annotator.external_id, annotator_secret, [event_id])
    assert response.status_code == 200, response.json()
    assert response.json() == {"confirmed": 1}
    again = _signed_post(annotator.external_id, annotator_secret, [event_id])
    assert again.json() == {"confirmed": 0}

    after = platform.get(f"/api/v1/deletion-requests/{request.public_id}").json()["confirmations"]
    assert after["pending"] == [vendor.external_id]
    assert [c["webhook"] for c in after["confirmed"]] == [annotator.external_id]


def test_a_confirmation_signed_with_another_secret_is_refused(receiver, subscribe):
    subscription, _ = subscribe(receiver.url, holds_copies=True)
    _, other_secret = subscribe(receiver.url, holds_copies=True)
    response = _signed_post(subscription.external_id, other_secret, ["evt_1"])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "webhook_signature_invalid"
    assert not Confirmation.objects.exists()


def test_only_events_sent_to_the_subscription_can_be_confirmed(receiver, subscribe):
    subscription, secret = subscribe(receiver.url, holds_copies=True)
    response = _signed_post(subscription.external_id, secret, ["evt_999"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_event_unknown"


def test_an_unsigned_call_without_a_key_is_refused(receiver, subscribe):
    subscription, _ = subscribe(receiver.url, holds_copies=True)
    response = APIClient().post(
        f"/api/v1/webhooks/{subscription.external_id}/confirmations",
        {"event_ids": ["evt_1"]},
        format="json",
    )
    assert response.status_code == 401


def test_the_privacy_page_counts_the_confirmations_and_the_receipt_names_who_confirmed_when(
    receiver,
    subscribe,
    ingest,  # noqa: F811
):
    from django.test import Client

    from compliance.ledger import signing
    from earshot_verify.jws import receipt_open
    from earshot_verify.note import parse_verifier_key
    from tests.factories import AccountFactory, UserFactory

    annotator, annotator_secret = subscribe(receiver.url, holds_copies=True, description="labels")
    vendor, _ = subscribe(receiver.url, holds_copies=True, description="vendor in Manila")
    owner = UserFactory(username="deleter")
    profile = ProfileFactory(account=AccountFactory(user=owner))
    ingest(profile, days_ago=2)
    request = deletion_request_create(
        profile=profile, recorded_from=datetime(2020, 1, 1, tzinfo=UTC), recorded_to=None, actor="t"
    )
    deletion_request_run(public_id=request.public_id)
    drain()
    event_id = next(
        r.headers["webhook-id"]
        for r in receiver.got
        if r.json["type"] == "deletion_request.completed"
    )
    assert _signed_post(annotator.external_id, annotator_secret, [event_id]).status_code == 200
    client = Client()
    client.force_login(owner)

    page = client.get(f"/privacy/deletions/{request.public_id}/").content.decode()
    body = client.get(f"/api/v1/deletion-requests/{request.public_id}/receipt").json()

    assert "Deleted here; confirmed by 1 of 2 partner systems" in page
    assert vendor.external_id not in page and "Manila" not in page
    claims = receipt_open(body["receipt"], parse_verifier_key(signing.signing_key().verifier_key))
    confirmed_at = Confirmation.objects.get(subscription=annotator).confirmed_at
    assert claims["confirmations"] == body["confirmations"]
    assert claims["confirmations"] == {
        "required": 2,
        "confirmed": [
            {
                "webhook": annotator.external_id,
                "name": "labels",
                "confirmed_at": confirmed_at.isoformat(),
            }
        ],
    }
