"""The sender: dispatches new ledger entries, sends due deliveries, signed, and records
every outcome. Why it is built this way, with the measurements: docs/benchmarks.md
(webhooks).

One long-lived `Sender` per worker process keeps its sending threads and its kept-alive
connections from one `webhooks.send` run to the next. One run at a time, across all
workers (a transaction-scoped advisory lock held by a transaction left open for the
run on a connection of its own: `RunLock`; it goes when the run ends, or with its
connection when its process dies). A run that finds work splits the database side in three, each
on its own connection: the dispatcher thread turns new ledger entries into deliveries
and leases those that may go now to the run's lanes in the same insert; the run's own
thread claims what the dispatcher did not lease (retries come due, a profile's next
delivery, backlogs past a subscription's lanes); the recorder thread writes the
outcomes of finished lanes. The sending threads do HTTP alone
(compliance/webhooks/transport.py), a lane at a time, at most WEBHOOKS_MAX_IN_FLIGHT
of them per subscription, so a slow receiver holds only those.

Transactions and locks. A dispatch commits its deliveries, their leases and the moved
cursor together (services.webhooks_dispatch). A claim is one statement: it picks each
active subscription's due deliveries that are the oldest undelivered one of their
profile (SKIP LOCKED) and leases them to lanes (a random token each). The HTTP
requests run outside any transaction. An outcome is written only where the delivery
still carries its lane's token (a new claim gives it another, so a sender whose lease
lapsed writes nothing), with its field history in the same statement. Lock order:
cursor (dispatch) -> subscription -> delivery; a subscription's status changes after
the deliveries' writes.

At least once: a delivery stays pending until a 2xx is recorded for it, so a crash
between the receiver's 2xx and our write sends it again with the same `webhook-id`;
a worker killed mid-run leaves leases that lapse (WEBHOOKS_TIMEOUT_SECONDS + 15 s; a
lane stops sending 20 s before its lease ends), and the next run takes the rows over.
"""

import logging
import math
import os
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from compliance.core.audit import audit_bulk_change, audit_bulk_change_sql
from compliance.core.errors import ApplicationError
from compliance.core.sql import pg_array

from .models import Delivery, DeliveryStatus, Subscription, SubscriptionStatus
from .services import Leasing, secrets_for, subscription_mark, webhooks_dispatch
from .signing import signature_header, signer
from .targets import Target, target_check
from .transport import Connection, Connections, ProtocolError, RequestHead, post

logger = logging.getLogger(__name__)

_CLAIM_LOCK_KEY = 0x4541_5253_5748_4B  # pg_advisory_xact_lock key of the sender's claim
_RUN_LOCK_KEY = 0x4541_5253_5748_52  # pg_try_advisory_xact_lock key held by the running sender
DISPATCH_BATCH = 500  # ledger entries one dispatch reads at most
POLL_SECONDS = 0.05  # how often a run looks for new ledger entries
CLAIM_SECONDS = 0.5  # how often it claims when nothing new was dispatched
LINGER_SECONDS = 1.0  # a run that worked stays this long after its last work
RUN_SECONDS = 10.0  # a `webhooks.send` task's run
LANE_SECONDS = 2.0  # a lane holds about this long's worth of its receiver's recent pace


@dataclass(frozen=True)
class Item:
    id: int
    attempt: int
    event_id: str
    body: bytes


@dataclass(frozen=True)
class Lane:
    """Deliveries of one subscription, each the oldest undelivered one of its profile,
    sent one after another on one connection; `token` is the claim's fence."""

    token: str
    subscription_id: int
    url: str
    signers: tuple[Webhook, ...]
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    error: str = ""


def _lease() -> timedelta:
    return timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS + 15)


# --- claim ------------------------------------------------------------------------------


