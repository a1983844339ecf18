"""Retention writes: policies, legal holds, user choices, deletion requests, and the
expiry of every artefact that follows from them.

An artefact's `expires_at` is the shorter of the policy in force and the user's
choice, stored so the purge can find what is due through an index. It is set at
ingest, recomputed for one profile when its user changes their choice, and for a
policy's scope when a version comes into force or is retired (a Celery task, in
batches, since a scope can hold millions of artefacts).

LOCK ORDER, the one the whole codebase keeps: account -> profile -> consent lock ->
consent state -> recording -> artefact -> review item -> (reviewer quota row) -> ledger
append last. A reschedule locks the profiles of a batch FOR SHARE, then the batch's
active artefacts in id order; a retention-choice change holds its profile before that; a
hold locks profiles before it is written. The purge's claim locks profiles before
artefacts too, so none of these can wait for each other in a cycle.
"""

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.core.audit import audit_bulk_change
from compliance.core.enqueue import enqueue_on_commit
from compliance.core.errors import ApplicationError, FieldError, field_error
from compliance.core.fields import is_printable_line
from compliance.ledger.services import ledger_append
from compliance.recordings.models import Artefact, ArtefactState, Category
from compliance.recordings.services import ExpirySchedule

from .models import AppliesTo, DeletionRequest, LegalHold, RetentionPolicy
from .selectors import (
    JURISDICTION_GROUPS,
    POLICY_LOCK_KEY,
    WILDCARD,
    PolicyTable,
    effective_expiry,
    hold_filter,
    is_valid_jurisdiction,
    policy_stamp,
    policy_stamp_sql,
    policy_table,
)

MAX_RETENTION_DAYS = 36_500
RESCHEDULE_BATCH = 5_000
RELEASE_BATCH = 10_000


# --- expiry ---------------------------------------------------------------------


_EXPIRY_FIELDS = (
    "id",
    "category",
    "created_at",
    "recording__recorded_at",
    "recording__profile__is_child",
    "recording__profile__account__jurisdiction",
    "recording__profile__retention_choice",
    "expires_at",
    "expiry_basis",
)


def profiles_lock_shared(profile_ids: list[int]) -> None:
    """Lock the profiles FOR SHARE, in id order: the lock that orders a reader of a
    profile's retention and holds (the purge's claim, a deletion request's finish, a
    reschedule) after a retention-choice change (FOR NO KEY UPDATE) or a hold being
    placed (FOR UPDATE) on the same profile, while such readers go on side by side."""
    if not profile_ids or connection.vendor != "postgresql":
        return  # SQLite: the transaction already excludes every other writer
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Profile._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR SHARE",  # noqa: S608
            [profile_ids],
        )


def _expiry_rows(
    artefacts: Q, after_id: int, limit: int, up_to: int | None = None
) -> tuple[int, list[tuple]]:
    """The next batch of active artefacts after `after_id` (and no later than `up_to`),
    locked, with what their expiry follows from, and the last id looked at (0: nothing
    is left).

    Locks in the codebase's order: first the profiles (found by a read without
    locks), then the artefacts, FOR NO KEY UPDATE in id order and only those still
    `active`: a row a purge has claimed (`purging`) or finished (`purged`) is neither
    waited for nor written. Locking the artefacts without their profiles
    first deadlocked with the purge's claim, which takes the profiles first."""
    bounded = Q(id__gt=after_id) if up_to is None else Q(id__gt=after_id, id__lte=up_to)
    peeked = list(
        Artefact.objects.filter(artefacts, bounded, state=ArtefactState.ACTIVE)
        .order_by("id")
        .values_list("id", "recording__profile_id")[:limit]
    )
    if not peeked:
        return 0, []
    profiles_lock_shared(sorted({p for _, p in peeked if p is not None}))
    rows = list(
        Artefact.objects.select_for_update(no_key=True, of=("self",))
        .filter(artefacts, state=ArtefactState.ACTIVE, pk__any_of=[pk for pk, _ in peeked])
        .order_by("id")
        .values_list(*_EXPIRY_FIELDS)
    )
    return peeked[-1][0], rows


