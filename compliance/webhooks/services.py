"""Webhook subscriptions and the dispatcher (ledger -> deliveries); the sender is in
sender.py.

Transactions and locks. Subscription changes commit with their ledger entry. The
dispatcher locks its one cursor row (SKIP LOCKED: a second dispatcher simply returns),
reads ledger entries after it, creates the deliveries and moves the cursor in the same
transaction, so an entry becomes deliveries exactly once, whatever crashes. It locks no
domain row. Lock order within this app: cursor -> subscription -> delivery; no path
here locks a row of another app.
"""

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from compliance.core.audit import audit_bulk_change
from compliance.core.enqueue import enqueue_on_commit
from compliance.core.errors import ApplicationError, Conflict, FieldError
from compliance.core.sql import pg_array
from compliance.ledger.models import LedgerEntry
from compliance.ledger.services import ledger_append

from .events import Event, EventTypes, events_from_entry
from .models import (
    Confirmation,
    Delivery,
    DeliveryStatus,
    DispatchCursor,
    Subscription,
    SubscriptionStatus,
)
from .signing import secret_decrypt, secret_encrypt, secret_new
from .targets import target_check

logger = logging.getLogger(__name__)


class SubscriptionChanges(TypedDict, total=False):
    """A subscription's changes as the edge parsed them; `events` through
    `event_types_parse`."""

    url: str
    events: EventTypes
    description: str
    holds_copies: bool


@transaction.atomic
def subscription_create(
    *, url: str, events: EventTypes, description: str, holds_copies: bool, actor: str
) -> tuple[Subscription, str]:
    """A new subscription and its secret (shown to the caller once)."""
    target_check(url)
    # The first subscription starts the dispatcher at the ledger's end: the history from
    # before anyone subscribed is not announced.
    DispatchCursor.objects.get_or_create(
        pk=1,
        defaults={
            "last_seq": LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
            or 0
        },
    )
    secret = secret_new()
    subscription = Subscription.objects.create(
        external_id=f"wh_{secrets.token_hex(10)}",
        url=url,
        events=events,
        description=description,
        holds_copies=holds_copies,
        secret_encrypted=secret_encrypt(secret),
        created_by=actor,
    )
    ledger_append(
        kind="webhook_subscription.created",
        subject=f"webhook:{subscription.external_id}",
        actor=actor,
        payload={"url": url, "events": events, "holds_copies": holds_copies},
    )
    return subscription, secret


@transaction.atomic
def subscription_update(
    *, subscription: Subscription, changes: SubscriptionChanges, actor: str
) -> Subscription:
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if "url" in changes:
        target_check(changes["url"])
    changed = {k: v for k, v in changes.items() if getattr(locked, k) != v}
    if not changed:
        return locked
    for name, value in changed.items():
        setattr(locked, name, value)
    locked.save()
    ledger_append(
        kind="webhook_subscription.updated",
        subject=f"webhook:{locked.external_id}",
        actor=actor,
        payload=changed,
    )
    return locked


@transaction.atomic
def subscription_delete(*, subscription: Subscription, actor: str) -> None:
    """Stops every delivery to it; the subscription and its log stay as history."""
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.status == SubscriptionStatus.DELETED:
        return
    _status_set(locked, SubscriptionStatus.DELETED, reason="deleted", actor=actor)


@transaction.atomic
def subscription_disable(*, subscription: Subscription, actor: str) -> Subscription:
    """An officer stops deliveries to it (it collects no new events meanwhile); a replay
    makes it active again and sends what failed."""
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.status in (SubscriptionStatus.DISABLED, SubscriptionStatus.DELETED):
        return locked
    _status_set(locked, SubscriptionStatus.DISABLED, reason="disabled by an officer", actor=actor)
    return locked


@transaction.atomic
def subscription_rotate_secret(
    *, subscription: Subscription, actor: str
) -> tuple[Subscription, str]:
    """A new secret; the current one keeps signing beside it for the overlap period."""
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    secret = secret_new()
    locked.previous_secret_encrypted = locked.secret_encrypted
    locked.previous_secret_until = timezone.now() + timedelta(
        seconds=settings.WEBHOOKS_SECRET_OVERLAP_SECONDS
    )
    locked.secret_encrypted = secret_encrypt(secret)
    locked.save()
    ledger_append(
        kind="webhook_subscription.secret_rotated",
        subject=f"webhook:{locked.external_id}",
        actor=actor,
        payload={"previous_until": locked.previous_secret_until},
    )
    return locked, secret


