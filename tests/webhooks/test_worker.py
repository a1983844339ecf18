"""A real Celery worker on Redis dispatches the ledger's new entries and delivers them,
as beat's every-second task makes it do."""

import pytest
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from compliance.actions.consent import consent_set
from compliance.webhooks.models import Delivery
from compliance.webhooks.tasks import webhooks_send_task
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.test_worker import _wait_until, start_worker  # noqa: F401 - a fixture

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
