"""Reading retention: which policy is in force, what an artefact's effective retention
is, which holds cover what, and the reports built on them."""

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from compliance.accounts.models import RetentionChoice
from compliance.core.countries import JURISDICTION_GROUPS, is_country
from compliance.core.errors import NotFound
from compliance.core.sql import bound_cursor
from compliance.edge.callers import Caller, visible_rows

from .models import AppliesTo, DeletionRequest, LegalHold, RetentionPolicy

WILDCARD = "*"

# The user's own choice, in days. Months are counted short (30 days), so that a
# choice of "3 months" never keeps anything longer than three calendar months.
CHOICE_DAYS: dict[str, int | None] = {
    RetentionChoice.THREE_MONTHS: 90,
    RetentionChoice.EIGHTEEN_MONTHS: 540,
    RetentionChoice.UNTIL_DELETED: None,
    RetentionChoice.DONT_SAVE: 0,
}


def jurisdiction_rank(jurisdiction: str, country: str) -> int:
    """How specifically `jurisdiction` names `country`: 3 itself, 2 a group, 1 `*`, 0 not."""
    if jurisdiction == country:
        return 3
    if country in JURISDICTION_GROUPS.get(jurisdiction, ()):
        return 2
    return 1 if jurisdiction == WILDCARD else 0


def audience_rank(applies_to: str, is_child: bool) -> int:
    if applies_to == AppliesTo.ALL:
        return 1
    return 2 if (applies_to == AppliesTo.CHILDREN) == is_child else 0


def is_valid_jurisdiction(value: str) -> bool:
    return value == WILDCARD or value in JURISDICTION_GROUPS or is_country(value)


# Every policy version, kept per process and revalidated on each use against the
# table's version stamp: a version is only ever added (a new row) or retired (an
# UPDATE setting retired_at), and each of those changes the stamp. Reading the stamp
# is one aggregate over a small table and returns one row, instead of every version
# instantiated on every ingest. Which versions are in
# force at a given moment is decided in Python, so a version that starts in the
# future needs no invalidation. `created_at` is in the stamp because ids can be
# reused after a rollback (SQLite), and a reused id must not pass for the old row.
_versions_cache: tuple[tuple[Any, ...], tuple[RetentionPolicy, ...]] | None = None
_versions_lock = threading.Lock()


# The table's version stamp (see above), one row.
POLICY_STAMP_SQL = (
    "SELECT count(*), max(id), count(retired_at), max(created_at)"  # noqa: S608 - the model's own table
    f" FROM {RetentionPolicy._meta.db_table}"
)

# On PostgreSQL a write that creates artefacts reads the stamp through the function
# `retention_policy_stamp` (migration 0002), which first takes this advisory lock,
# shared, for the rest of the transaction, and then reads the stamp with a snapshot of
# its own. So a write that schedules new artefacts under the versions it read holds the
# lock until it commits, and `retention_policies_apply`, by taking the lock exclusively
# once, waits for every such write in flight: after that, every artefact not yet
# written will be scheduled under the versions it applies
# (services.artefacts_scheduled_so_far). Readers that create nothing do not take it.
POLICY_LOCK_KEY = 0x4541_5253_484F_50  # beside the ledger's (...54-56)
_POLICY_STAMP_LOCKED_SQL = f"SELECT * FROM retention_policy_stamp({POLICY_LOCK_KEY})"  # noqa: S608


def policy_stamp_sql(*, for_new_artefacts: bool = False) -> str:
    """The statement that reads the stamp: one row, no parameters. `for_new_artefacts`:
    for a write that schedules the artefacts it creates under what it reads (on
    PostgreSQL it then holds the policies' lock until it ends; see above)."""
    if for_new_artefacts and connection.vendor == "postgresql":
        return _POLICY_STAMP_LOCKED_SQL
    return POLICY_STAMP_SQL


def policy_stamp(*, for_new_artefacts: bool = False) -> tuple[Any, ...]:
    # SQL as written: the ORM compiling this aggregate cost more than running it
    with bound_cursor() as cursor:
        cursor.execute(policy_stamp_sql(for_new_artefacts=for_new_artefacts))
        return tuple(cursor.fetchone())