def _status_set(locked: Subscription, status: str, *, reason: str, actor: str) -> None:
    previous = locked.status
    locked.status = status
    locked.status_reason = reason
    locked.status_changed_at = timezone.now()
    locked.save()
    ledger_append(
        kind="webhook_subscription.status_changed",
        subject=f"webhook:{locked.external_id}",
        actor=actor,
        payload={"from": previous, "to": status, "reason": reason},
    )
    logger.info("webhooks.status sub=%s %s->%s (%s)", locked.external_id, previous, status, reason)


def _body(event_id: str, event_type: str, data: dict[str, Any], at: datetime) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": at.isoformat(), "data": data, "id": event_id},
        separators=(",", ":"),
        sort_keys=True,
    )


@transaction.atomic
def subscription_ping(*, subscription: Subscription, actor: str) -> Delivery:
    """A `webhook.ping` for this subscription alone, sent like any event."""
    now = timezone.now()
    event_id = f"evt_ping_{secrets.token_hex(8)}"
    delivery = Delivery.objects.create(
        subscription=subscription,
        event_id=event_id,
        event_type="webhook.ping",
        ordering_key=event_id,  # orders with nothing
        body=_body(event_id, "webhook.ping", {"subscription": subscription.external_id}, now),
        next_attempt_at=now,
        retry_from=now,
        created_at=now,
    )
    _send_hint()
    return delivery


@transaction.atomic
def subscription_replay(*, subscription: Subscription, actor: str) -> int:
    """Failed deliveries go back to pending, in their order, and the subscription back to
    active (unless deleted); how many."""
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.status == SubscriptionStatus.DELETED:
        raise Conflict("webhook_deleted", "This subscription was deleted.")
    now = timezone.now()
    ids = list(
        Delivery.objects.filter(subscription=locked, status=DeliveryStatus.FAILED).values_list(
            "pk", flat=True
        )
    )
    replayed = Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, retry_from=now, lease_until=None
    )
    audit_bulk_change(
        model=Delivery,
        pks=ids,
        changes={
            "status": (DeliveryStatus.FAILED, DeliveryStatus.PENDING),
            "next_attempt_at": (None, now),
        },
        actor=actor,
    )
    if locked.status != SubscriptionStatus.ACTIVE:
        _status_set(locked, SubscriptionStatus.ACTIVE, reason="replayed", actor=actor)
    _send_hint()
    return replayed


def _send_hint() -> None:
    enqueue_on_commit("webhooks.send")


# --- the dispatcher ---------------------------------------------------------------------


@dataclass
class Leasing:
    """The sender's run asks the dispatcher to lease the deliveries it makes, as it
    makes them, so that they go out without a claim of their own: per active
    subscription, `lanes(subscription id)` gives how many lanes it may fill and their
    size. A delivery is leased only when it is the oldest undelivered one of its
    subscription and profile (the claim's rule). After the dispatch, `leased` holds
    (id, subscription, attempts, event id, body, lane) of each leased delivery,
    `subscriptions` the subscriptions they belong to, and `unleased` how many new
    deliveries of active subscriptions were left for a claim."""

    lanes: Callable[[int], tuple[int, int]]
    prefix: str
    until: datetime
    leased: list[tuple[int, int, int, str, str, str]] = field(default_factory=list)
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    unleased: int = 0


def webhooks_dispatch(
    *, limit: int = 1000, hint: bool = True, leasing: Leasing | None = None
) -> int:
    """Turn the ledger entries after the cursor into deliveries; how many entries were
    read. Returns 0 at once when another dispatcher holds the cursor. With `hint`, a
    `webhooks.send` is enqueued after the commit when deliveries were made (the sender's
    own loop, which dispatches as it goes, asks for none); with `leasing` (PostgreSQL),
    the new deliveries are leased to the sender's run as `leasing` says.

    First one read, outside any transaction, of whether the ledger has anything after
    the cursor: the sender asks many times a second, and the locking read of the cursor
    row writes to it."""
    after = Coalesce(
        Subquery(DispatchCursor.objects.filter(pk=1).values("last_seq")[:1]), Value(-1)
    )
    if not LedgerEntry.objects.filter(seq__gt=after).exists():
        return 0
    return _dispatch(limit=limit, hint=hint, leasing=leasing)