def deliveries_claim(
    *,
    held: dict[int, int] | None = None,
    per_subscription: int | None = None,
    sizes: dict[int, int] | None = None,
    now: datetime | None = None,
) -> list[Lane]:
    """Lanes of due deliveries, leased to the caller: each active subscription gets up
    to `per_subscription` (WEBHOOKS_MAX_IN_FLIGHT) lanes less those it holds, each of
    up to WEBHOOKS_LANE_SIZE (or its entry in `sizes`) deliveries, each delivery the
    oldest undelivered one of its subscription and profile (so no two lanes hold two of
    a profile). `held`: the lanes each subscription holds as the caller counts them
    (a run, the only claimer while it holds the run lock); without it, the leased lanes
    in the database, counted under the claim lock."""
    now = now or timezone.now()
    cap = per_subscription or settings.WEBHOOKS_MAX_IN_FLIGHT
    sizes = sizes or {}
    if held is not None and connection.vendor == "postgresql":
        rows = _claim_sql(now=now, cap=cap, held=held, sizes=sizes)
    else:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK_KEY])
            if held is None:
                held = dict(
                    Delivery.objects.filter(status=DeliveryStatus.PENDING, lease_until__gt=now)
                    .values("subscription_id")
                    .annotate(n=Count("lane", distinct=True))
                    .values_list("subscription_id", "n")
                )
            take = _claim_sql if connection.vendor == "postgresql" else _claim_orm
            rows = take(now=now, cap=cap, held=held, sizes=sizes)
    subscriptions: dict[int, Claimed] = {}
    for row in rows:
        if row[1] not in subscriptions:
            subscriptions[row[1]] = Claimed(row[1], *row[6:])
    return _lanes([row[:6] for row in rows], subscriptions, now)


def _lanes(
    rows: Iterable[tuple[int, int, int, str, str, str]],
    subscriptions: dict[int, "Claimed"],
    now: datetime,
) -> list[Lane]:
    """Lanes of (id, subscription, attempt, event id, body, lane token) rows, each in id
    order, signed with their subscription's secrets."""
    lanes: dict[str, list[Item]] = {}
    owner: dict[str, int] = {}
    for pk, subscription_id, attempts, event_id, body, token in sorted(rows):
        lanes.setdefault(token, []).append(Item(pk, attempts, event_id, body.encode()))
        owner[token] = subscription_id
    signers: dict[int, tuple[Webhook, ...]] = {}
    claimed: list[Lane] = []
    for token, items in lanes.items():
        subscription = subscriptions[owner[token]]
        keys = signers.get(subscription.id)
        if keys is None:
            keys = signers[subscription.id] = tuple(
                signer(key) for key in subscription.secrets(now)
            )
        claimed.append(Lane(token, subscription.id, subscription.url, keys, tuple(items)))
    return claimed


@dataclass(frozen=True)
class Claimed:
    """What a claim reads of a subscription: where to send and what signs."""

    id: int
    url: str
    secret_encrypted: str
    previous_secret_encrypted: str
    previous_secret_until: datetime | None

    def secrets(self, now: datetime) -> list[str]:
        return secrets_for(
            self.secret_encrypted,
            self.previous_secret_encrypted,
            self.previous_secret_until,
            now=now,
        )


# One statement for every active subscription, in its own transaction: for each, its
# pending rows in id order (index webhooks_delivery_pending), each kept only when it is
# its profile's lowest undelivered id (a scalar subquery, one probe of
# webhooks_delivery_order: NOT EXISTS was run by the planner, on a fresh table without
# statistics, as an anti-join on the subscription alone, 13 s a claim at 3,000
# deliveries), up to its free lanes times its lane size, locked (SKIP LOCKED), dealt
# round-robin to its lanes and leased; the subscription's URL and secrets come back
# with the rows. One round trip: a claim of a statement per subscription, in a
# transaction under an advisory lock, spent most of its time waiting for the replies.
_CLAIM = """
WITH subs AS (
    SELECT s.id, s.url, s.secret_encrypted, s.previous_secret_encrypted,
        s.previous_secret_until,
        greatest(%(cap)s - coalesce(h.n, 0), 0) AS lanes,
        coalesce(z.size, %(size)s) AS size
    FROM webhooks_subscription s
    LEFT JOIN unnest(%(held_ids)s::bigint[], %(held_n)s::int[]) AS h(id, n) ON h.id = s.id
    LEFT JOIN unnest(%(size_ids)s::bigint[], %(size_n)s::int[]) AS z(id, size) ON z.id = s.id
    WHERE s.status = 'active'
), picked AS (
    SELECT p.id, subs.id AS subscription_id, subs.lanes
    FROM subs CROSS JOIN LATERAL (
        SELECT d.id FROM webhooks_delivery d
        WHERE d.subscription_id = subs.id AND d.status = 'pending'
          AND d.next_attempt_at <= %(now)s
          AND (d.lease_until IS NULL OR d.lease_until <= %(now)s)
          AND d.id = (
              SELECT h.id FROM webhooks_delivery h
              WHERE h.subscription_id = d.subscription_id
                AND h.ordering_key = d.ordering_key
                AND h.status IN ('pending', 'failed')
              ORDER BY h.id LIMIT 1)
        ORDER BY d.id
        LIMIT subs.lanes * subs.size
        FOR UPDATE OF d SKIP LOCKED
    ) p
), dealt AS (
    SELECT id, subscription_id,
        (row_number() OVER (PARTITION BY subscription_id ORDER BY id) - 1) %% lanes AS n
    FROM picked
)
UPDATE webhooks_delivery d
SET lease_until = %(lease_until)s, attempts = d.attempts + 1, last_attempt_at = %(now)s,
    lane = %(prefix)s || dealt.subscription_id::text || '_' || dealt.n::text
FROM dealt JOIN subs ON subs.id = dealt.subscription_id
WHERE d.id = dealt.id
RETURNING d.id, d.subscription_id, d.attempts, d.event_id, d.body, d.lane, subs.url,
    subs.secret_encrypted, subs.previous_secret_encrypted, subs.previous_secret_until
"""