def _policy_versions(stamp: tuple[Any, ...] | None = None) -> tuple[RetentionPolicy, ...]:
    """Every version, oldest first, current as of this read: call it inside the
    transaction whose writes depend on it, so they never follow a superseded version.
    `stamp`: `policy_stamp()`'s row, read in that transaction by the caller."""
    global _versions_cache
    if stamp is None:
        stamp = policy_stamp()
    cached = _versions_cache
    if cached is not None and cached[0] == stamp:
        return cached[1]
    # Read after the stamp: it holds at least what the stamp counted, and anything
    # newer changes the stamp again, so the next use reloads.
    versions = tuple(RetentionPolicy.objects.order_by("version", "id"))
    with _versions_lock:
        _versions_cache = (stamp, versions)
    return versions


def policies_in_force(
    *, at: datetime, stamp: tuple[Any, ...] | None = None
) -> list[RetentionPolicy]:
    """The version in force of every key at `at` (see RetentionPolicy); `stamp` as for
    `_policy_versions`."""
    current: dict[tuple[str, str, str], RetentionPolicy] = {}
    versions = [p for p in _policy_versions(stamp) if p.effective_from <= at]
    for policy in versions:
        key = (policy.jurisdiction, policy.category, policy.applies_to)
        if policy.retired_at is not None and policy.retired_at <= at:
            current.pop(key, None)
            continue
        current[key] = policy
    return list(current.values())


@dataclass(frozen=True)
class PolicyTable:
    """The policies in force, resolved per (country, category, is_child) on demand.

    Most specific wins: the jurisdiction first (country over group over `*`), then
    the audience (adults or children over all).
    """

    policies: tuple[RetentionPolicy, ...]

    def resolve(self, *, country: str, category: str, is_child: bool) -> RetentionPolicy | None:
        best: tuple[int, int] = (0, 0)
        chosen = None
        for policy in self.policies:
            if policy.category != category:
                continue
            rank = (
                jurisdiction_rank(policy.jurisdiction, country),
                audience_rank(policy.applies_to, is_child),
            )
            if rank[0] and rank[1] and rank > best:
                best, chosen = rank, policy
        return chosen


def policy_table(
    *, at: datetime, extra: Iterable[RetentionPolicy] = (), stamp: tuple[Any, ...] | None = None
) -> PolicyTable:
    policies = {
        (p.jurisdiction, p.category, p.applies_to): p for p in policies_in_force(at=at, stamp=stamp)
    }
    for policy in extra:
        policies[(policy.jurisdiction, policy.category, policy.applies_to)] = policy
    return PolicyTable(tuple(policies.values()))


@dataclass(frozen=True)
class Expiry:
    expires_at: datetime | None
    basis: str  # "policy:<id>", "choice:<name>", or "" when nothing limits it


def effective_expiry(
    *,
    table: PolicyTable,
    category: str,
    country: str,
    is_child: bool,
    choice: str | None,
    recorded_at: datetime,
    created_at: datetime,
) -> Expiry:
    """The shorter of the policy and the user's choice; `dont_save` ends at ingest."""
    candidates: list[tuple[datetime, str]] = []
    policy = table.resolve(country=country, category=category, is_child=is_child)
    if policy is not None:
        candidates.append(
            (recorded_at + timedelta(days=policy.retention_days), f"policy:{policy.pk}")
        )
    if choice is not None:
        days = CHOICE_DAYS[choice]
        if days == 0:
            candidates.append((created_at, f"choice:{choice}"))
        elif days is not None:
            candidates.append((recorded_at + timedelta(days=days), f"choice:{choice}"))
    if not candidates:
        return Expiry(None, "")
    expires_at, basis = min(candidates)
    return Expiry(expires_at, basis)


def holds_active() -> QuerySet[LegalHold]:
    return LegalHold.objects.filter(released_at__isnull=True)


def hold_filter(hold: LegalHold, *, prefix: str = "") -> Q:
    """The recordings (as a Q on Recording, or on a model reaching it via `prefix`)
    that `hold` covers."""
    q = (
        Q(**{f"{prefix}profile_id": hold.profile_id})
        if hold.profile_id
        else Q(**{f"{prefix}profile__account_id": hold.account_id})
    )
    if hold.recorded_from is not None:
        q &= Q(**{f"{prefix}recorded_at__gte": hold.recorded_from})
    if hold.recorded_to is not None:
        q &= Q(**{f"{prefix}recorded_at__lte": hold.recorded_to})
    return q


