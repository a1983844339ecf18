"""Every subscription change and every delivery outcome is in django-auditlog's history
(never a secret, never a body); subscription changes are in the ledger too."""

from datetime import timedelta

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from compliance.actions.consent import consent_set
from compliance.ledger.models import LedgerEntry
from compliance.webhooks.models import Delivery, Subscription
from compliance.webhooks.services import (
    subscription_delete,
    subscription_disable,
    subscription_replay,
    subscription_rotate_secret,
    subscription_update,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory

from .conftest import drain

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _history(model, pk) -> list[dict]:
    return [
        entry.changes_dict
        for entry in LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_pk=str(pk)
        ).order_by("id")
    ]


def _consent(profile, granted: bool) -> None:
    consent_set(
        profile=profile,
        purpose="human_review",
        granted=granted,
        channel="api",
        notice_version="v1",
        actor="test",
    )


def test_each_subscription_change_is_in_the_history_and_the_ledger_without_its_secret(
    receiver, subscribe
):
    subscription, secret = subscribe(receiver.url)
    subscription_update(subscription=subscription, changes={"description": "vendor"}, actor="o")
    subscription_rotate_secret(subscription=subscription, actor="o")
    subscription_disable(subscription=subscription, actor="o")
    subscription_replay(subscription=subscription, actor="o")
    subscription_delete(subscription=subscription, actor="o")

    history = _history(Subscription, subscription.pk)
    assert len(history) == 6  # created, then five changes
    assert history[1]["description"] == ["", "vendor"]
    assert "previous_secret_until" in history[2]
    assert [h["status"][1] for h in history[3:]] == ["disabled", "active", "deleted"]
    text = str(history)
    assert secret not in text and "secret_encrypted" not in text
    assert [e.kind for e in LedgerEntry.objects.filter(subject__startswith="webhook:")] == [
        "webhook_subscription.created",
        "webhook_subscription.updated",
        "webhook_subscription.secret_rotated",
        "webhook_subscription.status_changed",
        "webhook_subscription.status_changed",
        "webhook_subscription.status_changed",
    ]


def test_each_delivery_outcome_is_in_the_history(receiver, subscribe, settings):
    subscription, _ = subscribe(receiver.url)
    answers = iter([500, 200])
    receiver.answer = lambda r: next(answers, 200)
    _consent(ProfileFactory(), True)

    drain(rounds=1)  # 500: retried later
    delivery = Delivery.objects.get()
    retried = _history(Delivery, delivery.pk)
    Delivery.objects.update(next_attempt_at=timezone.now())
    drain()  # 200: delivered

    assert retried[-1]["status"] == ["pending", "pending"]
    assert retried[-1]["last_status_code"] == ["None", "500"]
    assert retried[-1]["last_error"] == ["None", "http_500"]
    history = _history(Delivery, delivery.pk)
    assert history[-1]["status"] == ["pending", "delivered"]
    assert len(history) == 2
    assert all("body" not in h for h in history)

    # out of retries: failed; an officer's replay is in the history too
    receiver.answer = lambda r: 503
    _consent(ProfileFactory(), False)
    drain(rounds=1)
    later = timezone.now() + timedelta(seconds=settings.WEBHOOKS_RETRY_SECONDS + 60)
    with time_machine.travel(later):
        Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())
        drain(rounds=1)
    second = Delivery.objects.get(status="failed")
    subscription_replay(subscription=subscription, actor="officer")
    statuses = [h["status"] for h in _history(Delivery, second.pk)]
    assert statuses[-2:] == [["pending", "failed"], ["failed", "pending"]]
