"""Webhook subscriptions, the dispatcher (ledger -> deliveries) and the sender.

Transactions and locks. Subscription changes commit with their ledger entry. The
dispatcher locks its one cursor row (SKIP LOCKED: a second dispatcher simply returns),
reads ledger entries after it, creates the deliveries and moves the cursor in the same
transaction, so an entry becomes deliveries exactly once, whatever crashes. It locks no
domain row. The sender claims due deliveries under a transaction-scoped advisory lock
(so the per-subscription limit on deliveries in flight is counted by one claimer at a
time), leases them and commits; the HTTP requests run outside any transaction; each
outcome is written only where the delivery still carries the attempt number the sender
claimed (a sender whose lease lapsed writes nothing). Lock order within this app:
cursor -> subscription -> delivery; no path here locks a row of another app.

At least once: a delivery stays pending until a 2xx is recorded for it, so a crash
between the receiver's 2xx and our write sends it again with the same `webhook-id`.
"""

import json
import logging
import random
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

import urllib3
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone

from compliance.core.audit import audit_bulk_change
from compliance.core.enqueue import enqueue_on_commit
from compliance.core.errors import ApplicationError, Conflict, FieldError
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
from .signing import secret_decrypt, secret_encrypt, secret_new, signature_header
from .targets import Target, target_check

logger = logging.getLogger(__name__)

_CLAIM_LOCK_KEY = 0x4541_5253_5748_4B  # pg_advisory_xact_lock key of the sender's claim
RESPONSE_BODY_LIMIT = 1024  # bytes of a receiver's answer we read (and never store)


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


@transaction.atomic
def webhooks_dispatch(*, limit: int = 1000) -> int:
    """Turn the ledger entries after the cursor into deliveries; how many entries were
    read. Returns 0 at once when another dispatcher holds the cursor."""
    cursor = DispatchCursor.objects.select_for_update(skip_locked=True).filter(pk=1).first()
    if cursor is None:
        if DispatchCursor.objects.filter(pk=1).exists():
            return 0  # another dispatcher is at work
        DispatchCursor.objects.get_or_create(pk=1)
        cursor = DispatchCursor.objects.select_for_update().get(pk=1)
    seqs = list(
        LedgerEntry.objects.filter(seq__gt=cursor.last_seq)
        .order_by("seq")
        .values_list("seq", flat=True)[:limit]
    )
    if not seqs:
        return 0
    entries = LedgerEntry.objects.filter(
        seq__gte=seqs[0], seq__lte=seqs[-1], kind__in=_dispatched_kinds()
    ).order_by("seq")
    subscriptions = list(Subscription.objects.filter(status__in=_LISTENING))
    now = timezone.now()
    events: list[tuple[str, str, int, str, str]] = []
    pairs: list[tuple[int, int]] = []  # (index in events, subscription)
    for entry in entries:
        for event in _events(entry):
            listeners = [s.pk for s in subscriptions if s.wants(event.type)]
            if not listeners:
                continue
            body = _body(event.id, event.type, event.data, entry.created_at)
            events.append((event.id, event.type, entry.seq, event.profile, body))
            pairs.extend((len(events), pk) for pk in listeners)
    if pairs:
        _deliveries_insert(events, pairs, now)
    cursor.last_seq = seqs[-1]
    cursor.save(update_fields=["last_seq", "updated_at"])
    if pairs:
        _send_hint()
    return len(seqs)