def hold_covers(
    hold: LegalHold, *, profile_id: int, account_id: int, recorded_at: datetime
) -> bool:
    if hold.profile_id is not None and hold.profile_id != profile_id:
        return False
    if hold.account_id is not None and hold.account_id != account_id:
        return False
    if hold.recorded_from is not None and recorded_at < hold.recorded_from:
        return False
    return not (hold.recorded_to is not None and recorded_at > hold.recorded_to)


def retention_policies_list(*, include_retired: bool = False) -> QuerySet[RetentionPolicy]:
    policies = RetentionPolicy.objects.order_by(
        "jurisdiction", "category", "applies_to", "-version"
    )
    return policies if include_retired else policies.filter(retired_at__isnull=True)


def retention_policy_get(*, pk: int) -> RetentionPolicy:
    policy = RetentionPolicy.objects.filter(pk=pk).first()
    if policy is None:
        raise NotFound("Retention policy")
    return policy


def legal_holds_list(*, include_released: bool = False) -> QuerySet[LegalHold]:
    holds = LegalHold.objects.select_related("account", "profile").order_by("-created_at")
    return holds if include_released else holds.filter(released_at__isnull=True)


def legal_hold_get(*, pk: int) -> LegalHold:
    hold = LegalHold.objects.select_related("account", "profile").filter(pk=pk).first()
    if hold is None:
        raise NotFound("Legal hold")
    return hold


def deletion_requests_visible_to(caller: Caller, *, scope: str) -> QuerySet[DeletionRequest]:
    """The deletion requests `caller` may see (the API and the privacy page ask it)."""
    return visible_rows(
        DeletionRequest.objects.select_related("profile__account"),
        caller,
        scope=scope,
        owner="profile__account__user_id",
    )


def deletion_request_for_caller(*, caller: Caller, public_id: str, scope: str) -> DeletionRequest:
    """The request if `caller` may see it; anyone else is told it does not exist."""
    request = deletion_requests_visible_to(caller, scope=scope).filter(public_id=public_id).first()
    if request is None:
        raise NotFound("Deletion request")
    return request


def deletion_request_get(*, public_id: str) -> DeletionRequest:
    request = (
        DeletionRequest.objects.select_related("profile__account")
        .filter(public_id=public_id)
        .first()
    )
    if request is None:
        raise NotFound("Deletion request")
    return request


def retention_policy_preview(
    *,
    jurisdiction: str,
    category: str,
    applies_to: str,
    retention_days: int,
    effective_from: datetime,
    now: datetime,
) -> dict[str, Any]:
    """What a proposed version would purge: at once when it takes effect, and month by
    month after, among artefacts that exist now (more specific policies and shorter
    user choices keep their say)."""
    from compliance.accounts.models import Account
    from compliance.recordings.models import Artefact, ArtefactState

    proposed = RetentionPolicy(
        jurisdiction=jurisdiction,
        category=category,
        applies_to=applies_to,
        retention_days=retention_days,
        effective_from=effective_from,
        version=0,
    )
    table = policy_table(at=effective_from, extra=[proposed])
    winning = Q(pk__in=[])
    for country in Account.objects.order_by().values_list("jurisdiction", flat=True).distinct():
        for is_child in (False, True):
            if table.resolve(country=country, category=category, is_child=is_child) is proposed:
                winning |= Q(
                    recording__profile__account__jurisdiction=country,
                    recording__profile__is_child=is_child,
                )
    scope = Artefact.objects.filter(winning, category=category, state=ArtefactState.ACTIVE)
    cutoff = effective_from - timedelta(days=retention_days)
    not_sooner = Q(expires_at__isnull=True) | Q(expires_at__gt=effective_from)
    by_month: dict[str, int] = {}
    horizon = effective_from + timedelta(days=366)
    for day, count in (
        scope.filter(
            not_sooner,
            recording__recorded_at__gt=cutoff,
            recording__recorded_at__lte=horizon - timedelta(days=retention_days),
        )
        .annotate(day=TruncDate("recording__recorded_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by()
    ):
        month = (day + timedelta(days=retention_days)).strftime("%Y-%m")
        by_month[month] = by_month.get(month, 0) + count
    return {
        "effective_from": effective_from,
        "in_scope": scope.count(),
        "purged_when_effective": scope.filter(
            not_sooner, recording__recorded_at__lte=cutoff
        ).count(),
        "already_due_sooner": scope.filter(expires_at__lte=effective_from).count(),
        "purged_later_by_month": [
            {"month": m, "artefacts": n} for m, n in sorted(by_month.items())
        ],
        "generated_at": now,
    }
