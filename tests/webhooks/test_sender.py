"""The long-lived sender: kept across runs, it still reads each subscription afresh;
one run at a time; deliveries leased as they are dispatched keep each profile's
order; a lane whose lease was taken over writes nothing."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from compliance.actions.consent import consent_set
from compliance.webhooks import sender as sender_module
from compliance.webhooks.models import Delivery, Subscription
from compliance.webhooks.sender import (
    Outcome,
    deliveries_claim,
    lanes_record,
    sender_for,
    webhooks_send,
)
from compliance.webhooks.services import (
    Leasing,
    subscription_disable,
    subscription_rotate_secret,
    subscription_update,
    webhooks_dispatch,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _consent(profile, granted: bool = True) -> None:
    consent_set(
        profile=profile,
        purpose="human_review",
        granted=granted,
        channel="api",
        notice_version="v1",
        actor="test",
    )


def _run() -> int:
    return webhooks_send(budget_seconds=3.0, linger_seconds=0)


def test_one_sender_serves_run_after_run_on_kept_alive_connections(receivers, subscribe):
    receiver = receivers(keep_alive=True)
    subscribe(receiver.url)
    for _ in range(3):
        before = sender_for(8)
        _consent(ProfileFactory())
        webhooks_send(budget_seconds=3.0, linger_seconds=0, threads=8)
        assert sender_for(8) is before
    assert len(receiver.got) == 3
    assert receiver.connections == 1


def test_a_subscription_disabled_between_runs_gets_nothing_more(receivers, subscribe):
    receiver = receivers(keep_alive=True)
    subscription, _ = subscribe(receiver.url)
    _consent(ProfileFactory())
    _run()
    assert len(receiver.got) == 1

    subscription_disable(subscription=subscription, actor="officer")
    _consent(ProfileFactory())
    _run()
    assert len(receiver.seen) == 1


def test_a_secret_rotated_between_runs_signs_the_next_run(receivers, subscribe):
    receiver = receivers(keep_alive=True)
    subscription, old = subscribe(receiver.url)
    _consent(ProfileFactory())
    _run()
    first = receiver.got[-1]
    Webhook(old).verify(first.body, first.headers)

    subscription, new = subscription_rotate_secret(subscription=subscription, actor="officer")
    _consent(ProfileFactory())
    _run()
    during = receiver.got[-1]
    Webhook(new).verify(during.body, during.headers)
    Webhook(old).verify(during.body, during.headers)  # the overlap

    Subscription.objects.filter(pk=subscription.pk).update(
        previous_secret_until=timezone.now() - timedelta(seconds=1)
    )
    _consent(ProfileFactory())
    _run()
    after = receiver.got[-1]
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_a_url_changed_between_runs_is_where_the_next_run_sends(receivers, subscribe):
    before, after = receivers(keep_alive=True), receivers(keep_alive=True)
    subscription, _ = subscribe(before.url)
    _consent(ProfileFactory())
    _run()
    subscription_update(subscription=subscription, changes={"url": after.url}, actor="officer")
    _consent(ProfileFactory())
    _run()
    assert len(before.seen) == 1 and len(after.got) == 1


def _other_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    return psycopg.connect(
        **{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True
    )


def _run_lock_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND (classid::bigint << 32) + objid::bigint = %s",
            [sender_module._RUN_LOCK_KEY],
        )
        return bool(cursor.fetchone()[0])


def test_while_one_run_holds_the_run_lock_another_sends_nothing(receiver, subscribe):
    subscribe(receiver.url)
    _consent(ProfileFactory())
    with _other_connection() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [sender_module._RUN_LOCK_KEY])
        assert _run() == 0
        assert receiver.seen == []
    # that run's connection gone (a worker that died): its lock goes with it
    deadline = time.monotonic() + 10
    while _run_lock_held() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _run() > 0
    assert len(receiver.got) == 1
    assert not _run_lock_held()  # a run releases it when it ends


def test_the_run_lock_is_held_by_a_transaction_not_by_a_session(receiver, subscribe):
    """A session-level lock outlives its transaction, and behind a transaction pooler it
    stays with a server connection that another client gets next (docs/reliability.md,
    "Advisory locks are transaction-scoped only"): the run's lock belongs to an open
    transaction, which ends with the run."""

    def slowly(request):
        time.sleep(0.5)
        return 200

    receiver.answer = slowly
    subscribe(receiver.url)
    _consent(ProfileFactory())
    seen: list[tuple] = []
    stop = threading.Event()

    def watch() -> None:
        with _other_connection() as other:
            while not stop.is_set() and not seen:
                seen.extend(
                    other.execute(
                        "SELECT l.mode, a.xact_start IS NOT NULL FROM pg_locks l"
                        " JOIN pg_stat_activity a ON a.pid = l.pid"
                        " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
                        " (SELECT oid FROM pg_database WHERE datname = current_database())"
                        " AND (l.classid::bigint << 32) + l.objid::bigint = %s",
                        [sender_module._RUN_LOCK_KEY],
                    ).fetchall()
                )
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert _run() > 0
    finally:
        stop.set()
        watcher.join()

    assert seen == [("ExclusiveLock", True)]  # held inside a transaction
    assert not _run_lock_held()


def test_deliveries_are_leased_as_dispatched_only_as_first_of_their_profile_within_room(
    receiver, subscribe
):
    subscription, _ = subscribe(receiver.url)
    first, second = ProfileFactory(), ProfileFactory()
    _consent(first, True)
    _consent(first, False)
    _consent(second, True)
    _consent(ProfileFactory(), True)
    until = timezone.now() + timedelta(seconds=30)

    leasing = Leasing(lanes=lambda pk: (2, 1), prefix="t" * 16, until=until)
    webhooks_dispatch(hint=False, leasing=leasing)
    assert Delivery.objects.count() == 4

    rows = {d.event_id: d for d in Delivery.objects.order_by("id")}
    leased = [d for d in rows.values() if d.lane]
    # the first of `first`, and of `second`; room for two (2 lanes of 1): the fourth waits
    assert [d.ordering_key for d in leased] == [first.external_id, second.external_id]
    assert {d.lane for d in leased} == {
        f"{'t' * 16}{subscription.pk}_0",
        f"{'t' * 16}{subscription.pk}_1",
    }
    assert all(d.lease_until == until and d.attempts == 1 for d in leased)
    assert sorted(pk for pk, *_ in leasing.leased) == sorted(d.pk for d in leased)
    assert leasing.unleased == 2
    # a claim now takes only the fourth (the first's second waits for the first)
    lanes = deliveries_claim(held={})
    assert [item.id for lane in lanes for item in lane.items] == [
        d.pk for d in rows.values() if not d.lane and d.ordering_key not in (first.external_id,)
    ]


def test_a_lane_whose_lease_was_taken_over_writes_nothing(receiver, subscribe):
    subscribe(receiver.url)
    _consent(ProfileFactory())
    webhooks_dispatch(hint=False)
    stale = deliveries_claim(held={})
    assert len(stale) == 1
    # its lease lapsed (a stuck sender): another claim takes the delivery over
    Delivery.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    fresh = deliveries_claim(held={})
    assert [lane.items[0].id for lane in fresh] == [stale[0].items[0].id]

    lanes_record([(stale[0], [Outcome(status_code=500)])])  # the stale sender's answer
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.lane == fresh[0].token

    lanes_record([(fresh[0], [Outcome(status_code=200)])])
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.last_status_code == 200
