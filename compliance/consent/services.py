"""Consent's own rows: events, current states, defaults.

A consent change is the action `compliance.actions.consent.consent_set`: this module
writes its rows (`consent_record`), the action adds, in the same transaction, what a
withdrawal must stop and the ledger entry, so that a withdrawal is in force before its
response is sent.
"""

from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from compliance.accounts.models import Profile
from compliance.core.countries import require_country
from compliance.core.errors import ApplicationError, Conflict, Unprocessable, field_error
from compliance.core.fields import is_printable_line
from compliance.core.transactions import require_transaction
from compliance.ledger.services import ledger_append

from .models import (
    CONSENT_LOCKS,
    Channel,
    ConsentDefault,
    ConsentEvent,
    ConsentLock,
    ConsentState,
    Purpose,
)
from .purposes import validate_purpose


def consent_states_initialise(*, profile: Profile) -> None:
    ConsentState.objects.bulk_create(
        [ConsentState(profile=profile, purpose=purpose) for purpose in Purpose.values],
        ignore_conflicts=True,
    )


def consent_record(
    *,
    profile: Profile,
    purpose: str,
    granted: bool,
    channel: str,
    notice_version: str,
    actor: str,
    at: datetime | None = None,
) -> tuple[ConsentState, ConsentEvent | None]:
    """The rows of a consent change: the event and the profile's current state, the
    state row locked FOR UPDATE until the transaction ends, and for a withdrawal the
    profile's consent lock before it. Returns the state and the new event (None: the
    same answer under the same notice, nothing written).

    For the action `compliance.actions.consent.consent_set`, which, in the same
    transaction and with the rows still locked, stops what a withdrawal must stop and
    writes the ledger entry. The consent lock orders a withdrawal against a hand-off
    (`consent_locks_take`); the state row's, any change against a concurrent change of
    the same state (docs/reliability.md, "Opt-out against hand-off"). So it refuses to
    run outside a transaction, on every database (SQLite has no row locks to refuse it).
    `at` is when the person decided, when that was before now (an import of earlier
    decisions, the demo's history): the event carries it.
    """
    require_transaction("consent_record")
    validate_purpose(purpose)
    if channel not in Channel.values:
        raise ApplicationError(
            "validation_error",
            f"channel must be one of {', '.join(Channel.values)}.",
            fields=field_error(
                "channel", "invalid", f"Must be one of {', '.join(Channel.values)}."
            ),
        )
    if not is_printable_line(notice_version):
        # a receipt and the ledger quote it: no line break, control or direction override
        raise ApplicationError(
            "validation_error",
            "notice_version must be printable text on one line.",
            fields=field_error("notice_version", "invalid", "Must be printable text on one line."),
        )
    if granted and purpose == Purpose.HUMAN_REVIEW and profile.is_child:
        raise Unprocessable(
            "child_profile",
            "A child's profile can never be granted human review.",
            fields=field_error(
                "granted", "child_profile", "A child's profile can never be granted human review."
            ),
        )
    if not granted:
        # Only a withdrawal must shut hand-offs out; a grant that a hand-off misses
        # leaves a profile out once more, which the next hand-off makes up.
        consent_lock_hold(profile=profile)
    state, _ = ConsentState.objects.select_for_update().get_or_create(
        profile=profile, purpose=purpose
    )
    last = state.last_event
    if state.granted is granted and last is not None and last.notice_version == notice_version:
        return state, None

    now = at or timezone.now()
    event = ConsentEvent.objects.create(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel=channel,
        notice_version=notice_version,
        actor=actor,
        created_at=now,
    )
    state.granted = granted
    state.last_event = event
    state.updated_at = now
    state.save(update_fields=["granted", "last_event", "updated_at"])
    return state, event


def consent_lock_of(profile_id: int) -> int:
    """The `ConsentLock` row of the profile `profile_id`."""
    return profile_id % CONSENT_LOCKS