_Row = tuple[int, int, int, str, str, str, str, str, str, datetime | None]


def _claim_sql(
    *, now: datetime, cap: int, held: dict[int, int], sizes: dict[int, int]
) -> list[_Row]:
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "cap": cap,
                "size": settings.WEBHOOKS_LANE_SIZE,
                "held_ids": pg_array(held),
                "held_n": pg_array(held.values()),
                "size_ids": pg_array(sizes),
                "size_n": pg_array(sizes.values()),
                "now": now,
                "lease_until": now + _lease(),
                "prefix": secrets.token_hex(8),
            },
        )
        return cursor.fetchall()


def _claim_orm(
    *, now: datetime, cap: int, held: dict[int, int], sizes: dict[int, int]
) -> list[_Row]:
    """The claim where there is no PostgreSQL (the development database)."""
    head = (
        Delivery.objects.filter(
            subscription_id=OuterRef("subscription_id"),
            ordering_key=OuterRef("ordering_key"),
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED],
        )
        .order_by("id")
        .values("id")[:1]
    )
    claimed: list[_Row] = []
    lease_until = now + _lease()
    for subscription in Subscription.objects.filter(status=SubscriptionStatus.ACTIVE):
        lanes = cap - held.get(subscription.pk, 0)
        if lanes <= 0:
            continue
        size = sizes.get(subscription.pk, settings.WEBHOOKS_LANE_SIZE)
        rows = list(
            Delivery.objects.filter(
                Q(lease_until__isnull=True) | Q(lease_until__lte=now),
                subscription_id=subscription.pk,
                status=DeliveryStatus.PENDING,
                next_attempt_at__lte=now,
                id=Subquery(head),
            )
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("id", "attempts", "event_id", "body")[: lanes * size]
        )
        prefix = f"{secrets.token_hex(8)}{subscription.pk}_"
        tokens = [f"{prefix}{n % lanes}" for n in range(len(rows))]
        for token in set(tokens):
            ids = [row[0] for row, t in zip(rows, tokens, strict=True) if t == token]
            Delivery.objects.filter(pk__in=ids).update(
                lease_until=lease_until, attempts=F("attempts") + 1, last_attempt_at=now, lane=token
            )
        claimed += [
            (
                pk,
                subscription.pk,
                attempts + 1,
                event_id,
                body,
                token,
                subscription.url,
                subscription.secret_encrypted,
                subscription.previous_secret_encrypted,
                subscription.previous_secret_until,
            )
            for (pk, attempts, event_id, body), token in zip(rows, tokens, strict=True)
        ]
    return claimed


# --- send -------------------------------------------------------------------------------


def delivery_send(
    lane: Lane,
    item: Item,
    target: Target,
    head: RequestHead,
    connections: Connections,
    held: Connection | None,
) -> tuple[Outcome, Connection | None]:
    """One signed POST of `item`; its outcome and the connection for the next one.
    Touches no database."""
    now = datetime.now(UTC)
    signature = signature_header(
        signers=lane.signers, msg_id=item.event_id, timestamp=now, body=item.body
    )
    try:
        request = head.request(
            [
                ("webhook-id", item.event_id),
                ("webhook-timestamp", str(int(now.timestamp()))),
                ("webhook-signature", signature),
            ],
            item.body,
        )
        answer, held = post(
            target, request, connections, held, timeout=settings.WEBHOOKS_TIMEOUT_SECONDS
        )
    except ProtocolError as error:
        return Outcome(error=str(error)), None
    except OSError as error:  # refused, reset, timed out, TLS
        return Outcome(error=type(error).__name__[:200]), None
    except ValueError:  # a header that cannot be put on the wire
        return Outcome(error="request_invalid"), None
    return Outcome(status_code=answer.status), held