def artefacts_reschedule(
    *, artefacts: Q, now: datetime, table: PolicyTable | None = None, up_to: int | None = None
) -> int:
    """Recompute `expires_at` for the active artefacts matching `artefacts` (with ids up
    to `up_to`, when given); returns how many changed. Idempotent, in id-ordered batches
    of one transaction each (inside the caller's, when it has one)."""
    table = table or policy_table(at=now)
    changed_total = 0
    last_id = 0
    while True:
        with transaction.atomic():
            last_id, rows = _expiry_rows(artefacts, last_id, RESCHEDULE_BATCH, up_to)
            if not last_id:
                return changed_total
            changed = []
            for (
                pk,
                category,
                created_at,
                recorded_at,
                is_child,
                country,
                choice,
                old_at,
                old_basis,
            ) in rows:
                expiry = effective_expiry(
                    table=table,
                    category=category,
                    country=country,
                    is_child=is_child,
                    choice=choice,
                    recorded_at=recorded_at,
                    created_at=created_at,
                )
                if (expiry.expires_at, expiry.basis) != (old_at, old_basis):
                    changed.append(
                        Artefact(id=pk, expires_at=expiry.expires_at, expiry_basis=expiry.basis)
                    )
            if changed:
                Artefact.objects.bulk_update(
                    changed, ["expires_at", "expiry_basis"], batch_size=1000
                )
        changed_total += len(changed)


def artefacts_schedule_new(
    *,
    artefacts: Iterable[Artefact],
    profile: Profile,
    recorded_at: datetime,
    table: PolicyTable,
) -> None:
    """Set the expiry of artefacts being created (before they are saved).

    `table` lets an ingest of many recordings resolve the policies once; it must be
    read inside the transaction that writes the artefacts, through the policies' lock
    (`_ArtefactsExpiryAt`), so that no artefact is scheduled under a version superseded
    before that transaction began or missed by a version's reschedule.
    """
    for artefact in artefacts:
        expiry = effective_expiry(
            table=table,
            category=artefact.category,
            country=profile.account.jurisdiction,
            is_child=profile.is_child,
            choice=profile.retention_choice,
            recorded_at=recorded_at,
            created_at=artefact.created_at or timezone.now(),
        )
        artefact.expires_at, artefact.expiry_basis = expiry.expires_at, expiry.basis


class _ArtefactsExpiryAt:
    """`artefacts_expiry_at(now)`: the expiry of the artefacts an ingest or an
    annotation creates at `now`, the policies read once. An action hands it to the
    recordings app, which calls it inside the transaction that inserts the artefacts
    (see `artefacts_schedule_new` for why there). The ingest reads the policies' stamp
    with its profile lock (`reads`, one statement for both) and calls `given`."""

    @property
    def reads(self) -> str:
        return policy_stamp_sql(for_new_artefacts=True)

    def __call__(self, now: datetime) -> ExpirySchedule:
        # A write schedules at a time no earlier than its read of the policies (what
        # `artefacts_scheduled_so_far` relies on), whenever the caller took `now`.
        stamp = policy_stamp(for_new_artefacts=True)
        return self._schedule(policy_table(at=max(now, timezone.now()), stamp=stamp))

    def given(self, now: datetime, read: tuple[Any, ...]) -> ExpirySchedule:
        return self._schedule(policy_table(at=now, stamp=read))

    @staticmethod
    def _schedule(table: PolicyTable) -> ExpirySchedule:
        def schedule(
            *, artefacts: Iterable[Artefact], profile: Profile, recorded_at: datetime
        ) -> None:
            artefacts_schedule_new(
                artefacts=artefacts, profile=profile, recorded_at=recorded_at, table=table
            )

        return schedule


artefacts_expiry_at = _ArtefactsExpiryAt()


def profile_reschedule(*, profile: Profile) -> int:
    return artefacts_reschedule(artefacts=Q(recording__profile=profile), now=timezone.now())


def _policy_scope(policy: RetentionPolicy) -> Q:
    q = Q(category=policy.category)
    if policy.jurisdiction in JURISDICTION_GROUPS:
        q &= Q(
            recording__profile__account__jurisdiction__in=JURISDICTION_GROUPS[policy.jurisdiction]
        )
    elif policy.jurisdiction != WILDCARD:
        q &= Q(recording__profile__account__jurisdiction=policy.jurisdiction)
    if policy.applies_to != AppliesTo.ALL:
        q &= Q(recording__profile__is_child=policy.applies_to == AppliesTo.CHILDREN)
    return q