def _consent_locks(rows: list[int], mode: str, *, skip_locked: bool = False) -> set[int]:
    """Lock `rows` (sorted) in `mode`, in row order; the rows locked. Raw SQL: Django's
    select_for_update() has no FOR KEY SHARE, the hand-offs' mode (FOR NO KEY UPDATE
    would make two hand-offs of profiles on one row queue behind each other)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {ConsentLock._meta.db_table} WHERE id = ANY(%s)"  # noqa: S608
            f" ORDER BY id {mode}{' SKIP LOCKED' if skip_locked else ''}",
            [rows],
        )
        return {row[0] for row in cursor.fetchall()}


def _consent_locks_create(rows: list[int]) -> None:
    """Create whichever of `rows` is missing. Migration 0003 creates them all; a table
    emptied since (`manage.py flush`, a test's flush) fills again as it is used. An
    insert of a row that another transaction is inserting waits for it, as a lock would."""
    ConsentLock.objects.bulk_create([ConsentLock(pk=row) for row in rows], ignore_conflicts=True)


def _consent_locks_held(
    profile_ids: list[int], mode: str, *, skip_locked: bool = False
) -> set[int]:
    """The profiles among `profile_ids` whose consent locks this transaction now holds in
    `mode`: all of them, waiting for the holders that conflict, unless `skip_locked`."""
    if not profile_ids:
        return set()
    if connection.vendor != "postgresql":
        # SQLite has no row locks: its writers take turns on the whole database.
        return set(profile_ids)
    rows = sorted({consent_lock_of(p) for p in profile_ids})
    held = _consent_locks(rows, mode, skip_locked=skip_locked)
    if len(held) < len(rows) and not skip_locked:
        # Rows missing. Not created for SKIP LOCKED, which must not wait: creating a row
        # that another transaction is creating waits for it; its profiles are left out.
        missing = [row for row in rows if row not in held]
        _consent_locks_create(missing)
        held |= _consent_locks(missing, mode)
        if not held.issuperset(missing):
            # created (or found created) a statement ago and gone now: deleted meanwhile
            # (a flush). Refuse rather than go on unguarded.
            raise RuntimeError(f"consent lock rows {sorted(set(missing) - held)[:5]} vanished")
    return {p for p in profile_ids if consent_lock_of(p) in held}


def consent_locks_take(*, profile_ids: list[int]) -> None:
    """The hand-off's side of the opt-out lock (a draw, a clip access): the profiles'
    consent locks, FOR KEY SHARE, waiting for an opt-out that holds one. Until the
    transaction ends, an opt-out of these profiles waits for it; a re-check in a later
    statement sees every opt-out that committed before it was granted."""
    require_transaction("consent_locks_take")
    _consent_locks_held(profile_ids, "FOR KEY SHARE")


def consent_locks_take_free(*, profile_ids: list[int]) -> set[int]:
    """As `consent_locks_take`, without waiting (SKIP LOCKED): the profiles whose locks
    were free or already held by this transaction. A lock skipped is one that an
    opt-out may hold; its profiles are left out."""
    require_transaction("consent_locks_take_free")
    return _consent_locks_held(profile_ids, "FOR KEY SHARE", skip_locked=True)


def consent_lock_hold(*, profile: Profile) -> None:
    """The opt-out's side: the profile's consent lock FOR UPDATE. It waits until no
    hand-off holds the row (a `FOR KEY SHARE` asked for meanwhile is granted beside the
    others, not queued behind it: docs/reliability.md), and keeps new ones out until the
    transaction ends. For `consent_record`'s withdrawals, and for a recovery's replay of
    one."""
    require_transaction("consent_lock_hold")
    _consent_locks_held([profile.pk], "FOR UPDATE")


@transaction.atomic
def consent_default_create(
    *, jurisdiction: str, purpose: str, granted: bool, actor: str
) -> ConsentDefault:
    require_country(jurisdiction, field="jurisdiction", code="unknown_jurisdiction")
    validate_purpose(purpose)
    try:
        with transaction.atomic():
            default = ConsentDefault.objects.create(
                jurisdiction=jurisdiction, purpose=purpose, granted=granted, created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            "duplicate",
            f"A default for {jurisdiction}/{purpose} exists; delete it first to change it.",
        ) from None
    ledger_append(
        kind="consent_default.created",
        subject=f"consent_default:{default.pk}",
        actor=actor,
        payload={"jurisdiction": jurisdiction, "purpose": purpose, "granted": granted},
    )
    return default


@transaction.atomic
def consent_default_delete(*, default: ConsentDefault, actor: str) -> None:
    ledger_append(
        kind="consent_default.deleted",
        subject=f"consent_default:{default.pk}",
        actor=actor,
        payload={
            "jurisdiction": default.jurisdiction,
            "purpose": default.purpose,
            "granted": default.granted,
        },
    )
    default.delete()