def lane_send(
    lane: Lane, connections: Connections, lease_end: float, budget_end: float, stop: threading.Event
) -> list[Outcome | None]:
    """Send a lane's deliveries in order on one kept-alive connection; None for those
    left unsent, because an answer could come after the lane's lease, or the run's time
    is up (a slow receiver's lane must not keep the run from returning). The URL is
    resolved and checked once for the lane, and every request of the lane connects to
    that checked address."""
    try:
        target = target_check(lane.url)
    except ApplicationError as error:
        return [Outcome(error=error.code) for _ in lane.items]
    try:
        head = RequestHead(
            target, [("Content-Type", "application/json"), ("User-Agent", "Earshot-Webhooks/1")]
        )
    except ValueError:  # a host or path that cannot be put on the wire
        return [Outcome(error="request_invalid") for _ in lane.items]
    timeout = settings.WEBHOOKS_TIMEOUT_SECONDS
    outcomes: list[Outcome | None] = []
    held: Connection | None = None
    try:
        for item in lane.items:
            now = time.monotonic()
            if now + timeout + 5 > lease_end or now > budget_end or stop.is_set():
                outcomes.append(None)
                continue
            outcome, held = delivery_send(lane, item, target, head, connections, held)
            outcomes.append(outcome)
    finally:
        if held is not None:
            connections.give(held)
    return outcomes


# --- record -----------------------------------------------------------------------------


