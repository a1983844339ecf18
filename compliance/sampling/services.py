"""Review sampling and the reviewer's access to clips.

WHAT CANNOT BE UNDONE: a clip that reached a reviewer has been heard, and a signed link
already given cannot be recalled. So nothing is handed out (a sample drawn, a clip
streamed, an annotation accepted) except under the lock that orders it against an
opt-out, after the rule has been re-checked in that same transaction; links live
minutes; every fetch re-checks.

THE TRANSACTIONS (an opt-out against a hand-off; a purge against a hand-off)
The lock order of the whole codebase is account -> profile -> consent lock -> consent
state -> recording -> artefact -> review item -> reviewer (quota) row -> ledger append,
last. Sampling keeps it: every lock below is taken in that order, or with SKIP LOCKED.
- Draw, one transaction: pick candidates; lock their profiles' consent locks FOR KEY
  SHARE (`consent_locks_take`: rows of a small fixed table, `ConsentLock`, which
  conflict with the opt-out's FOR UPDATE and with nothing else); then their recording
  rows FOR NO KEY UPDATE (a purge's tombstoning waits for the draw, or the draw for
  it); re-check the rule for every candidate in a new statement, which under READ
  COMMITTED sees every opt-out and purge that committed before the locks were granted;
  create the items; lock the reviewer row and count the quota, this draw's items
  included (two draws of one reviewer are ordered there); one ledger entry.
- Withdrawal: the action `consent_set` (compliance/actions/consent.py) locks the
  profile's consent lock FOR UPDATE and its state row, saves it, and calls
  `review_items_revoke_for_profile` in its transaction: every open item of the profile
  is revoked. Its UPDATE runs after its lock was granted, so it sees every item of a
  draw that held the lock before it.
- Audio fetch and annotation, one transaction: take the profile's consent lock, then
  lock the recording (no key: a purge's tombstoning, which locks the recording and
  then revokes its items, waits for the access, or the access for it), then the item
  FOR UPDATE; re-check with `facts_for` + `decide`; record the access in the ledger,
  allowed or refused.
Either the opt-out commits first (the draw waits for its lock, re-checks, and leaves the
profile out) or the draw does (the opt-out waits, then revokes the new items). There is
no third order.

WHY A RERUN IS SAFE: a draw that fails leaves nothing (one transaction); revocation and
expiry are conditional UPDATEs of open items only, so repeating them changes nothing.
"""

import logging
import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from compliance.accounts.models import Profile
from compliance.consent.models import Purpose
from compliance.consent.purposes import validate_purpose
from compliance.consent.services import consent_locks_take, consent_locks_take_free
from compliance.core.countries import is_country
from compliance.core.errors import (
    ApplicationError,
    Conflict,
    Gone,
    NotFound,
    TooManyRequests,
    field_error,
)
from compliance.core.sql import pg_array
from compliance.eligibility.rules import decide, facts_for
from compliance.ledger.services import ledger_append
from compliance.recordings.models import Artefact, ArtefactState, Category, Recording
from compliance.recordings.services import (
    ExpirySchedule,
    annotation_create,
    annotation_schedule,
)
from compliance.retention.services import artefacts_expiry_at