# Held by the one run of `retention_policies_apply` at a time: two runs at once, each
# with the table of its own moment, could each write a row last, the older table
# after the newer.
_APPLY_LOCK_KEY = 0x4541_5253_484F_51  # beside POLICY_LOCK_KEY


@contextmanager
def _holding(key: int) -> Iterator[None]:
    """PostgreSQL's advisory lock `key`, exclusive, for the session, released on
    leaving: whether or not the caller is in a transaction, it is held only as long as
    the body runs. Inside a transaction the body runs in a savepoint, so that the
    transaction can still release the lock after an error. Nothing on SQLite."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def artefacts_scheduled_so_far() -> int | None:
    """The highest artefact id that a reschedule of the versions in force now must look
    at: every artefact written later is scheduled under those versions.

    On PostgreSQL, every write that creates artefacts reads the policies' stamp holding
    POLICY_LOCK_KEY shared until its transaction ends (selectors.policy_stamp_sql), and
    takes the time it schedules at after that read. So taking the lock exclusively waits
    for every write that read the policies before, and any write after that reads them
    anew, at a later time than the caller's next `timezone.now()`. Without the bound, a
    reschedule under a steady ingest never ran out of new artefacts to look at, and its
    version was never marked applied. The lock is held for the one read of the highest
    id (new writes wait behind it meanwhile). None on SQLite, whose writers take
    turns: the reschedule then reads until nothing is left."""
    if connection.vendor != "postgresql":
        return None
    with _holding(POLICY_LOCK_KEY), connection.cursor() as cursor:
        # a statement of its own: its snapshot is taken after the lock was granted
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {Artefact._meta.db_table}")  # noqa: S608
        return int(cursor.fetchone()[0])


def _pending(now: datetime) -> QuerySet[RetentionPolicy]:
    """Versions in force or retired by `now` whose scope is not rescheduled yet. A
    retirement dated after `now` waits for a later run: the table at `now` still has
    the version in force."""
    return RetentionPolicy.objects.filter(
        Q(retired_at__isnull=True) | Q(retired_at__lte=now),
        applied_at__isnull=True,
        effective_from__lte=now,
    )


def retention_policies_apply(*, now: datetime | None = None) -> int:
    """Reschedule the scope of every version that has come into force (or been
    retired) and is not applied yet: the artefacts written until now
    (`artefacts_scheduled_so_far`; later ones are scheduled under the version). Run by
    beat every minute and after each policy change, one run at a time (a second waits
    for the first, then finds what is left); a run that dies leaves the version
    unapplied for the next one. The time is taken after the bound, so that every
    artefact within it was scheduled earlier, under a table no newer than this run's.
    A version is marked applied only as this run read it: one retired meanwhile stays
    pending for the retirement's own run."""
    if not _pending(now or timezone.now()).exists():
        return 0
    with _holding(_APPLY_LOCK_KEY):
        up_to = artefacts_scheduled_so_far()
        at = now or timezone.now()
        pending = list(_pending(at).order_by("effective_from"))
        table = policy_table(at=at)
        for policy in pending:
            artefacts_reschedule(artefacts=_policy_scope(policy), now=at, table=table, up_to=up_to)
            RetentionPolicy.objects.filter(
                pk=policy.pk, applied_at__isnull=True, retired_at=policy.retired_at
            ).update(applied_at=at)
        return len(pending)


_RANGE_FIELDS = {
    "from": [FieldError("after_to", "The first day must be on or before the last day.")],
    "to": [FieldError("before_from", "The last day must be on or after the first day.")],
}


# --- policies -------------------------------------------------------------------