def lanes_record(results: Iterable[tuple[Lane, list[Outcome | None]]]) -> None:
    """The outcomes of finished lanes, each written only where the delivery still carries
    its lane's token, with its field history in the same statement: the 2xx per status
    code in one; the unsent released; the failures grouped by attempt and answer, each
    group's retry at one jittered time, those past the retry budget (or answered 410)
    failed. Subscriptions to mark failing or disabled are marked after those writes."""
    now = timezone.now()
    delivered: dict[int, list[tuple[int, str]]] = {}
    unsent: list[tuple[int, str]] = []
    failed: dict[tuple[int, int, int | None, str], list[tuple[int, str]]] = {}
    for lane, outcomes in results:
        for item, outcome in zip(lane.items, outcomes, strict=True):
            row = (item.id, lane.token)
            if outcome is None:
                unsent.append(row)
            elif outcome.status_code is not None and 200 <= outcome.status_code < 300:
                delivered.setdefault(outcome.status_code, []).append(row)
            else:
                code = outcome.status_code
                key = (lane.subscription_id, item.attempt, code, outcome.error or f"http_{code}")
                failed.setdefault(key, []).append(row)
    budget_end = now - timedelta(seconds=settings.WEBHOOKS_RETRY_SECONDS)
    marks: dict[int, tuple[str, str]] = {}
    # On PostgreSQL each write is one statement with its history, atomic by itself.
    with transaction.atomic() if connection.vendor != "postgresql" else nullcontext():
        for code, rows in delivered.items():
            answer: dict[str, Any] = {"last_status_code": code, "last_error": ""}
            _write(rows, DeliveryStatus.DELIVERED, answer, delivered_at=now)
        if unsent:
            _write(unsent, None, {}, lane="")
        for (subscription_id, attempt, code, error), rows in failed.items():
            answer = {"last_status_code": code, "last_error": error}
            if code == 410:
                if _write(rows, DeliveryStatus.FAILED, answer):
                    marks[subscription_id] = (SubscriptionStatus.DISABLED, "gone (410)")
                continue
            if _write(rows, DeliveryStatus.FAILED, answer, retry_before=budget_end):
                marks.setdefault(subscription_id, (SubscriptionStatus.FAILING, "retries exhausted"))
            retry: dict[str, Any] = {
                "next_attempt_at": now + timedelta(seconds=retry_delay(attempt)),
                **answer,
            }
            _write(rows, DeliveryStatus.PENDING, retry)
    for subscription_id, (status, reason) in marks.items():
        subscription_mark(subscription_id=subscription_id, status=status, reason=reason)


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after `attempt` failed ones: exponential with jitter,
    the first within 10 s, at most WEBHOOKS_RETRY_MAX_DELAY_SECONDS."""
    ceiling = min(settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS, 8.0 * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


_WRITE = """
UPDATE webhooks_delivery d SET {assignments}
FROM unnest(%s::bigint[], %s::text[]) AS u(id, lane)
WHERE d.id = u.id AND d.lane = u.lane AND d.status = 'pending' {condition}
RETURNING d.id
"""


def _write(
    rows: list[tuple[int, str]],
    status: str | None,
    answer: dict[str, Any],
    *,
    retry_before: datetime | None = None,
    **values: Any,
) -> int:
    """Set `status` (None: unchanged), `answer` and `values` on the pending deliveries of
    `rows` (id, lane token) that still carry their lane's token (and, with
    `retry_before`, were first tried before it), end their lease, and, with a status,
    write each one's field history: the attempt's outcome (the previous answer is not
    kept, so its old value is left empty). How many were written."""
    values = {**answer, **values, "lease_until": None}
    if status is not None and status != DeliveryStatus.PENDING:
        values["status"] = status
    history: dict[str, tuple[Any, Any]] | None = None
    if status is not None:
        history = {
            "status": (DeliveryStatus.PENDING, status),
            **{name: (None, value) for name, value in answer.items()},
        }
    if connection.vendor != "postgresql":
        written: list[int] = []
        for token in {t for _, t in rows}:
            these = Delivery.objects.filter(
                pk__in=[pk for pk, t in rows if t == token],
                lane=token,
                status=DeliveryStatus.PENDING,
            )
            if retry_before is not None:
                these = these.filter(retry_from__lte=retry_before)
            ids = list(these.values_list("pk", flat=True))
            Delivery.objects.filter(pk__in=ids).update(**values)
            written += ids
        if history is not None:
            audit_bulk_change(model=Delivery, pks=written, changes=history, actor="webhooks")
        return len(written)
    quote = connection.ops.quote_name
    names = list(values)
    sql = _WRITE.format(
        assignments=", ".join(f"{quote(name)} = %s" for name in names),
        condition="AND d.retry_from <= %s" if retry_before is not None else "",
    )
    params: list[Any] = [values[name] for name in names]
    params += [pg_array(pk for pk, _ in rows), pg_array(token for _, token in rows)]
    if retry_before is not None:
        params.append(retry_before)
    if history is not None:
        insert, insert_params = audit_bulk_change_sql(
            model=Delivery,
            source="written AS t(id)",
            source_params=[],
            changes=history,
            actor="webhooks",
        )
        sql, params = f"WITH written AS ({sql}) {insert}", [*params, *insert_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- the run ----------------------------------------------------------------------------


class Ran(NamedTuple):
    """What a run did: ledger entries dispatched plus deliveries tried; and whether it
    still had work when its time was up."""

    work: int
    busy: bool


@dataclass
class _Run:
    """One run's state, shared by its threads: lanes claimed and waiting per
    subscription, the sending threads per subscription, lanes finished and waiting to
    be recorded, and the lanes each subscription holds (claimed, not yet recorded)."""

    deadline: float
    cap: int
    threads: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)  # the claiming thread's
    finished: threading.Event = field(default_factory=threading.Event)  # the recorder's
    stop: threading.Event = field(default_factory=threading.Event)  # the run ends
    waiting: dict[int, deque[tuple[Lane, float]]] = field(default_factory=dict)
    sending: dict[int, int] = field(default_factory=dict)
    threads_busy: int = 0
    done: list[tuple[Lane, list[Outcome | None]]] = field(default_factory=list)
    held: dict[int, int] = field(default_factory=dict)
    futures: set[Future[None]] = field(default_factory=set)
    worked: int = 0
    last_work: float = 0.0
    more: bool = False  # the dispatcher has a backlog
    fresh: bool = False  # the dispatcher left deliveries unleased since the last claim
    recorded: bool = False  # lanes were recorded since the last claim
    failure: BaseException | None = None

    def holding(self) -> bool:
        with self.lock:
            return any(self.held.values())


class Sender:
    """A process's sending threads and kept-alive connections, kept across runs.

    One run at a time, across all workers: a run holds the `RunLock` (released when it
    ends, or with its connection when its process dies), and a run that cannot
    take it returns 0 at once. So while one worker process sends, beat's next ticks
    leave the other processes free for other tasks, and the single run loops for as
    long as there is work, up to its budget.

    A run that finds work splits the database's side in three, each on its own
    connection, so that none waits for the others' round trips: this thread claims
    lanes and hands them to the sending threads; a dispatcher thread turns new ledger
    entries into deliveries; a recorder thread writes finished lanes' outcomes.

    A subscription has at most WEBHOOKS_MAX_IN_FLIGHT requests in flight (one per
    sending thread, each sending a lane at a time) and up to as many lanes again claimed
    and waiting: a thread that finishes a lane starts the next at once, so a fast
    receiver does not wait for the database. A lane is sized to about LANE_SECONDS of
    its receiver's recent pace (at most WEBHOOKS_LANE_SIZE): a slow receiver's lanes do
    not lease hundreds of deliveries they cannot send before the run ends."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self.connections = Connections(per_target=settings.WEBHOOKS_MAX_IN_FLIGHT)
        self.running = threading.Lock()
        self.run_lock = RunLock()
        self.pace: dict[int, float] = {}  # deliveries a second one lane sends, per subscription

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.connections.close()
        self.run_lock.close()

    def run(self, *, budget_seconds: float, linger_seconds: float = LINGER_SECONDS) -> Ran:
        """Dispatch, claim, send and record for up to `budget_seconds` (then finish the
        lanes in flight, which stop at that time too). Returns at once when idle, and
        after `linger_seconds` without work."""
        if not self.running.acquire(blocking=False):
            return Ran(0, busy=False)
        try:
            if not self.run_lock.take():
                return Ran(0, busy=False)
            state = _Run(
                deadline=time.monotonic() + budget_seconds,
                cap=settings.WEBHOOKS_MAX_IN_FLIGHT,
                threads=self.threads,
            )
            helpers: list[threading.Thread] = []
            try:
                return self._run(state, linger_seconds, helpers)
            finally:
                state.stop.set()  # lanes still in flight stop before their next request
                state.finished.set()
                wait(state.futures)
                for helper in helpers:
                    helper.join()
                self.run_lock.release()
        finally:
            self.running.release()

    def _run(self, state: _Run, linger_seconds: float, helpers: list[threading.Thread]) -> Ran:
        self.connections.per_target = state.cap
        self.connections.prune()
        postgres = connection.vendor == "postgresql"
        state.last_work = time.monotonic()
        self._dispatch(state)
        claim_at = 0.0
        while True:
            state.wake.clear()
            if state.failure is not None:
                raise state.failure
            for future in [f for f in state.futures if f.done()]:
                state.futures.discard(future)
                future.result()  # a sending thread's bug ends the run (its lane released)
            now = time.monotonic()
            with state.lock:
                room = 2 * self.threads - sum(state.held.values())
                held = dict(state.held)
            if now < state.deadline and room > 0 and now >= claim_at:
                lease_end = time.monotonic() + _lease().total_seconds()
                lanes = deliveries_claim(
                    held=held if postgres else None,
                    per_subscription=2 * state.cap if postgres else None,
                    sizes=self._sizes(),
                )
                with state.lock:
                    for lane in lanes:
                        sid = lane.subscription_id
                        state.held[sid] = state.held.get(sid, 0) + 1
                        state.waiting.setdefault(sid, deque()).append((lane, lease_end))
                    if lanes:
                        state.last_work = now
                claim_at = now + POLL_SECONDS if not helpers else now + CLAIM_SECONDS
                if (lanes or state.holding() or state.more) and not helpers:
                    helpers += self._helpers(state)
            self._start(state)
            with state.lock:  # the recorder sets both under the lock
                recorded, state.recorded = state.recorded, False
                holding = any(state.held.values())
            if recorded and not holding:
                claim_at = 0.0  # all recorded: what became due (a profile's next) goes now
                continue
            if not holding and not state.more:
                if not state.worked:
                    return Ran(0, busy=False)  # idle: nothing dispatched, nothing due
                if not helpers:  # dispatched what no one listens to, or not yet due
                    return Ran(state.worked, busy=False)
                if now - state.last_work >= linger_seconds:
                    return Ran(state.worked, busy=False)
                if now >= state.deadline:
                    return Ran(state.worked, busy=True)
            state.wake.wait(POLL_SECONDS)
            with state.lock:
                fresh, state.fresh = state.fresh, False
            # new deliveries: claim them now; lanes recorded (room for retries coming due
            # and backlogs past a subscription's lanes): soon, not at every wake, since
            # a claim reads each subscription's pending rows and competes with the
            # dispatcher for the database
            claim_at = 0.0 if fresh else min(claim_at, now + CLAIM_SECONDS)

    def _helpers(self, state: _Run) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._dispatching, args=(state,), name="webhook-dispatch"),
            threading.Thread(target=self._recording, args=(state,), name="webhook-record"),
        ]
        for thread in threads:
            thread.start()
        return threads

    def _dispatching(self, state: _Run) -> None:
        """The dispatcher thread: new ledger entries into deliveries until the run ends."""
        try:
            while not state.stop.is_set() and time.monotonic() < state.deadline:
                if not self._dispatch(state):
                    state.stop.wait(POLL_SECONDS)
        except BaseException as error:
            state.failure = error
            state.wake.set()
        finally:
            with state.lock:
                state.more = False
            connections.close_all()  # this thread's own connection

    def _dispatch(self, state: _Run) -> bool:
        """One dispatch, its new deliveries leased to this run where they may go now
        (their lanes queued at once: no claim, no second write); whether there is more
        to dispatch."""
        with state.lock:
            held = dict(state.held)
        sizes, cap = self._sizes(), 2 * state.cap
        lease_end = time.monotonic() + _lease().total_seconds()
        now = timezone.now()
        leasing = Leasing(
            lanes=lambda pk: (
                max(0, cap - held.get(pk, 0)),
                sizes.get(pk, settings.WEBHOOKS_LANE_SIZE),
            ),
            prefix=secrets.token_hex(8),
            until=now + _lease(),
        )
        dispatched = webhooks_dispatch(limit=DISPATCH_BATCH, hint=False, leasing=leasing)
        subscriptions = {
            pk: Claimed(
                pk,
                s.url,
                s.secret_encrypted,
                s.previous_secret_encrypted,
                s.previous_secret_until,
            )
            for pk, s in leasing.subscriptions.items()
        }
        lanes = _lanes(leasing.leased, subscriptions, now) if leasing.leased else []
        more = dispatched >= DISPATCH_BATCH
        with state.lock:
            state.more = more
            state.worked += dispatched
            for lane in lanes:
                sid = lane.subscription_id
                state.held[sid] = state.held.get(sid, 0) + 1
                state.waiting.setdefault(sid, deque()).append((lane, lease_end))
            if dispatched:
                state.last_work = time.monotonic()
            if leasing.unleased:
                state.fresh = True
        if lanes or leasing.unleased:
            state.wake.set()
        return more

    def _recording(self, state: _Run) -> None:
        """The recorder thread: finished lanes' outcomes, a batch at a time, until the
        run ends and every lane it held is recorded."""
        try:
            while True:
                state.finished.wait(POLL_SECONDS)
                state.finished.clear()
                with state.lock:
                    done, state.done = state.done, []
                if done:
                    lanes_record(done)
                    with state.lock:
                        for lane, outcomes in done:
                            state.held[lane.subscription_id] -= 1
                            state.worked += sum(1 for o in outcomes if o is not None)
                        state.recorded = True
                    state.wake.set()
                elif state.stop.is_set() or state.failure is not None:
                    return
        except BaseException as error:
            state.failure = error
            state.wake.set()
        finally:
            connections.close_all()  # this thread's own connection

    def _start(self, state: _Run) -> None:
        """A sending thread for each subscription with lanes waiting, up to its cap and
        the sender's threads."""
        with state.lock:
            for subscription_id, waiting in state.waiting.items():
                want = min(len(waiting), state.cap - state.sending.get(subscription_id, 0))
                for _ in range(min(want, state.threads - state.threads_busy)):
                    state.sending[subscription_id] = state.sending.get(subscription_id, 0) + 1
                    state.threads_busy += 1
                    state.futures.add(self.executor.submit(self._send, state, subscription_id))

    def _send(self, state: _Run, subscription_id: int) -> None:
        """A sending thread: the subscription's waiting lanes, one after another."""
        try:
            while True:
                with state.lock:
                    waiting = state.waiting.get(subscription_id)
                    if not waiting:
                        return
                    lane, lease_end = waiting.popleft()
                outcomes: list[Outcome | None] = [None] * len(lane.items)
                started = time.monotonic()
                try:
                    outcomes = lane_send(
                        lane, self.connections, lease_end, state.deadline, state.stop
                    )
                finally:
                    with state.lock:
                        state.done.append((lane, outcomes))
                    state.finished.set()
                self._paced(lane.subscription_id, outcomes, time.monotonic() - started)
        finally:
            with state.lock:
                state.sending[subscription_id] -= 1
                state.threads_busy -= 1
            state.wake.set()

    def _paced(self, subscription_id: int, outcomes: list[Outcome | None], seconds: float) -> None:
        sent = sum(1 for o in outcomes if o is not None)
        if sent:
            pace = sent / max(seconds, 0.001)
            before = self.pace.get(subscription_id)
            self.pace[subscription_id] = pace if before is None else (before + pace) / 2

    def _sizes(self) -> dict[int, int]:
        limit = settings.WEBHOOKS_LANE_SIZE
        return {
            subscription_id: max(1, min(limit, math.ceil(pace * LANE_SECONDS)))
            for subscription_id, pace in self.pace.items()
        }


