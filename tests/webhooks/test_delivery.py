"""Deliveries to a real local receiver: signed per Standard Webhooks, in commit order
per profile, nothing for a rolled-back change, nothing lost while the receiver or the
broker is down."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from compliance.actions.consent import consent_set
from compliance.core.metrics import registry
from compliance.retention.services import legal_hold_place
from compliance.webhooks.models import Delivery, Subscription
from compliance.webhooks.sender import webhooks_send
from compliance.webhooks.services import (
    subscription_ping,
    subscription_replay,
    subscription_rotate_secret,
    webhooks_dispatch,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory

from .conftest import drain

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _consent(profile, granted: bool, purpose: str = "human_review") -> None:
    consent_set(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel="api",
        notice_version="v1",
        actor="test",
    )


def _due_now() -> None:
    Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def test_a_consent_change_arrives_signed_so_that_standardwebhooks_verifies_it(receiver, subscribe):
    _, secret = subscribe(receiver.url, ["consent.changed"])
    profile = ProfileFactory()
    _consent(profile, False)
    drain()

    assert len(receiver.got) == 1
    request = receiver.got[0]
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "consent.changed"
    assert payload["data"]["profile"] == profile.external_id
    assert payload["data"]["granted"] is False
    assert payload["data"]["channel"] == "api"
    assert request.headers["webhook-id"].startswith("evt_")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(request.body, request.headers)


def test_a_rolled_back_change_sends_nothing(receiver, subscribe):
    subscribe(receiver.url)
    profile = ProfileFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        _consent(profile, True)
        raise RuntimeError("the change fails after its ledger entry")
    _consent(profile, False)
    drain()

    bodies = [r.json for r in receiver.got]
    assert [(b["type"], b["data"]["granted"]) for b in bodies] == [("consent.changed", False)]


def test_a_receiver_down_for_a_while_gets_every_event_afterwards_in_order_with_the_same_ids(
    receiver, subscribe
):
    subscribe(receiver.url)
    profile = ProfileFactory()
    receiver.answer = lambda r: 503
    for granted in (True, False, True, False):
        _consent(profile, granted)
    drain()
    first_try = [r.headers["webhook-id"] for r in receiver.seen]
    assert receiver.got == []
    # only the oldest was tried: the later ones of the profile wait behind it
    assert len(set(first_try)) == 1

    receiver.answer = lambda r: 200
    for _ in range(6):
        _due_now()
        drain()

    got = receiver.event_ids()
    assert len(got) == 4
    assert got[0] == first_try[0]
    assert [r.json["data"]["granted"] for r in receiver.got] == [True, False, True, False]
    assert got == sorted(got, key=lambda e: int(e.split("_")[1]))
    assert Delivery.objects.filter(status="delivered").count() == 4


def test_a_slow_or_failing_profile_does_not_hold_back_another_profile(receiver, subscribe):
    subscribe(receiver.url)
    stuck, other = ProfileFactory(), ProfileFactory()
    receiver.answer = lambda r: 500 if r.json["data"]["profile"] == stuck.external_id else 200
    _consent(stuck, True)
    _consent(other, True)
    _consent(stuck, False)
    _consent(other, False)
    drain()

    assert [r.json["data"]["profile"] for r in receiver.got] == [other.external_id] * 2
    assert {
        r.json["data"]["granted"]
        for r in receiver.seen
        if r.json["data"]["profile"] == stuck.external_id
    } == {True}


def test_the_broker_down_during_the_change_loses_nothing(receiver, subscribe, broker_down):
    subscribe(receiver.url)
    profile = ProfileFactory()
    _consent(profile, True)  # its on-commit hints fail: the broker is unreachable
    drain()  # what beat does every second once a worker runs

    assert [r.json["type"] for r in receiver.got] == ["consent.changed"]


def test_the_same_entry_dispatched_twice_makes_one_delivery(receiver, subscribe):
    subscribe(receiver.url)
    _consent(ProfileFactory(), True)
    webhooks_dispatch()
    from compliance.webhooks.models import DispatchCursor

    DispatchCursor.objects.update(last_seq=0)  # as if the cursor's move were lost
    webhooks_dispatch()
    assert Delivery.objects.count() == 1


def test_during_the_overlap_both_secrets_verify_and_after_it_only_the_new(receiver, subscribe):
    subscription, old = subscribe(receiver.url)
    subscription, new = subscription_rotate_secret(subscription=subscription, actor="t")
    subscription_ping(subscription=subscription, actor="t")
    drain()
    request = receiver.got[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)

    Subscription.objects.filter(pk=subscription.pk).update(
        previous_secret_until=timezone.now() - timedelta(seconds=1)
    )
    subscription_ping(subscription=subscription, actor="t")
    drain()
    request = receiver.got[-1]
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_410_gone_disables_the_subscription(receiver, subscribe):
    subscription, _ = subscribe(receiver.url)
    receiver.answer = lambda r: 410
    profile = ProfileFactory()
    _consent(profile, True)
    drain()
    _consent(profile, False)
    drain()

    subscription.refresh_from_db()
    assert subscription.status == "disabled"
    assert len(receiver.seen) == 1
    # a disabled subscription gets no new deliveries
    assert Delivery.objects.filter(subscription=subscription).count() == 1


def test_after_the_retry_budget_the_endpoint_is_failing_in_metrics_and_replay_delivers(
    receiver, subscribe, settings
):
    subscription, _ = subscribe(receiver.url)
    receiver.answer = lambda r: 500
    profile = ProfileFactory()
    _consent(profile, True)
    drain()
    assert Delivery.objects.get().status == "pending"
    with time_machine.travel(
        timezone.now() + timedelta(seconds=settings.WEBHOOKS_RETRY_SECONDS + 60)
    ):
        _due_now()
        drain()
    subscription.refresh_from_db()
    assert subscription.status == "failing"
    assert Delivery.objects.get().status == "failed"
    assert registry.get_sample_value("earshot_webhook_subscriptions_failing") == 1

    receiver.answer = lambda r: 200
    assert subscription_replay(subscription=subscription, actor="officer") == 1
    drain()
    assert [r.json["data"]["granted"] for r in receiver.got] == [True]
    assert registry.get_sample_value("earshot_webhook_subscriptions_failing") == 0


def test_retries_back_off_the_first_within_10_seconds_then_growing(receiver, subscribe):
    subscribe(receiver.url)
    receiver.answer = lambda r: 500
    _consent(ProfileFactory(), True)
    delays = []
    for _ in range(5):
        before = timezone.now()
        drain(rounds=1)
        delivery = Delivery.objects.get()
        delays.append((delivery.next_attempt_at - before).total_seconds())
        _due_now()
    assert delays[0] <= 10
    assert delays[-1] > delays[0]


def test_events_of_other_kinds_are_filtered_by_the_subscription(receiver, subscribe):
    subscribe(receiver.url, ["legal_hold.placed"])
    profile = ProfileFactory()
    _consent(profile, True)
    legal_hold_place(profile=profile, reason="case", case_reference="C-1", actor="t")
    drain()
    assert [(r.json["type"], r.json["data"]["profile"]) for r in receiver.got] == [
        ("legal_hold.placed", profile.external_id)
    ]


def test_a_slow_receiver_delays_nobody_else(receiver, subscribe, settings):
    settings.WEBHOOKS_MAX_IN_FLIGHT = 2
    lock = threading.Lock()
    active, peak, fast_at = [0], [0], []

    def answer(request):
        if request.path == "/slow":
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(1)
            with lock:
                active[0] -= 1
        else:
            fast_at.append(time.monotonic())
        return 200

    receiver.answer = answer
    subscribe(receiver.url.replace("/hook", "/slow"))
    subscribe(receiver.url)
    for _ in range(6):
        _consent(ProfileFactory(), True)
    webhooks_dispatch()
    started = time.monotonic()
    webhooks_send(budget_seconds=1.0, threads=8)

    assert len([r for r in receiver.got if r.path == "/hook"]) == 6
    assert max(fast_at) - started < 1.0  # while the slow one still had seconds to go
    assert peak[0] == 2  # it held no more than its limit of connections at a time
    # the sender returned when its time was up; the slow lanes' unsent ones were released
    assert len([r for r in receiver.got if r.path == "/slow"]) == 2
    webhooks_send(budget_seconds=5.0, threads=8)
    assert len([r for r in receiver.got if r.path == "/slow"]) == 6
    assert peak[0] == 2


def test_changes_from_before_the_first_subscription_are_not_announced(receiver, subscribe):
    _consent(ProfileFactory(), True)
    subscribe(receiver.url)
    _consent(ProfileFactory(), False)
    drain()
    assert [r.json["data"]["granted"] for r in receiver.got] == [False]