from .links import link_seconds
from .models import DEFAULT_DAILY_QUOTA, Reviewer, ReviewItem, ReviewItemState
from .selectors import (
    SampleScope,
    candidates_recheck,
    reviewable_purposes,
    sample_pick,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

SAMPLE_SIZE_LIMIT = 1_000
MAX_ANNOTATION_CHARS = 100_000
# How long a drawn item may be worked on (a reviewer's shift); override with
# settings.REVIEW_ITEM_SECONDS. An item without a reviewer is reachable only through
# its link, so it lives as long as the link does.
DEFAULT_ITEM_SECONDS = 8 * 3600
EXPIRE_BATCH = 5_000
# Candidates drawn beyond the size asked, so that a few lost to a concurrent withdrawal
# at the re-check do not leave the sample short.
_MARGIN = 0.01
_ROUNDS = 3


def _item_seconds() -> int:
    return int(getattr(settings, "REVIEW_ITEM_SECONDS", DEFAULT_ITEM_SECONDS))


def review_item_seconds(*, with_reviewer: bool) -> int:
    """How long a drawn item lives: a reviewer's shift, or its link's lifetime."""
    return _item_seconds() if with_reviewer else link_seconds()


def _new_item_id() -> str:
    return secrets.token_urlsafe(16)


COUNTRY_NEEDED = "An ISO 3166-1 alpha-2 country code is needed."
ANNOTATION_NEEDED = "A non-empty string."


def _invalid(
    code: str, field_name: str, message: str, field_code: str = "invalid"
) -> ApplicationError:
    return ApplicationError(code, message, fields=field_error(field_name, field_code, message))


# --- reviewers ---------------------------------------------------------------------


@transaction.atomic
def reviewer_create(
    *, user: User, location: str, daily_quota: int = DEFAULT_DAILY_QUOTA, actor: str
) -> Reviewer:
    if not isinstance(location, str) or not is_country(location):
        raise _invalid(
            "unknown_location",
            "location",
            COUNTRY_NEEDED,
            "unknown",
        )
    if not isinstance(daily_quota, int) or isinstance(daily_quota, bool) or daily_quota < 0:
        raise _invalid("validation_error", "daily_quota", "A whole number from 0.")
    if Reviewer.objects.filter(user=user).exists():
        raise Conflict("duplicate", "This user is a reviewer already.")
    reviewer = Reviewer.objects.create(user=user, location=location, daily_quota=daily_quota)
    ledger_append(
        kind="reviewer.created",
        subject=f"reviewer:{reviewer.pk}",
        actor=actor,
        payload={"user": user.pk, "location": location, "daily_quota": daily_quota},
    )
    return reviewer


# --- the draw ----------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRequest:
    """A draw as the edge parsed it (compliance/edge/parsing.py): typed, each value of
    the right kind; `sample_draw` checks what only the domain knows."""

    purpose: str
    size: int
    reviewer_location: str | None = None
    # a reviewer's username: the items are theirs and count to their quota
    reviewer: str | None = None
    jurisdiction: str | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None


@dataclass(frozen=True)
class DrawnItem:
    id: str
    transcript: str | None
    expires_at: datetime


@dataclass(frozen=True)
class Draw:
    purpose: str
    reviewer_location: str
    items: list[DrawnItem] = field(default_factory=list)


def _validated(request: SampleRequest) -> tuple[SampleScope, int, Reviewer | None]:
    validate_purpose(request.purpose)
    size = request.size
    if size < 1:
        raise _invalid("validation_error", "size", "A whole number from 1.")
    if size > SAMPLE_SIZE_LIMIT:
        raise _invalid(
            "sample_too_large", "size", f"At most {SAMPLE_SIZE_LIMIT} items per draw.", "max_value"
        )
    reviewer = None
    if request.reviewer is not None:
        user_model = get_user_model()
        reviewer = (
            Reviewer.objects.select_related("user")
            .filter(**{f"user__{user_model.USERNAME_FIELD}": request.reviewer})
            .filter(user__is_active=True)
            .first()
        )
        if reviewer is None:
            raise _invalid(
                "unknown_reviewer", "reviewer", "No active reviewer of that name.", "unknown"
            )
    location = request.reviewer_location
    if location is None and reviewer is not None:
        location = reviewer.location
    if location is None:
        raise _invalid("validation_error", "reviewer_location", "Required.", "required")
    if not is_country(location):
        raise _invalid(
            "unknown_location",
            "reviewer_location",
            COUNTRY_NEEDED,
            "unknown",
        )
    if reviewer is not None and reviewer.location != location:
        raise _invalid(
            "reviewer_location_mismatch",
            "reviewer_location",
            "The reviewer named works from another location.",
        )
    jurisdiction = request.jurisdiction
    if jurisdiction is not None and not is_country(jurisdiction):
        raise _invalid(
            "unknown_jurisdiction",
            "jurisdiction",
            COUNTRY_NEEDED,
            "unknown",
        )
    for name in ("recorded_from", "recorded_to"):
        value = getattr(request, name)
        if value is not None and timezone.is_naive(value):
            raise _invalid("validation_error", name, "Needs a time zone.")
    if (
        request.recorded_from is not None
        and request.recorded_to is not None
        and request.recorded_from >= request.recorded_to
    ):
        raise _invalid("validation_error", "recorded_to", "Must be after recorded_from.")
    scope = SampleScope(
        purpose=request.purpose,
        reviewer_location=location,
        jurisdiction=jurisdiction,
        recorded_from=request.recorded_from,
        recorded_to=request.recorded_to,
    )
    return scope, size, reviewer


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _check_quota(reviewer: Reviewer, size: int, now: datetime, *, drawn: int | None) -> None:
    """Refuse a draw of `size` beyond what is left of the reviewer's quota today.

    With `drawn` (the number of items this draw has inserted) it is the check that
    holds: the reviewer's row is locked, after the items, as the lock order has it, and
    today's items are counted with this draw's own; a second draw of the same reviewer
    waits here for the first to commit and then counts its items too. Without `drawn`
    it is an early answer, unlocked, so that a spent quota fails before the draw's work.
    """
    if drawn is None:
        quota, used = reviewer.daily_quota, 0
        before = ReviewItem.objects.filter(reviewer=reviewer, created_at__gte=_day_start(now))
    else:
        locked = Reviewer.objects.select_for_update().get(pk=reviewer.pk)
        quota, used = locked.daily_quota, drawn
        before = ReviewItem.objects.filter(reviewer=locked, created_at__gte=_day_start(now))
    left = max(0, quota - (before.count() - used))
    if size > left:
        raise TooManyRequests(
            "quota_exceeded",
            f"The reviewer's daily quota of {quota} clips has {left} left today.",
            fields=field_error("size", "max_value", f"At most {left} more today."),
        )


def _plan_for_lookups() -> None:
    """The draw looks up a few thousand rows by key, on pages that are in memory. At
    PostgreSQL's default random_page_cost (4, for spinning disks) the planner prefers
    hashing the whole profile table for that, many times slower; at 1.1 (the usual
    value for SSDs and cached data) it looks them up. And serially: a parallel plan
    (max_parallel_workers_per_gather, 2 by default) had each worker probe every picked
    id again and scan the whole profile index to merge-join it, nearly twice the pages
    of the serial plan for no shorter a draw, and a cost that grows with the profiles
    rather than with the ids (docs/capacity.md, "At 10x the data"). Both for this
    transaction only (SET LOCAL), in one statement.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('random_page_cost', '1.1', true),"
                " set_config('max_parallel_workers_per_gather', '0', true)"
            )


# What the draw's ledger entry names of each recording it holds: the recording's
# external id and its profile's ('' for none), read by the statement that locks it.
Names = dict[int, tuple[str, str]]


def _items_by_profile(handed: dict[int, str], names: Names) -> dict[str, dict[str, Any]]:
    """Each profile's part of the draw's ledger entry: its items and their recordings,
    so that a review is provable from the log (by the profile's evidence bundle) while
    the entry itself names no item, recording or profile."""
    by_profile: dict[str, list[dict[str, str]]] = {}
    for pk in sorted(handed):
        recording, profile = names[pk]
        by_profile.setdefault(profile, []).append(
            {"review_item": handed[pk], "recording": recording}
        )
    return {profile: {"items": items} for profile, items in by_profile.items()}


def _profiles_of(ids: list[int]) -> list[int]:
    """The profiles of the picked recordings, read without a lock: their consent locks
    are taken before the recordings (the lock order), and `_lock_recordings` keeps only
    the recordings whose profile is among those locked."""
    rows = Recording.objects.filter(pk__any_of=ids).values_list("profile_id", flat=True)
    return sorted({p for p in rows if p is not None})


def _locked_names(recordings: QuerySet[Recording]) -> QuerySet[Recording, tuple]:
    """The rows of `recordings` (which the caller locks, `of=("self",)`: the profile is
    joined for its external id, not locked) in id order, as (pk, profile_id, external
    id, the profile's external id): what the ledger entry names, read by the statement
    that locks them rather than by another lookup of every recording at the end
    (docs/capacity.md, "What a draw writes")."""
    return recordings.order_by("pk").values_list(
        "pk", "profile_id", "external_id", "profile__external_id"
    )


def _lock_recordings(ids: list[int], profiles: list[int]) -> Names:
    """Lock the picked recordings FOR NO KEY UPDATE, in id order, after their profiles'
    consent locks; those whose profile is among `profiles` (the ones locked), with their
    names.

    A purge tombstones a recording under FOR UPDATE and then revokes its open items:
    it waits here for the draw, and then revokes the draw's items; or the draw waits
    for the purge, and its re-check then sees the tombstone.
    """
    rows = _locked_names(
        Recording.objects.filter(pk__any_of=ids).select_for_update(no_key=True, of=("self",))
    )
    held = set(profiles)
    return {
        pk: (recording, profile_name or "")
        for pk, profile, recording, profile_name in rows
        if profile in held
    }


def _lock_what_is_free(ids: list[int]) -> Names:
    """For a top-up round, which already holds locks: lock without waiting (SKIP
    LOCKED), so that two draws topping up cannot deadlock (it takes the recordings
    before the consent locks, against the lock order, which SKIP LOCKED makes safe), and
    keep the recordings, with their names, whose row and whose profile's consent lock
    were both free. A consent lock skipped is one that an opt-out may hold: that
    recording is simply not handed out."""
    recordings = {
        pk: (profile, (recording, profile_name or ""))
        for pk, profile, recording, profile_name in _locked_names(
            Recording.objects.filter(pk__any_of=ids).select_for_update(
                no_key=True, skip_locked=True, of=("self",)
            )
        )
    }
    profiles = sorted({p for p, _ in recordings.values() if p is not None})
    held = consent_locks_take_free(profile_ids=profiles)
    return {
        pk: names
        for pk, (profile, names) in recordings.items()
        if profile is not None and profile in held
    }


def _items_insert(
    *,
    item_ids: list[str],
    recording_ids: list[int],
    scope: SampleScope,
    reviewer: Reviewer | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    if connection.vendor != "postgresql":
        ReviewItem.objects.bulk_create(
            ReviewItem(
                id=item_id,
                recording_id=recording_id,
                purpose=scope.purpose,
                reviewer=reviewer,
                reviewer_location=scope.reviewer_location,
                created_at=now,
                expires_at=expires_at,
            )
            for item_id, recording_id in zip(item_ids, recording_ids, strict=True)
        )
        return
    # One statement with two array parameters: bulk_create quotes 12 values a row in
    # Python, which costs more than the insert itself at 1,000 rows.
    table = ReviewItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, recording_id, purpose, reviewer_id,"  # noqa: S608
            " reviewer_location, state, created_at, expires_at, close_reason)"
            " SELECT u.id, u.recording_id, %s, %s, %s, %s, %s, %s, ''"
            " FROM unnest(%s::varchar[], %s::bigint[]) AS u(id, recording_id)",
            [
                scope.purpose,
                reviewer.pk if reviewer else None,
                scope.reviewer_location,
                ReviewItemState.PENDING,
                now,
                expires_at,
                pg_array(item_ids),
                pg_array(recording_ids),
            ],
        )


def sample_draw(
    *,
    request: SampleRequest,
    actor: str,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Draw:
    """Hand out up to `request.size` eligible recordings, uniformly at random, as items.

    Fewer only when fewer are sampleable. What a concurrent withdrawal or draw took
    between the pick and the locks is made up by further rounds (at most `_ROUNDS`),
    each a uniform pick among what is still sampleable.
    """
    scope, size, reviewer = _validated(request)
    now = now or timezone.now()
    # Uniformity is what a sample needs, not secrecy; the seed is unpredictable anyway.
    rng = rng or random.Random(secrets.randbits(64))  # noqa: S311
    lifetime = review_item_seconds(with_reviewer=reviewer is not None)
    expires_at = now + timedelta(seconds=lifetime)
    items: list[DrawnItem] = []
    handed: dict[int, str] = {}  # recording -> the item it went out as
    names: Names = {}
    dropped = rounds = 0
    with transaction.atomic():
        _plan_for_lookups()
        if reviewer is not None:
            _check_quota(reviewer, size, now, drawn=None)
        while len(items) < size and rounds < _ROUNDS:
            rounds += 1
            wanted = size - len(items)
            picked = sample_pick(
                scope=scope, now=now, count=wanted + math.ceil(wanted * _MARGIN), rng=rng
            )
            if rounds == 1:
                profiles = _profiles_of(picked)
                consent_locks_take(profile_ids=profiles)
                held = _lock_recordings(picked, profiles)
            else:
                held = _lock_what_is_free(picked)
            names.update(held)
            # A new statement after the locks: it sees every withdrawal, purge and draw
            # that committed before they were granted.
            still = candidates_recheck(scope, now=now, among=list(held))
            chosen = [pk for pk in picked if pk in still][:wanted]
            item_ids = [_new_item_id() for _ in chosen]
            # Inserted now, so that the next round's pick sees them as handed out.
            _items_insert(
                item_ids=item_ids,
                recording_ids=chosen,
                scope=scope,
                reviewer=reviewer,
                now=now,
                expires_at=expires_at,
            )
            items += [
                DrawnItem(id=item_id, transcript=still[pk], expires_at=expires_at)
                for item_id, pk in zip(item_ids, chosen, strict=True)
            ]
            handed.update(zip(chosen, item_ids, strict=True))
            dropped += len(picked) - len(still)
            if len(picked) < wanted:
                break  # the pick found fewer than wanted: nothing more to find
        if reviewer is not None:
            _check_quota(reviewer, size, now, drawn=len(items))
        ledger_append(
            kind="sample.drawn",
            subject="sample",
            actor=actor,
            payload={
                "purpose": scope.purpose,
                "reviewer_location": scope.reviewer_location,
                "reviewer": reviewer.pk if reviewer else None,
                "jurisdiction": scope.jurisdiction,
                "recorded_from": scope.recorded_from,
                "recorded_to": scope.recorded_to,
                "requested": size,
                "drawn": len(items),
                "dropped_at_recheck": dropped,
                "rounds": rounds,
            },
            parts=_items_by_profile(handed, names),
        )
    logger.info(
        "sample.drawn purpose=%s location=%s requested=%d drawn=%d",
        scope.purpose,
        scope.reviewer_location,
        size,
        len(items),
    )
    return Draw(purpose=scope.purpose, reviewer_location=scope.reviewer_location, items=items)


# --- revocation and expiry ---------------------------------------------------------


def _close(items: QuerySet[ReviewItem], *, state: str, reason: str, now: datetime) -> int:
    return items.filter(state__in=ReviewItemState.open()).update(
        state=state, closed_at=now, close_reason=reason
    )


def review_items_revoke_for_profile(
    *, profile: Profile, purpose: str, reason: str = "consent_withdrawn"
) -> int:
    """Revoke the profile's open items that needed `purpose`; how many.

    Called by the action `consent_set` inside its transaction, after consent saved the
    withdrawal holding the profile's consent lock FOR UPDATE. Withdrawing human review revokes
    every item (people hear them all); another purpose, the items drawn for it.
    """
    with transaction.atomic():
        items = ReviewItem.objects.filter(
            recording__in=Recording.objects.filter(profile_id=profile.pk).values("pk")
        )
        if purpose != Purpose.HUMAN_REVIEW:
            items = items.filter(purpose=purpose)
        revoked = _close(items, state=ReviewItemState.REVOKED, reason=reason, now=timezone.now())
        if revoked:
            ledger_append(
                kind="review_items.revoked",
                subject=f"profile:{profile.external_id}",
                actor="sampling",
                payload={"purpose": purpose, "reason": reason, "items": revoked},
            )
    return revoked


def review_items_revoke_for_recordings(*, recording_ids: list[int], reason: str) -> int:
    """Revoke every open item of these recordings; how many. The purge calls this in
    its transaction when it tombstones them, through retention's hook
    (`compliance/retention/hooks.py`), where this app registers it when ready."""
    if not recording_ids:
        return 0
    with transaction.atomic():
        items = ReviewItem.objects.filter(recording_id__any_of=recording_ids)
        revoked = _close(items, state=ReviewItemState.REVOKED, reason=reason, now=timezone.now())
        if revoked:
            ledger_append(
                kind="review_items.revoked",
                subject="recordings",
                actor="sampling",
                payload={"reason": reason, "items": revoked, "recordings": len(recording_ids)},
            )
    return revoked


def review_items_expire(*, now: datetime | None = None, batch: int = EXPIRE_BATCH) -> int:
    """Close open items past their expiry, in batches; how many. The gate already treats
    a past expiry as expired: this only makes the state say so."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                ReviewItem.objects.filter(state__in=ReviewItemState.open(), expires_at__lte=now)
                .order_by("expires_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return total
            expired = _close(
                ReviewItem.objects.filter(pk__in=ids),
                state=ReviewItemState.EXPIRED,
                reason="expired",
                now=now,
            )
            if expired:
                ledger_append(
                    kind="review_items.expired",
                    subject="review_items",
                    actor="sampling",
                    payload={"items": expired},
                )
        total += expired
        if len(ids) < batch:
            return total


# --- the gate: audio and annotations -------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who is reaching for an item: through its signed link, or a signed-in user."""

    user: AbstractBaseUser | AnonymousUser | None
    via_link: bool
    actor: str


_CLOSED_CODES: dict[str, tuple[str, str]] = {
    ReviewItemState.REVOKED: ("revoked", "This review item has been revoked."),
    ReviewItemState.EXPIRED: ("expired", "This review item has expired."),
    ReviewItemState.DONE: ("item_done", "This review item is done."),
}


def _gone(state: str) -> ApplicationError:
    code, message = _CLOSED_CODES[state]
    return Gone(code, message)


def _record_access(
    item_id: str, *, action: str, caller: Caller, allowed: bool, reasons: list[str]
) -> None:
    ledger_append(
        kind="review_item.accessed" if allowed else "review_item.refused",
        subject=f"review_item:{item_id}",
        actor=caller.actor,
        payload={
            "action": action,
            "allowed": allowed,
            "reasons": reasons,
            "via": "link" if caller.via_link else "session",
        },
    )


def _item_for(item_id: str, caller: Caller, action: str) -> ReviewItem:
    """The item, if the caller may reach for it; 404 otherwise, never saying whether it
    exists. The signed link is its own authority; a user must be its reviewer."""
    item = (
        ReviewItem.objects.select_related("reviewer").filter(pk=item_id).first()
        if isinstance(item_id, str) and 0 < len(item_id) <= 32
        else None
    )
    if item is None:
        raise NotFound("Review item")
    user = caller.user
    if not caller.via_link and (
        user is None
        or not getattr(user, "is_authenticated", False)
        or item.reviewer is None
        or item.reviewer.user_id != user.pk
    ):
        with transaction.atomic():
            _record_access(
                item.pk, action=action, caller=caller, allowed=False, reasons=["not_assigned"]
            )
        raise NotFound("Review item")
    return item


def _refusals(item: ReviewItem, external_id: str, now: datetime) -> list[str]:
    """Why `item` (of the recording `external_id`) may not reach its reviewer at `now`:
    the rule, re-checked for every purpose the item needs, and whether its reviewer
    still works where it was drawn for."""
    reasons: list[str] = []
    if item.reviewer is not None and item.reviewer.location != item.reviewer_location:
        reasons.append("reviewer_moved")
    for purpose in reviewable_purposes(item.purpose):
        location = item.reviewer_location if purpose == Purpose.HUMAN_REVIEW else None
        facts = facts_for([external_id], purpose=purpose, reviewer_location=location, now=now)
        reasons += decide(facts[external_id], purpose=purpose, reviewer_location=location)
    return list(dict.fromkeys(reasons))


def _playable_audio_key(recording_id: int, now: datetime) -> str | None:
    return (
        Artefact.objects.filter(
            recording_id=recording_id, category=Category.AUDIO, state=ArtefactState.ACTIVE
        )
        .exclude(storage_key="")
        .exclude(expires_at__lte=now)
        .values_list("storage_key", flat=True)
        .first()
    )


def _hand_off(
    item: ReviewItem,
    *,
    caller: Caller,
    action: str,
    now: datetime,
    deliver: Callable[[ReviewItem, str, Recording], tuple[T | None, list[str]]],
    before_locks: Callable[[Recording], None] | None = None,
) -> T:
    """Lock, re-check and either refuse (recorded, the item closed) or
    `deliver(item, audio key, recording)` inside the same transaction. Raises the
    refusal after the transaction commits, so that the refusal and its ledger entry are
    kept. `before_locks(recording)`: what the transaction must do before it locks the
    hand-off's rows (an annotation's read of its retention, which comes earlier in the
    lock order)."""
    refusal: ApplicationError | None = None
    result: T | None = None
    with transaction.atomic():
        # The one read of the recording row, with its profile. Whatever may change under
        # the access (state, flags, owner, consent) is judged by the re-check below,
        # which reads afresh after the locks.
        recording = Recording.objects.select_related("profile").get(pk=item.recording_id)
        if before_locks is not None:
            before_locks(recording)
        if recording.profile_id is not None:
            consent_locks_take(profile_ids=[recording.profile_id])
        # The recording before the item, as the lock order has it: a purge locks the
        # recording and then revokes its items, and an annotation's insert needs a lock
        # on the recording too (its foreign key); taken after the item, the two would
        # deadlock.
        list(
            Recording.objects.filter(pk=item.recording_id)
            .select_for_update(no_key=True)
            .values_list("pk", flat=True)
        )
        locked = (
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("reviewer")
            .get(pk=item.pk)
        )
        if locked.state in ReviewItemState.open() and locked.expires_at <= now:
            locked.state, locked.closed_at, locked.close_reason = (
                ReviewItemState.EXPIRED,
                now,
                "expired",
            )
            locked.save(update_fields=["state", "closed_at", "close_reason"])
        if locked.state not in ReviewItemState.open():
            _record_access(
                locked.pk, action=action, caller=caller, allowed=False, reasons=[locked.state]
            )
            refusal = _gone(locked.state)
        else:
            reasons = _refusals(locked, recording.external_id, now)
            key = _playable_audio_key(locked.recording_id, now)
            if key is None:
                reasons.append("no_audio")
            if not reasons and key is not None:
                result, reasons = deliver(locked, key, recording)
            if reasons:
                locked.state, locked.closed_at, locked.close_reason = (
                    ReviewItemState.REVOKED,
                    now,
                    reasons[0],
                )
                locked.save(update_fields=["state", "closed_at", "close_reason"])
                _record_access(
                    locked.pk, action=action, caller=caller, allowed=False, reasons=reasons
                )
                refusal = _gone(ReviewItemState.REVOKED)
            else:
                _record_access(locked.pk, action=action, caller=caller, allowed=True, reasons=[])
    if refusal is not None:
        raise refusal
    assert result is not None
    return result


@dataclass(frozen=True)
class Clip:
    file: File
    name: str  # what the download is called: the item id and the audio's extension


def review_item_audio_open(*, item_id: str, caller: Caller, now: datetime | None = None) -> Clip:
    """The item's audio, opened, if it may reach the caller at this instant.

    The file is opened inside the transaction that holds the consent lock: a
    withdrawal committing after that has to wait for this access, and one committed
    before it is seen by the re-check.
    """
    now = now or timezone.now()
    item = _item_for(item_id, caller, "audio")

    def deliver(
        locked: ReviewItem, key: str, recording: Recording
    ) -> tuple[Clip | None, list[str]]:
        try:
            handle = default_storage.open(key, "rb")
        except FileNotFoundError:
            return None, ["no_audio"]
        if locked.state == ReviewItemState.PENDING:
            locked.state, locked.delivered_at = ReviewItemState.DELIVERED, now
            locked.save(update_fields=["state", "delivered_at"])
        suffix = "." + key.rsplit(".", 1)[1] if "." in key.rsplit("/", 1)[-1] else ""
        return Clip(file=handle, name=f"{locked.pk}{suffix}"), []

    return _hand_off(item, caller=caller, action="audio", now=now, deliver=deliver)


def review_item_annotate(
    *, item_id: str, text: str, caller: Caller, now: datetime | None = None
) -> Artefact:
    """Store the reviewer's annotation as an artefact of the recording, with its own
    retention, and close the item as done. `text` is a string (the edge refused any
    other kind with ANNOTATION_NEEDED); a blank one is refused here."""
    if not text.strip():
        raise _invalid("validation_error", "text", ANNOTATION_NEEDED)
    if len(text) > MAX_ANNOTATION_CHARS:
        raise _invalid("validation_error", "text", f"At most {MAX_ANNOTATION_CHARS} characters.")
    now = now or timezone.now()
    item = _item_for(item_id, caller, "annotate")
    schedule: ExpirySchedule | None = None

    def read_retention(recording: Recording) -> None:
        # As the ingest reads it, before its other locks (docs/architecture.md, "Lock
        # order"): the policies and the profile FOR SHARE, in one statement. Queued
        # behind a `retention_policies_apply`, it holds no row lock yet; a
        # retention-choice change either came first or waits and reschedules this.
        nonlocal schedule
        schedule = annotation_schedule(recording=recording, expiry=artefacts_expiry_at)

    def deliver(locked: ReviewItem, key: str, recording: Recording) -> tuple[Artefact, list[str]]:
        artefact = annotation_create(recording=recording, text=text, schedule=schedule)
        locked.state, locked.closed_at, locked.close_reason = ReviewItemState.DONE, now, "annotated"
        locked.annotation = artefact
        locked.save(update_fields=["state", "closed_at", "close_reason", "annotation"])
        return artefact, []

    return _hand_off(
        item,
        caller=caller,
        action="annotate",
        now=now,
        deliver=deliver,
        before_locks=read_retention,
    )