class RunLock:
    """One sender run at a time across all workers, held by a transaction.

    The lock is `pg_try_advisory_xact_lock` taken in a transaction that stays open for the
    run, on a connection of its own (kept across runs): the run's other connections commit
    many transactions, and a session-level lock would outlive its transaction and, behind
    a transaction pooler, end up held by another client (docs/reliability.md, "Advisory
    locks are transaction-scoped only"). The transaction takes no snapshot between its
    statements and writes nothing, so it holds back no vacuum. A process that dies takes
    the transaction, and the lock, with its connection. If the transaction is cut off
    (idle_in_transaction_session_timeout, a restart), two runs may overlap: that costs
    work, not correctness (leases and lane tokens fence every write).
    """

    def __init__(self) -> None:
        self._connection: Any = None

    def take(self) -> bool:
        """Whether this process now holds the lock (True at once on SQLite)."""
        if connection.vendor != "postgresql":
            return True
        import psycopg

        try:
            if self._connection is None or self._connection.closed:
                params = connection.get_connection_params()
                params.pop("cursor_factory", None)
                self._connection = psycopg.connect(**params, autocommit=False)
            held = self._connection.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", [_RUN_LOCK_KEY]
            ).fetchone()[0]
            if not held:
                self._connection.rollback()
            return bool(held)
        except psycopg.Error:
            logger.warning("webhooks: the sender's run lock could not be taken", exc_info=True)
            self._drop()
            return False

    def release(self) -> None:
        if connection.vendor != "postgresql" or self._connection is None:
            return
        import psycopg

        try:
            self._connection.rollback()  # ends the transaction, and with it the lock
        except psycopg.Error:
            self._drop()

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


