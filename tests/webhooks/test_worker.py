"""A real Celery worker on Redis dispatches the ledger's new entries and delivers them,
as beat's every-second task makes it do; one killed mid-run loses nothing."""

import time

import pytest
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from compliance.actions.consent import consent_set
from compliance.webhooks.models import Delivery
from compliance.webhooks.sender import webhooks_send
from compliance.webhooks.tasks import webhooks_send_task
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.test_worker import _wait_until, start_worker  # noqa: F401 - a fixture

from .conftest import Received

REDIS = settings.CELERY_BROKER_URL.startswith("redis://")

pytestmark = [
    postgres_only(),
    pytest.mark.skipif(not REDIS, reason="needs a Redis broker (set CELERY_BROKER_URL)"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
]


def test_a_worker_delivers_every_change_in_commit_order_per_profile(
    receiver,
    subscribe,
    start_worker,  # noqa: F811 - the imported fixture
):
    from config.celery import app

    _, secret = subscribe(receiver.url, ["consent.changed"])
    first, second = ProfileFactory(), ProfileFactory()
    changes = [(first, True), (second, True), (first, False), (second, False), (first, True)]
    for profile, granted in changes:
        consent_set(
            profile=profile,
            purpose="model_training",
            granted=granted,
            channel="app",
            notice_version="v1",
            actor="test",
        )
    app.control.purge()  # nothing stale from other runs on the default queue
    worker = start_worker(
        "celery", WEBHOOKS_ALLOW_HTTP="true", WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true"
    )
    webhooks_send_task.delay()  # what beat sends every second

    assert _wait_until(lambda: len(receiver.got) == len(changes), 60), receiver.seen
    # The worker records each outcome after the receiver answered: let it, before it stops.
    assert _wait_until(
        lambda: set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}, 30
    ), list(Delivery.objects.values_list("status", flat=True))
    worker.terminate()
    for profile in (first, second):
        expected = [g for p, g in changes if p == profile]
        got = [
            Webhook(secret).verify(r.body, r.headers)["data"]["granted"]
            for r in receiver.got
            if r.json["data"]["profile"] == profile.external_id
        ]
        assert got == expected
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_worker_killed_mid_run_loses_nothing_and_the_next_run_takes_over_after_the_lease(
    receiver,
    subscribe,
    start_worker,  # noqa: F811 - the imported fixture
    settings,
):
    """Killed (SIGKILL) with lanes in flight and leased: its run lock goes with its
    connection, its leases lapse, and the next run sends everything, each profile's
    first receipts in commit order (a request the receiver had answered may come twice,
    with the same webhook-id)."""
    from config.celery import app

    settings.WEBHOOKS_TIMEOUT_SECONDS = 2.0  # as the worker's: leases of 17 s

    def slowly(request):
        time.sleep(0.3)
        return 200

    receiver.answer = slowly
    subscribe(receiver.url, ["consent.changed"])
    profiles = [ProfileFactory() for _ in range(3)]
    changes = [(p, granted) for granted in (True, False, True, False) for p in profiles]
    for profile, granted in changes:
        consent_set(
            profile=profile,
            purpose="model_training",
            granted=granted,
            channel="app",
            notice_version="v1",
            actor="test",
        )
    app.control.purge()
    worker = start_worker(
        "celery",
        WEBHOOKS_ALLOW_HTTP="true",
        WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
        WEBHOOKS_TIMEOUT_SECONDS="2",
    )
    webhooks_send_task.delay()
    assert _wait_until(lambda: len(receiver.seen) >= 2, 60), receiver.seen
    worker.kill()
    worker.wait(10)
    leased = dict(
        Delivery.objects.filter(status="pending", lease_until__gt=timezone.now()).values_list(
            "pk", "lease_until"
        )
    )
    assert leased  # it died mid-run, holding deliveries

    def everything_delivered() -> bool:
        webhooks_send(budget_seconds=2.0, linger_seconds=0)
        return set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}

    assert _wait_until(everything_delivered, 60), list(
        Delivery.objects.values_list("event_id", "status", "lease_until")
    )
    # what it held went out again only once its lease lapsed
    for pk, delivered_at in Delivery.objects.filter(pk__in=leased).values_list(
        "pk", "delivered_at"
    ):
        assert delivered_at >= leased[pk]
    firsts: dict[str, Received] = {}
    for request in receiver.got:
        firsts.setdefault(request.headers["webhook-id"], request)
    assert len(firsts) == len(changes)
    for profile in profiles:
        got = [
            r.json["data"]["granted"]
            for r in firsts.values()
            if r.json["data"]["profile"] == profile.external_id
        ]
        assert got == [True, False, True, False]