def _validate_policy(
    jurisdiction: str, category: str, applies_to: str, retention_days: int
) -> None:
    """The domain's bounds on a policy whose values the edge (a serializer, an officer's
    form) has already parsed into their types."""
    fields: dict[str, list[FieldError]] = {}
    codes = []
    if not is_valid_jurisdiction(jurisdiction):
        fields["jurisdiction"] = [
            FieldError("invalid", "Must be a country code, a group (EU, EEA) or *.")
        ]
        codes.append("unknown_jurisdiction")
    if category not in Category.values:
        fields["category"] = [
            FieldError("unknown", f"Must be one of {', '.join(Category.values)}.")
        ]
        codes.append("unknown_category")
    if applies_to not in AppliesTo.values:
        fields["applies_to"] = [
            FieldError("invalid", f"Must be one of {', '.join(AppliesTo.values)}.")
        ]
        codes.append("validation_error")
    if not 0 <= retention_days <= MAX_RETENTION_DAYS:
        fields["retention_days"] = [
            FieldError("invalid", f"Must be a whole number of days from 0 to {MAX_RETENTION_DAYS}.")
        ]
        codes.append("validation_error")
    if fields:
        code = codes[0] if len(codes) == 1 else "validation_error"
        raise ApplicationError(code, "The policy is not valid.", fields=fields)


@transaction.atomic
def retention_policy_create(
    *,
    jurisdiction: str,
    category: str,
    retention_days: int,
    applies_to: str = AppliesTo.ALL,
    effective_from: datetime | None = None,
    actor: str,
) -> RetentionPolicy:
    """A new version for its key, in force from `effective_from` (default now).

    Its scope is rescheduled after commit by a task, and by the beat's sweep if that
    task is lost.
    """
    _validate_policy(jurisdiction, category, applies_to, retention_days)
    now = timezone.now()
    effective_from = effective_from or now
    key = {"jurisdiction": jurisdiction, "category": category, "applies_to": applies_to}
    if connection.vendor == "postgresql":
        # serialise version numbering per key (two creates at once would clash)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                [f"policy:{jurisdiction}:{category}:{applies_to}"],
            )
    latest = RetentionPolicy.objects.filter(**key).aggregate(v=Max("version"))["v"] or 0
    policy = RetentionPolicy.objects.create(
        **key,
        retention_days=retention_days,
        version=latest + 1,
        effective_from=effective_from,
        created_by=actor,
    )
    ledger_append(
        kind="retention_policy.created",
        subject=f"retention_policy:{policy.pk}",
        actor=actor,
        payload={
            **key,
            "retention_days": retention_days,
            "version": policy.version,
            "effective_from": effective_from,
        },
    )
    _apply_after_commit()
    return policy


@transaction.atomic
def retention_policy_retire(*, policy: RetentionPolicy, actor: str) -> RetentionPolicy:
    """Retire this version and the ones before it; the key has no policy from now on
    (a later version scheduled for the future still starts when due)."""
    now = timezone.now()
    locked = RetentionPolicy.objects.select_for_update().get(pk=policy.pk)
    if locked.retired_at is not None:
        return locked
    RetentionPolicy.objects.filter(
        jurisdiction=locked.jurisdiction,
        category=locked.category,
        applies_to=locked.applies_to,
        version__lte=locked.version,
        retired_at__isnull=True,
    ).update(retired_at=now, applied_at=None)
    ledger_append(
        kind="retention_policy.retired",
        subject=f"retention_policy:{locked.pk}",
        actor=actor,
        payload={
            "jurisdiction": locked.jurisdiction,
            "category": locked.category,
            "version": locked.version,
        },
    )
    _apply_after_commit()
    locked.refresh_from_db()
    return locked


def _apply_after_commit() -> None:
    """The new or retired version is itself the work (`applied_at` is empty): the beat's
    retention sweep applies it within a minute if this hint is lost."""
    enqueue_on_commit("retention.apply_policies")


# --- holds ----------------------------------------------------------------------


def _lock_profiles(profile_ids: list[int]) -> None:
    """The lock a hold and a purge share: the profiles' rows (docs/reliability.md,
    "Hold against purge"). A hold takes them FOR UPDATE; the purge FOR SHARE, then
    re-checks holds."""
    list(
        Profile.objects.select_for_update()
        .filter(pk__in=profile_ids)
        .order_by("pk")
        .values_list("pk")
    )