@transaction.atomic
def _dispatch(*, limit: int, hint: bool, leasing: Leasing | None) -> int:
    cursor = DispatchCursor.objects.select_for_update(skip_locked=True).filter(pk=1).first()
    if cursor is None:
        if DispatchCursor.objects.filter(pk=1).exists():
            return 0  # another dispatcher is at work
        DispatchCursor.objects.get_or_create(pk=1)
        cursor = DispatchCursor.objects.select_for_update().get(pk=1)
    subscriptions = list(Subscription.objects.filter(status__in=_LISTENING))
    # Only the kinds that someone listens for are converted: with nobody listening for
    # purges, a purge batch's parts are never read.
    kinds = _listened_kinds(subscriptions)
    # One read of the entries after the cursor (those of other kinds come along, and are
    # skipped here): the seqs first and then the entries cost a round trip more.
    entries = list(
        LedgerEntry.objects.filter(seq__gt=cursor.last_seq)
        .order_by("seq")
        .only("seq", "kind", "subject", "payload", "hash", "created_at")[:limit]
    )
    if not entries:
        return 0
    now = timezone.now()
    events: list[tuple[str, str, int, str, str]] = []
    pairs: list[tuple[int, int]] = []  # (index in events, subscription)
    for entry in entries:
        if entry.kind not in kinds:
            continue
        for event in _events(entry):
            listeners = [s.pk for s in subscriptions if s.wants(event.type)]
            if not listeners:
                continue
            body = _body(event.id, event.type, event.data, entry.created_at)
            events.append((event.id, event.type, entry.seq, event.profile, body))
            pairs.extend((len(events), pk) for pk in listeners)
    if pairs:
        if leasing is not None and connection.vendor == "postgresql":
            active = [s for s in subscriptions if s.status == SubscriptionStatus.ACTIVE]
            leasing.subscriptions = {s.pk: s for s in active}
            _deliveries_insert_leased(events, pairs, now, leasing)
        else:
            _deliveries_insert(events, pairs, now)
    cursor.last_seq = entries[-1].seq
    cursor.save(update_fields=["last_seq", "updated_at"])
    if pairs and hint:
        _send_hint()
    return len(entries)