def _deliveries_insert(
    events: list[tuple[str, str, int, str, str]], pairs: list[tuple[int, int]], now: datetime
) -> None:
    """One delivery per (event, subscription) pair, ids in the pairs' (ledger) order; one
    already there (a dispatcher that ran twice) stays as it is.

    On PostgreSQL one INSERT ... SELECT from arrays, each event's body sent once however
    many subscribers get it: building a model object per delivery and the arrays of
    bulk_create's UNNEST (a body per delivery, escaped) were most of the dispatcher's
    time (bench/webhooks.py)."""
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
    columns = list(zip(*events, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (subscription_id, event_id, event_type, seq,
                ordering_key, body, status, attempts, next_attempt_at, lane, retry_from,
                last_error, created_at)
            SELECT p.subscription, e.event_id, e.event_type, e.seq, e.ordering_key, e.body,
                %s, 0, %s, '', %s, '', %s
            FROM unnest(%s::int[], %s::bigint[]) WITH ORDINALITY AS p(i, subscription, n)
            JOIN unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[])
                WITH ORDINALITY AS e(event_id, event_type, seq, ordering_key, body, i)
                ON e.i = p.i
            ORDER BY p.n
            ON CONFLICT (subscription_id, event_id) DO NOTHING
            """,
            [
                DeliveryStatus.PENDING,
                now,
                now,
                now,
                [i for i, _ in pairs],
                [pk for _, pk in pairs],
                *(list(column) for column in columns),
            ],
        )


# A failing subscription still collects its events (they are replayed in order later);
# a disabled (410) or deleted one does not.
_LISTENING = [SubscriptionStatus.ACTIVE, SubscriptionStatus.FAILING]


def _dispatched_kinds() -> list[str]:
    from .events import CONVERTERS

    return list(CONVERTERS)


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


# --- the sender -------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    attempt: int
    subscription_id: int
    url: str
    secrets: list[str]
    event_id: str
    body: str
    lane: str = ""  # the claim's token: a lane taken over since writes nothing


@dataclass
class Outcome:
    status_code: int | None = None
    error: str = ""


def _lease() -> timedelta:
    return timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS + 15)


@transaction.atomic
def deliveries_claim(*, lanes: int, now: datetime | None = None) -> list[list[Claimed]]:
    """Up to `lanes` lanes of due deliveries, leased to the caller: each lane holds up to
    WEBHOOKS_LANE_SIZE deliveries of one subscription, each with no earlier undelivered
    one of the same subscription and profile (so a lane never holds two of a profile);
    a subscription gets lanes only while it has fewer than WEBHOOKS_MAX_IN_FLIGHT."""
    if lanes <= 0:
        return []
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK_KEY])
    busy = dict(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, lease_until__gt=now)
        .values("subscription_id")
        .annotate(n=Count("lane", distinct=True))
        .values_list("subscription_id", "n")
    )
    subscriptions = list(Subscription.objects.filter(status=SubscriptionStatus.ACTIVE))
    random.shuffle(subscriptions)  # no subscription first every time
    cap, size = settings.WEBHOOKS_MAX_IN_FLIGHT, settings.WEBHOOKS_LANE_SIZE
    lease_until = now + _lease()
    claimed: list[list[Claimed]] = []
    for subscription in subscriptions:
        free = min(cap - busy.get(subscription.pk, 0), lanes - len(claimed))
        if free <= 0:
            continue
        rows = _due_heads(subscription.pk, now, free * size)
        if not rows:
            continue
        keys = subscription_secrets(subscription, now=now)
        count = min(free, len(rows))
        tokens = [secrets.token_hex(8) for _ in range(count)]
        # spread: a slow receiver's few go out in parallel; one update for all lanes
        _lease_rows([(row[0], tokens[n % count]) for n, row in enumerate(rows)], lease_until, now)
        claimed += [
            [
                Claimed(
                    id=pk,
                    attempt=attempts + 1,
                    subscription_id=subscription.pk,
                    url=subscription.url,
                    secrets=keys,
                    event_id=event_id,
                    body=body,
                    lane=token,
                )
                for pk, attempts, event_id, body in rows[n::count]
            ]
            for n, token in enumerate(tokens)
        ]
    return claimed


def _lease_rows(lanes: list[tuple[int, str]], lease_until: datetime, now: datetime) -> None:
    """Lease the claimed rows, each to its lane: (id, lane token) each. On PostgreSQL one
    UPDATE ... FROM unnest(ids, tokens): a CASE with an `IN` list per lane cost the
    claiming thread more in building the query than the database in running it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE webhooks_delivery AS d
                SET lease_until = %s, attempts = d.attempts + 1, last_attempt_at = %s,
                    lane = u.lane
                FROM unnest(%s::bigint[], %s::text[]) AS u(id, lane)
                WHERE d.id = u.id
                """,
                [lease_until, now, [pk for pk, _ in lanes], [token for _, token in lanes]],
            )
        return
    for token in {token for _, token in lanes}:
        Delivery.objects.filter(pk__in=[pk for pk, t in lanes if t == token]).update(
            lease_until=lease_until, attempts=F("attempts") + 1, last_attempt_at=now, lane=token
        )


def _due_heads(subscription_id: int, now: datetime, limit: int) -> list[tuple[int, int, str, str]]:
    """Up to `limit` due, unleased deliveries of the subscription, oldest first, each the
    oldest undelivered one of its profile (only it may go now), locked (SKIP LOCKED):
    (id, attempts, event_id, body) each.

    One bounded read: the subscription's pending rows in id order (index
    webhooks_delivery_pending), each kept only when no earlier undelivered one of its
    profile exists, stopping at `limit`. Grouping the whole backlog per profile on every
    claim was most of the sender's time. The check is a scalar subquery (its profile's
    lowest undelivered id, one probe of webhooks_delivery_order), not NOT EXISTS: on a
    freshly filled table without statistics the planner ran the anti-join with only the
    subscription as the index condition, 13 s a claim at 3,000 deliveries."""
    head = (
        Delivery.objects.filter(
            subscription_id=OuterRef("subscription_id"),
            ordering_key=OuterRef("ordering_key"),
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED],
        )
        .order_by("id")
        .values("id")[:1]
    )
    return list(
        Delivery.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now),
            subscription_id=subscription_id,
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
            id=Subquery(head),
        )
        .order_by("id")
        .select_for_update(skip_locked=True)
        .values_list("id", "attempts", "event_id", "body")[:limit]
    )


@dataclass
class Pools:
    """Keep-alive connection pools per checked address and host, shared by the sender's
    threads for one run (a pool holds at most WEBHOOKS_MAX_IN_FLIGHT connections)."""

    pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, target: Target) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.address, target.port, target.host)
        with self.lock:
            pool = self.pools.get(key)
            if pool is None:
                pool = self.pools[key] = self._new(target)
            return pool

    @staticmethod
    def _new(target: Target) -> urllib3.HTTPConnectionPool:
        timeout = urllib3.Timeout(
            connect=min(5.0, settings.WEBHOOKS_TIMEOUT_SECONDS),
            read=settings.WEBHOOKS_TIMEOUT_SECONDS,
        )
        common = {
            "host": target.address,  # the address we checked: no second lookup
            "port": target.port,
            "timeout": timeout,
            "retries": False,
            "maxsize": settings.WEBHOOKS_MAX_IN_FLIGHT,
            "block": False,
        }
        if target.scheme == "https":
            return urllib3.HTTPSConnectionPool(
                **common,
                server_hostname=target.host,  # SNI
                assert_hostname=target.host,  # the certificate names the host
            )
        return urllib3.HTTPConnectionPool(**common)

    def close(self) -> None:
        with self.lock:
            for pool in self.pools.values():
                pool.close()


def delivery_send(claimed: Claimed, pools: Pools, target: Target | None = None) -> Outcome:
    """One HTTP attempt to `target` (checked here when not given). Touches no database."""
    if target is None:
        try:
            target = target_check(claimed.url)
        except ApplicationError as error:
            return Outcome(error=error.code)
    now = timezone.now()
    headers = {
        "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": "Earshot-Webhooks/1",
        "webhook-id": claimed.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(
            secrets_=claimed.secrets, msg_id=claimed.event_id, timestamp=now, body=claimed.body
        ),
    }
    try:
        response = pools.get(target).urlopen(
            "POST",
            target.path,
            body=claimed.body.encode(),
            headers=headers,
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(RESPONSE_BODY_LIMIT)
            if response.read(1):  # more than we read: drop the connection, never drain it
                response.close()
        finally:
            response.release_conn()
        return Outcome(status_code=response.status)
    except urllib3.exceptions.HTTPError as error:
        return Outcome(error=type(error).__name__[:200])
    except OSError as error:
        return Outcome(error=type(error).__name__[:200])


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after `attempt` failed ones: exponential with jitter,
    the first within 10 s, at most WEBHOOKS_RETRY_MAX_DELAY_SECONDS."""
    ceiling = min(settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS, 8.0 * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


@transaction.atomic
def _subscription_mark(subscription_id: int, status: str, reason: str) -> None:
    locked = (
        Subscription.objects.select_for_update()
        .filter(pk=subscription_id, status=SubscriptionStatus.ACTIVE)
        .first()
    )
    if locked is not None:
        _status_set(locked, status, reason=reason, actor="webhooks")


def lane_send(
    lane: list[Claimed], pools: Pools, lease_end: float, budget_end: float
) -> list[Outcome | None]:
    """Send a lane's deliveries in order on the subscription's pooled connections; None
    for those left unsent, because an answer could come after the lane's lease, or the
    sender's time is up (a slow receiver's lane must not keep the sender from returning).
    The URL is resolved and checked once for the lane, and every request of the lane
    connects to that checked address."""
    try:
        target = target_check(lane[0].url)
    except ApplicationError as error:
        return [Outcome(error=error.code) for _ in lane]
    outcomes: list[Outcome | None] = []
    for claimed in lane:
        now = time.monotonic()
        if now + settings.WEBHOOKS_TIMEOUT_SECONDS + 5 > lease_end or now > budget_end:
            outcomes.append(None)
        else:
            outcomes.append(delivery_send(claimed, pools, target))
    return outcomes


def lane_record(lane: list[Claimed], outcomes: list[Outcome | None]) -> None:
    """A lane's outcomes in a few updates, each fenced by the lane's token (a new claim
    of the same rows carries another, so a sender whose lease lapsed writes nothing):
    its 2xx in one; its failures grouped by attempt and answer, each group's retry at one
    jittered time; those past the retry budget failed, and the subscription failing.
    Each outcome goes into the field history with its update, in one transaction."""
    now = timezone.now()
    token = lane[0].lane
    delivered: list[int] = []
    unsent: list[int] = []
    failed: dict[tuple[int, int | None, str], list[int]] = {}
    for claimed, outcome in zip(lane, outcomes, strict=True):
        if outcome is None:
            unsent.append(claimed.id)
        elif outcome.status_code is not None and 200 <= outcome.status_code < 300:
            delivered.append(claimed.id)
        else:
            code = outcome.status_code
            key = (claimed.attempt, code, outcome.error or f"http_{code}")
            failed.setdefault(key, []).append(claimed.id)
    mine = Delivery.objects.filter(status=DeliveryStatus.PENDING, lane=token)
    budget_end = now - timedelta(seconds=settings.WEBHOOKS_RETRY_SECONDS)
    mark: tuple[str, str] | None = None
    with transaction.atomic():
        if delivered:
            answer = {"last_status_code": 200, "last_error": ""}
            if mine.filter(pk__in=delivered).update(
                status=DeliveryStatus.DELIVERED, delivered_at=now, lease_until=None, **answer
            ):
                _audit_outcome(delivered, token, DeliveryStatus.DELIVERED, answer)
        if unsent:
            mine.filter(pk__in=unsent).update(lease_until=None, lane="")
        for (attempt, code, error), ids in failed.items():
            answer = {"last_status_code": code, "last_error": error}
            these = mine.filter(pk__in=ids)
            if code == 410:
                if these.update(status=DeliveryStatus.FAILED, lease_until=None, **answer):
                    _audit_outcome(ids, token, DeliveryStatus.FAILED, answer)
                    mark = (SubscriptionStatus.DISABLED, "gone (410)")
                continue
            if these.filter(retry_from__lte=budget_end).update(
                status=DeliveryStatus.FAILED, lease_until=None, **answer
            ):
                _audit_outcome(ids, token, DeliveryStatus.FAILED, answer)
                mark = mark or (SubscriptionStatus.FAILING, "retries exhausted")
            retry = {"next_attempt_at": now + timedelta(seconds=retry_delay(attempt)), **answer}
            if these.update(lease_until=None, **retry):
                _audit_outcome(ids, token, DeliveryStatus.PENDING, retry)
    if mark is not None:
        # after the deliveries' own writes committed: no lock on them is held here
        _subscription_mark(lane[0].subscription_id, *mark)


def _audit_outcome(ids: list[int], token: str, status: str, answer: dict[str, Any]) -> None:
    """The field history of an attempt's outcome for the deliveries of `ids` that this
    lane's update wrote (selected on the server: those still carrying its token and the
    outcome). The previous answer is not kept, so its old value is left empty."""
    written = Delivery.objects.filter(pk__in=ids, lane=token, status=status, **answer)
    audit_bulk_change(
        model=Delivery,
        pks=written,
        changes={
            "status": (DeliveryStatus.PENDING, status),
            **{name: (None, value) for name, value in answer.items()},
        },
        actor="webhooks",
    )


def lane_run(
    lane: list[Claimed], pools: Pools, lease_end: float, budget_end: float, opened: "_Opened"
) -> int:
    """A sending thread's whole part in a lane: send it, then record its outcomes on this
    thread's own database connection; how many were tried. Recording here, not in the
    claiming thread, lets the lanes' writes run side by side while that thread only
    claims."""
    outcomes = lane_send(lane, pools, lease_end, budget_end)
    opened.add()
    lane_record(lane, outcomes)
    return sum(1 for o in outcomes if o is not None)


@dataclass
class _Opened:
    """The database connections the sending threads opened, closed when the run ends
    (the threads end with the run; their connections would otherwise linger)."""

    wrappers: dict[int, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self) -> None:
        with self.lock:
            wrapper = connections[DEFAULT_DB_ALIAS]  # this thread's own
            if id(wrapper) not in self.wrappers:
                wrapper.inc_thread_sharing()  # closed by the claiming thread at the end
                self.wrappers[id(wrapper)] = wrapper

    def close(self) -> None:
        with self.lock:
            for wrapper in self.wrappers.values():
                wrapper.close()
                wrapper.dec_thread_sharing()
            self.wrappers.clear()


def webhooks_send(*, budget_seconds: float = 10.0, threads: int | None = None) -> int:
    """Send due deliveries for up to `budget_seconds` (then finish the lanes in flight);
    how many deliveries were tried. A slow receiver holds at most WEBHOOKS_MAX_IN_FLIGHT
    of the threads; the others keep serving everyone else. This thread only claims
    (under the claim lock, one claimer at a time); each sending thread signs and sends
    its lane, then records the lane's outcomes on a connection of its own."""
    threads = threads or settings.WEBHOOKS_SENDER_THREADS
    deadline = time.monotonic() + budget_seconds
    pools = Pools()
    opened = _Opened()
    running: set[Future[int]] = set()
    tried = 0
    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook") as pool:
            while True:
                if time.monotonic() < deadline:
                    lease_end = time.monotonic() + _lease().total_seconds()
                    for lane in deliveries_claim(lanes=threads - len(running)):
                        running.add(pool.submit(lane_run, lane, pools, lease_end, deadline, opened))
                if not running:
                    break
                done, _ = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                for future in done:
                    running.discard(future)
                    tried += future.result()
    finally:
        pools.close()
        opened.close()
    return tried


# --- confirmations ----------------------------------------------------------------------


def subscription_secrets(subscription: Subscription, *, now: datetime | None = None) -> list[str]:
    """The secrets that sign for it now: the current one, and the previous during the
    overlap after a rotation."""
    now = now or timezone.now()
    keys = [secret_decrypt(subscription.secret_encrypted)]
    if (
        subscription.previous_secret_encrypted
        and subscription.previous_secret_until
        and subscription.previous_secret_until > now
    ):
        keys.append(secret_decrypt(subscription.previous_secret_encrypted))
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