@transaction.atomic
def legal_hold_place(
    *,
    account: Account | None = None,
    profile: Profile | None = None,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
    reason: str,
    case_reference: str,
    actor: str,
) -> LegalHold:
    if (account is None) == (profile is None):
        raise ApplicationError(
            "validation_error",
            "A hold covers exactly one account or one profile.",
            fields={
                name: [FieldError("one_target", "Give the id of an account or of a profile.")]
                for name in ("account", "profile")
            },
        )
    if recorded_from and recorded_to and recorded_from > recorded_to:
        raise ApplicationError(
            "invalid_range",
            "`from` lies after `to`.",
            fields=_RANGE_FIELDS,
        )
    if not reason.strip() or not case_reference.strip():
        raise ApplicationError(
            "validation_error",
            "A hold needs a reason and a case reference.",
            fields={
                k: [FieldError("required", "This field is required.")]
                for k, v in (("reason", reason), ("case_reference", case_reference))
                if not v.strip()
            },
        )
    if not is_printable_line(case_reference):
        # the holds' lists and the ledger quote it: one line, nothing hidden in it
        raise ApplicationError(
            "validation_error",
            "case_reference must be printable text on one line.",
            fields=field_error("case_reference", "invalid", "Must be printable text on one line."),
        )
    profile_ids = (
        [profile.pk]
        if profile
        else list(Profile.objects.filter(account=account).values_list("pk", flat=True))
    )
    _lock_profiles(profile_ids)
    hold = LegalHold.objects.create(
        account=account,
        profile=profile,
        recorded_from=recorded_from,
        recorded_to=recorded_to,
        reason=reason,
        case_reference=case_reference,
        created_by=actor,
    )
    ledger_append(
        kind="legal_hold.placed",
        subject=f"legal_hold:{hold.pk}",
        actor=actor,
        payload={
            "account": account.external_id if account else None,
            "profile": profile.external_id if profile else None,
            "from": recorded_from,
            "to": recorded_to,
            "case_reference": case_reference,
        },
    )
    return hold


@transaction.atomic
def legal_hold_release(*, hold: LegalHold, actor: str) -> LegalHold:
    """Release the hold; what it kept becomes purgeable again (the next purge takes
    what is past its expiry, unless another hold still covers it)."""
    locked = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if locked.released_at is not None:
        return locked
    locked.released_at = timezone.now()
    locked.released_by = actor
    locked.save(update_fields=["released_at", "released_by"])
    blocked = Artefact.objects.filter(hold_filter(locked, prefix="recording__"), purge_blocked=True)
    # A hold can cover millions of artefacts: lock, unblock and audit them in id-ordered
    # batches (keyset on id), each batch's ids sent as one parameter; all in this one
    # transaction, so that the release and everything it unblocks commit together.
    last_id = 0
    while True:
        batch = list(
            blocked.filter(pk__gt=last_id)
            .order_by("pk")
            .select_for_update(of=("self",))
            .values_list("pk", flat=True)[:RELEASE_BATCH]
        )
        if not batch:
            break
        Artefact.objects.filter(pk__any_of=batch).update(purge_blocked=False)
        audit_bulk_change(
            model=Artefact, pks=batch, changes={"purge_blocked": (True, False)}, actor=actor
        )
        if len(batch) < RELEASE_BATCH:
            break
        last_id = batch[-1]
    ledger_append(
        kind="legal_hold.released",
        subject=f"legal_hold:{locked.pk}",
        actor=actor,
        payload={"case_reference": locked.case_reference},
    )
    return locked


# --- deletion requests -----------------------------------------------------------


@transaction.atomic
def deletion_request_create(
    *, profile: Profile, recorded_from: datetime | None, recorded_to: datetime | None, actor: str
) -> DeletionRequest:
    if recorded_from and recorded_to and recorded_from > recorded_to:
        raise ApplicationError(
            "invalid_range",
            "`from` lies after `to`.",
            fields=_RANGE_FIELDS,
        )
    request = DeletionRequest.objects.create(
        public_id="del_" + secrets.token_urlsafe(12),
        profile=profile,
        recorded_from=recorded_from,
        recorded_to=recorded_to,
        requested_by=actor,
    )
    ledger_append(
        kind="deletion_request.received",
        subject=f"profile:{profile.external_id}",
        actor=actor,
        payload={"request": request.public_id, "from": recorded_from, "to": recorded_to},
    )
    # The request in `received` is the work; the beat's sweep runs it if this is lost.
    enqueue_on_commit("retention.run_deletion_request", request.public_id)
    return request
