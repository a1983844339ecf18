"""The officers' webhooks page: subscriptions and their state, add (the secret shown
once), disable, replay, and the alert for deletions partner systems have not confirmed."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from compliance.core.metrics import registry
from compliance.ledger.models import LedgerEntry
from compliance.webhooks.models import Confirmation, Delivery, Subscription
from compliance.webhooks.services import subscription_create
from tests.conftest import postgres_only
from tests.web.conftest import verify_session

pytestmark = [postgres_only(), pytest.mark.django_db]


@pytest.fixture
def local_allowed(settings) -> None:
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True


def _subscription(description: str = "annotation tool", **kwargs) -> Subscription:
    subscription, _ = subscription_create(
        url="http://127.0.0.1:9/hook",
        events=["*"],
        description=description,
        holds_copies=kwargs.get("holds_copies", False),
        actor="test",
    )
    return subscription


def _delivery(subscription: Subscription, event_id: str, *, age: timedelta, **fields) -> Delivery:
    at = timezone.now() - age
    return Delivery.objects.create(
        subscription=subscription,
        event_id=event_id,
        event_type=fields.pop("event_type", "consent.changed"),
        body="{}",
        next_attempt_at=at,
        retry_from=at,
        created_at=at,
        **fields,
    )


def test_an_officer_adds_a_subscription_and_sees_its_secret_once(officer_client, local_allowed):
    response = officer_client.post(
        "/officer/webhooks/",
        {
            "url": "http://127.0.0.1:9/hook",
            "events": ["legal_hold.placed", "deletion_request.completed"],
            "description": "review vendor",
            "holds_copies": "on",
        },
    )

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    subscription = Subscription.objects.get()
    assert subscription.events == ["deletion_request.completed", "legal_hold.placed"]
    assert subscription.holds_copies is True
    secret = response.context["secret"]
    assert secret.startswith("whsec_")
    assert secret in response.content.decode()
    assert LedgerEntry.objects.filter(kind="webhook_subscription.created").count() == 1
    again = officer_client.get("/officer/webhooks/")
    assert secret not in again.content.decode()
    assert "review vendor" in again.content.decode()


def test_a_url_the_safety_checks_refuse_is_a_400_on_the_form_and_nothing_is_added(
    officer_client,
):
    response = officer_client.post(
        "/officer/webhooks/", {"url": "http://169.254.169.254/latest", "events": ["*"]}
    )

    assert response.status_code == 400
    assert response.context["form"].errors
    assert not Subscription.objects.exists()


def test_a_refusal_that_is_a_fields_own_sentence_is_said_once_on_the_field(officer_client):
    response = officer_client.post(
        "/officer/webhooks/", {"url": "http://example.org/hook", "events": ["*"]}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert page.count("Webhook URLs must use https.") == 1
    assert "please check the fields marked below" in page
    assert response.context["form"].errors["url"] == ["Webhook URLs must use https."]


def test_the_page_shows_each_subscription_state_failed_count_and_last_delivery(
    officer_client, local_allowed
):
    healthy = _subscription("healthy")
    failing = _subscription("broken")
    Subscription.objects.filter(pk=failing.pk).update(status="failing")
    _delivery(
        healthy,
        "evt_1",
        age=timedelta(minutes=5),
        status="delivered",
        delivered_at=timezone.now(),
    )
    _delivery(failing, "evt_1", age=timedelta(hours=30), status="failed")
    _delivery(failing, "evt_2", age=timedelta(hours=30), status="failed")

    response = officer_client.get("/officer/webhooks/")

    rows = {r["subscription"].description: r for r in response.context["subscriptions"]}
    assert rows["healthy"]["failed"] == 0 and rows["healthy"]["last_delivered_at"] is not None
    assert rows["broken"]["failed"] == 2
    page = response.content.decode()
    assert 'badge-bad">failing' in page
    assert "Replay failed" in page
    # the dashboard carries the failing alert too
    assert "1 webhook subscription failing" in officer_client.get("/officer/").content.decode()


def test_replay_needs_the_csrf_token_then_sends_the_failed_deliveries_again(officer, local_allowed):
    subscription = _subscription()
    Subscription.objects.filter(pk=subscription.pk).update(status="failing")
    _delivery(subscription, "evt_1", age=timedelta(hours=30), status="failed")
    user, device = officer
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    verify_session(client, device)

    refused = client.post(f"/officer/webhooks/{subscription.external_id}/replay/")
    assert refused.status_code == 403
    assert Delivery.objects.get().status == "failed"

    token = client.get("/officer/webhooks/").context["csrf_token"]
    response = client.post(
        f"/officer/webhooks/{subscription.external_id}/replay/", {"csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert Delivery.objects.get().status == "pending"


def test_an_officer_disables_a_subscription_and_the_ledger_records_it(
    officer_client, local_allowed
):
    subscription = _subscription()

    response = officer_client.post(f"/officer/webhooks/{subscription.external_id}/disable/")

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.status == "disabled"
    entry = LedgerEntry.objects.filter(kind="webhook_subscription.status_changed").get()
    assert entry.payload["to"] == "disabled"
    assert officer_client.post("/officer/webhooks/wh_nope/disable/").status_code == 404


def test_a_deletion_left_unconfirmed_past_the_alert_time_is_an_alert_on_the_pages_and_metrics(
    officer_client, local_allowed, settings
):
    settings.WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS = 3600
    vendor = _subscription("vendor", holds_copies=True)
    cache = _subscription("cache")  # holds no copies: never asked to confirm
    for subscription in (vendor, cache):
        _delivery(
            subscription, "evt_7", age=timedelta(hours=2), event_type="deletion_request.completed"
        )
    _delivery(  # told a minute ago: not late yet
        vendor, "evt_9", age=timedelta(minutes=1), event_type="deletion_request.completed"
    )

    page = officer_client.get("/officer/webhooks/").content.decode()
    dashboard = officer_client.get("/officer/").content.decode()

    assert "1 deletion not confirmed downstream" in page
    assert "1 deletion not confirmed downstream" in dashboard
    assert registry.get_sample_value("earshot_webhook_unconfirmed_deletions") == 1

    Confirmation.objects.create(
        subscription=vendor, event_id="evt_7", confirmed_at=timezone.now(), via="signature"
    )
    assert "not confirmed downstream" not in officer_client.get("/officer/").content.decode()
    assert registry.get_sample_value("earshot_webhook_unconfirmed_deletions") == 0


def test_the_event_choices_say_what_each_event_means_in_the_readers_language(officer_client):
    from compliance.web.wording import WEBHOOK_EVENT_WORDS
    from compliance.webhooks.events import EVENT_TYPES

    assert set(WEBHOOK_EVENT_WORDS) == set(EVENT_TYPES) - {"webhook.ping"}
    english = officer_client.get("/officer/webhooks/").content.decode()
    german = officer_client.get("/officer/webhooks/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert "legal_hold.placed: a legal hold was placed" in english
    assert "legal_hold.placed: eine rechtliche Sperre wurde gesetzt" in german
    assert "a legal hold was placed" not in german