def _deliveries_insert(
    events: list[tuple[str, str, int, str, str]], pairs: list[tuple[int, int]], now: datetime
) -> None:
    """One delivery per (event, subscription) pair, ids in the pairs' (ledger) order; one
    already there (a dispatcher that ran twice) stays as it is.

    On PostgreSQL one INSERT ... SELECT, each event's body sent once however many
    subscribers get it: building a model object per delivery and the arrays of
    bulk_create's UNNEST (a body per delivery, escaped) were most of the dispatcher's
    time (bench/webhooks.py). The events go as one JSON document, not as text arrays:
    psycopg quotes a text array's elements in Python, a regular expression per body,
    half the dispatcher's time; a single string it escapes in C."""
    if connection.vendor != "postgresql":
        Delivery.objects.bulk_create(
            [
                Delivery(
                    subscription_id=pk,
                    event_id=events[i - 1][0],
                    event_type=events[i - 1][1],
                    seq=events[i - 1][2],
                    ordering_key=events[i - 1][3],
                    body=events[i - 1][4],
                    next_attempt_at=now,
                    retry_from=now,
                    created_at=now,
                )
                for i, pk in pairs
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (subscription_id, event_id, event_type, seq,
                ordering_key, body, status, attempts, next_attempt_at, lane, retry_from,
                last_error, created_at)
            SELECT p.subscription, e.v->>0, e.v->>1, (e.v->>2)::bigint, e.v->>3, e.v->>4,
                %s, 0, %s, '', %s, '', %s
            FROM unnest(%s::int[], %s::bigint[]) WITH ORDINALITY AS p(i, subscription, n)
            JOIN json_array_elements(%s::json) WITH ORDINALITY AS e(v, i) ON e.i = p.i
            ORDER BY p.n
            ON CONFLICT (subscription_id, event_id) DO NOTHING
            """,
            [
                DeliveryStatus.PENDING,
                now,
                now,
                now,
                pg_array(i for i, _ in pairs),
                pg_array(pk for _, pk in pairs),
                json.dumps(events, separators=(",", ":")),
            ],
        )


# The insert of _deliveries_insert, each delivery also leased when it is the first of
# its subscription and profile in the batch, no earlier undelivered one of them is in
# the table (one probe of webhooks_delivery_order), and its subscription has room: the
# first `lanes * size` of those per subscription, dealt round-robin to `lanes` lanes.
_INSERT_LEASED = """
WITH e AS (
    SELECT v->>0 AS event_id, v->>1 AS event_type, (v->>2)::bigint AS seq,
        v->>3 AS ordering_key, v->>4 AS body, i
    FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS x(v, i)
), p AS (
    SELECT p.subscription, p.n, e.event_id, e.event_type, e.seq, e.ordering_key, e.body,
        q.lanes, q.size
    FROM unnest(%(pair_events)s::int[], %(pair_subscriptions)s::bigint[])
        WITH ORDINALITY AS p(i, subscription, n)
    JOIN e ON e.i = p.i
    LEFT JOIN unnest(%(quota_subscriptions)s::bigint[], %(quota_lanes)s::int[],
        %(quota_sizes)s::int[]) AS q(subscription, lanes, size)
        ON q.subscription = p.subscription
), heads AS (
    SELECT p.*, coalesce(p.lanes > 0
        AND row_number() OVER (PARTITION BY p.subscription, p.ordering_key ORDER BY p.n) = 1
        AND NOT EXISTS (
            SELECT 1 FROM webhooks_delivery h
            WHERE h.subscription_id = p.subscription AND h.ordering_key = p.ordering_key
              AND h.status IN ('pending', 'failed')), false) AS head
    FROM p
), ranked AS (
    SELECT heads.*,
        row_number() OVER (PARTITION BY subscription, head ORDER BY n) - 1 AS k
    FROM heads
), leased AS (
    SELECT ranked.*, head AND k < lanes * size AS take FROM ranked
)
INSERT INTO webhooks_delivery (subscription_id, event_id, event_type, seq, ordering_key,
    body, status, attempts, next_attempt_at, lane, retry_from, last_error, created_at,
    lease_until, last_attempt_at)
SELECT subscription, event_id, event_type, seq, ordering_key, body, %(pending)s,
    CASE WHEN take THEN 1 ELSE 0 END, %(now)s,
    CASE WHEN take THEN %(prefix)s || subscription::text || '_' || (k %% lanes)::text
        ELSE '' END,
    %(now)s, '', %(now)s,
    CASE WHEN take THEN %(until)s::timestamptz END,
    CASE WHEN take THEN %(now)s::timestamptz END
FROM leased
ORDER BY n
ON CONFLICT (subscription_id, event_id) DO NOTHING
RETURNING id, subscription_id, attempts, event_id,
    CASE WHEN lane <> '' THEN body END, lane
"""


def _deliveries_insert_leased(
    events: list[tuple[str, str, int, str, str]],
    pairs: list[tuple[int, int]],
    now: datetime,
    leasing: Leasing,
) -> None:
    quota = {pk: leasing.lanes(pk) for pk in leasing.subscriptions}
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_LEASED,
            {
                "events": json.dumps(events, separators=(",", ":")),
                "pair_events": pg_array(i for i, _ in pairs),
                "pair_subscriptions": pg_array(pk for _, pk in pairs),
                "quota_subscriptions": pg_array(quota),
                "quota_lanes": pg_array(lanes for lanes, _ in quota.values()),
                "quota_sizes": pg_array(size for _, size in quota.values()),
                "pending": DeliveryStatus.PENDING,
                "now": now,
                "prefix": leasing.prefix,
                "until": leasing.until,
            },
        )
        for pk, subscription_id, attempts, event_id, body, lane in cursor.fetchall():
            if lane:
                leasing.leased.append((pk, subscription_id, attempts, event_id, body, lane))
            elif subscription_id in leasing.subscriptions:
                leasing.unleased += 1


# A failing subscription still collects its events (they are replayed in order later);
# a disabled (410) or deleted one does not.
_LISTENING = [SubscriptionStatus.ACTIVE, SubscriptionStatus.FAILING]


def _listened_kinds(subscriptions: list[Subscription]) -> set[str]:
    """The ledger kinds whose event type one of `subscriptions` wants."""
    from .events import CONVERTERS

    return {
        kind
        for kind, (event_type, _) in CONVERTERS.items()
        if any(s.wants(event_type) for s in subscriptions)
    }


def _events(entry: LedgerEntry) -> list[Event]:
    events = events_from_entry(entry)
    if entry.kind == "legal_hold.released":
        # the entry names only the hold; who it covered is on the hold's row
        from compliance.retention.models import LegalHold

        hold = (
            LegalHold.objects.filter(pk=entry.subject.split(":", 1)[-1])
            .values("account__external_id", "profile__external_id")
            .first()
        )
        if hold and events:
            profile = hold["profile__external_id"] or ""
            data = {
                **events[0].data,
                "account": hold["account__external_id"],
                "profile": profile or None,
            }
            events = [Event(id=events[0].id, type=events[0].type, profile=profile, data=data)]
    return events


# --- the sender's status changes -------------------------------------------------------


@transaction.atomic
def subscription_mark(*, subscription_id: int, status: str, reason: str) -> None:
    """The sender's verdict on an active subscription: `disabled` (its receiver answered
    410 Gone) or `failing` (a delivery ran out of retries)."""
    locked = (
        Subscription.objects.select_for_update()
        .filter(pk=subscription_id, status=SubscriptionStatus.ACTIVE)
        .first()
    )
    if locked is not None:
        _status_set(locked, status, reason=reason, actor="webhooks")


# --- confirmations ----------------------------------------------------------------------


def subscription_secrets(subscription: Subscription, *, now: datetime | None = None) -> list[str]:
    """The secrets that sign for it now: the current one, and the previous during the
    overlap after a rotation."""
    return secrets_for(
        subscription.secret_encrypted,
        subscription.previous_secret_encrypted,
        subscription.previous_secret_until,
        now=now or timezone.now(),
    )


def secrets_for(
    secret_encrypted: str,
    previous_encrypted: str,
    previous_until: datetime | None,
    *,
    now: datetime,
) -> list[str]:
    """`subscription_secrets` from the subscription's columns (the sender's claim reads
    them with the deliveries)."""
    keys = [secret_decrypt(secret_encrypted)]
    if previous_encrypted and previous_until and previous_until > now:
        keys.append(secret_decrypt(previous_encrypted))
    return keys


@transaction.atomic
def confirmations_record(
    *, subscription: Subscription, event_ids: list[str], via: str, actor: str
) -> int:
    """The subscriber deleted what these events told it of; how many are new. Only
    events delivered to it can be confirmed; confirming again changes nothing."""
    known = set(
        Delivery.objects.filter(subscription=subscription, event_id__in=event_ids).values_list(
            "event_id", flat=True
        )
    )
    unknown = sorted(set(event_ids) - known)
    if unknown:
        raise ApplicationError(
            "webhook_event_unknown",
            "These events were never sent to this subscription.",
            fields={
                "event_ids": [
                    FieldError("unknown", f"Event {event_id!r} was never sent here.")
                    for event_id in unknown[:20]
                ]
            },
        )
    already = set(
        Confirmation.objects.filter(subscription=subscription, event_id__in=known).values_list(
            "event_id", flat=True
        )
    )
    new = sorted(known - already)
    if not new:
        return 0
    now = timezone.now()
    Confirmation.objects.bulk_create(
        [
            Confirmation(subscription=subscription, event_id=e, confirmed_at=now, via=via)
            for e in new
        ],
        ignore_conflicts=True,  # a concurrent confirmation of the same event
    )
    ledger_append(
        kind="webhook.confirmed",
        subject=f"webhook:{subscription.external_id}",
        actor=actor,
        payload={"event_ids": new, "via": via},
    )
    return len(new)