_senders: dict[tuple[int, int], Sender] = {}
_senders_lock = threading.Lock()


def sender_for(threads: int) -> Sender:
    """This process's sender with `threads` threads (made on first use, after a fork
    anew: a forked child has none of its parent's threads)."""
    key = (os.getpid(), threads)
    with _senders_lock:
        sender = _senders.get(key)
        if sender is None:
            sender = _senders[key] = Sender(threads)
        return sender


def senders_close() -> None:
    """Stop this process's senders and close their connections (tests; process exit)."""
    with _senders_lock:
        senders = [s for (pid, _), s in _senders.items() if pid == os.getpid()]
        _senders.clear()
    for sender in senders:
        sender.close()


def webhooks_send(
    *,
    budget_seconds: float = 10.0,
    threads: int | None = None,
    linger_seconds: float = LINGER_SECONDS,
) -> int:
    """Dispatch new ledger entries and send due deliveries for up to `budget_seconds`;
    how many entries were dispatched and deliveries tried (0: nothing to do, or another
    run is at work). A slow receiver holds at most WEBHOOKS_MAX_IN_FLIGHT of the
    threads; the others keep serving everyone else."""
    sender = sender_for(threads or settings.WEBHOOKS_SENDER_THREADS)
    return sender.run(budget_seconds=budget_seconds, linger_seconds=linger_seconds).work


def webhooks_tick() -> Ran:
    """What one `webhooks.send` task does: a run of up to RUN_SECONDS. When the run was
    still busy at its end, the task asks for the next at once rather than wait for
    beat's next tick."""
    sender = sender_for(settings.WEBHOOKS_SENDER_THREADS)
    return sender.run(budget_seconds=RUN_SECONDS)
